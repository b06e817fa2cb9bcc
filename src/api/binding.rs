//! The McpBinding kind: a consumer's access to McpServers — the credentials Secret it
//! generates (`mcp.json`, token) and the per-consumer narrowing and grants.

// kube's `printcolumn(…)` entries repeat `type_ = "string"`; clippy mistakes the
// repetition for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::GoDuration;

/// A consumer's access to MCP servers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "mcp-operator.dev",
    version = "v1alpha1",
    kind = "McpBinding",
    plural = "mcpbindings",
    shortname = "mcpbind",
    category = "mcp",
    namespaced,
    status = "McpBindingStatus",
    derive = "PartialEq",
    doc = "A consumer's access to MCP servers: a credentials Secret with a ready mcp.json, and per-consumer tool grants.",
    printcolumn(
        name = "Servers",
        type_ = "string",
        json_path = ".status.servers[*].name"
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // Names that fit: the binding's Secret carries the binding name as its
    // `app.kubernetes.io/instance` label value (at most 63 characters).
    validation = Rule::new("!has(self.metadata.name) || size(self.metadata.name) <= 63")
        .message("metadata.name may be at most 63 characters: the operator labels the McpBinding's Secret with its name (app.kubernetes.io/instance), and label values are at most 63 characters"),
)]
#[x_kube(
    validation = Rule::new("(has(self.servers) && size(self.servers) > 0) || has(self.serverSelector)")
        .message("set spec.servers and/or spec.serverSelector: a binding must name the McpServers it gives access to"),
)]
#[serde(rename_all = "camelCase")]
pub struct McpBindingSpec {
    /// Servers by name, each with optional narrowing and grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 256))]
    pub servers: Vec<BindingServer>,

    /// Servers by label, in addition to `servers` (no narrowing, no grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_selector: Option<LabelSelector>,

    /// Who mounts the Secret; a ServiceAccount listed here may also authenticate with a
    /// projected token (audience mcp-operator.dev) instead of the bearer token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub subjects: Vec<Subject>,

    /// Name of the generated Secret. Default `<binding name>-mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("secretName must be a valid Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"))]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,

    /// Token rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rotation: Option<TokenRotation>,
}

impl McpBinding {
    /// Name of the Secret the binding generates.
    pub fn secret_name(&self) -> String {
        match &self.spec.secret_name {
            Some(name) => name.clone(),
            None => format!("{}-mcp", self.metadata.name.as_deref().unwrap_or_default()),
        }
    }
}

/// Access to one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingServer {
    /// McpServer name, in the binding's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Narrows what policies expose to this consumer; never widens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolNarrowing>,

    /// Tools this consumer may call although a policy's requireGrant names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub grants: Vec<String>,
}

/// Per-consumer narrowing of the exposed tools (globs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolNarrowing {
    /// When set, only matching tools are visible to this consumer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allow: Vec<String>,

    /// Matching tools are hidden from this consumer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub deny: Vec<String>,
}

/// Who uses the binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Kind of subject. Only ServiceAccount.
    pub kind: SubjectKind,
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the ServiceAccount. Default: the binding's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

/// Kind of a binding subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SubjectKind {
    /// A Kubernetes ServiceAccount.
    ServiceAccount,
}

/// Token rotation settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("duration(self.gracePeriod) < duration(self.period)").message("tokenRotation.gracePeriod must be shorter than tokenRotation.period, or two old tokens would be valid at once"))]
pub struct TokenRotation {
    /// How often a new token is issued.
    #[serde(default = "default_rotation_period")]
    pub period: GoDuration,

    /// How long the previous token stays valid after a rotation.
    #[serde(default = "default_grace_period")]
    pub grace_period: GoDuration,
}

impl Default for TokenRotation {
    fn default() -> Self {
        Self {
            period: default_rotation_period(),
            grace_period: default_grace_period(),
        }
    }
}

fn default_rotation_period() -> GoDuration {
    GoDuration::from_static("720h")
}
fn default_grace_period() -> GoDuration {
    GoDuration::from_static("1h")
}

/// Observed state of a binding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpBindingStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::common::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// The generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// The servers this binding reaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub servers: Vec<BindingServerStatus>,

    /// When the current token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rotated_at: Option<Time>,
}

/// One server as seen from a binding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingServerStatus {
    /// McpServer name.
    pub name: String,
    /// Where to connect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Whether the server is Ready.
    pub ready: bool,
    /// Tools this consumer can call.
    pub exposed_tools: i32,
}
