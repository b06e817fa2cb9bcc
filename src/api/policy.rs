//! The McpPolicy kind: governance for the McpServers it targets (tool exposure, pinning,
//! rate limits, size/time limits, audit, egress, workload rules). How several policies
//! combine lives in `crate::policy`, not here.

// kube's `printcolumn(…)` entries repeat `type_ = "string"`; clippy mistakes the
// repetition for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::{
    api::resource::Quantity,
    apis::meta::v1::{Condition, LabelSelector},
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{GoDuration, LocalRef};

/// Governance for the McpServers it targets.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "mcp-operator.dev",
    version = "v1alpha1",
    kind = "McpPolicy",
    plural = "mcppolicies",
    shortname = "mcppol",
    category = "mcp",
    namespaced,
    status = "McpPolicyStatus",
    derive = "PartialEq",
    doc = "Governance for the McpServers it targets: tools, limits, audit, egress, workload rules.",
    printcolumn(name = "Targets", type_ = "integer", json_path = ".status.targetCount"),
    printcolumn(name = "Pinning", type_ = "string", json_path = ".spec.pinning"),
    printcolumn(name = "Audit", type_ = "string", json_path = ".spec.audit.level"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("(has(self.targetRefs) && size(self.targetRefs) > 0) || has(self.serverSelector)")
        .message("set spec.targetRefs and/or spec.serverSelector; use serverSelector: {} to target every McpServer in the namespace"),
)]
#[serde(rename_all = "camelCase")]
pub struct McpPolicySpec {
    /// McpServers targeted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 256))]
    pub target_refs: Vec<LocalRef>,

    /// McpServers targeted by label; `{}` selects every McpServer in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_selector: Option<LabelSelector>,

    /// Which tools are exposed, and which need a grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolRules>,

    /// Compare tools with the server's spec.pinnedTools: Off, Warn (Event + condition) or
    /// Enforce (the gateway refuses tools that differ from or lack a pin).
    #[serde(default)]
    pub pinning: PinningMode,

    /// Request rate limit, enforced by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,

    /// Size, time and concurrency limits, enforced by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,

    /// What the gateway's audit log records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,

    /// Outbound traffic of the server pods, rendered as a NetworkPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,

    /// Rules checked before anything is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRules>,
}

/// Tool exposure rules. Patterns are globs (`*` any run, `?` one character).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolRules {
    /// When set, only tools matching one of these are exposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allow: Vec<ToolPattern>,

    /// Tools matching one of these are never exposed; deny always wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub deny: Vec<ToolPattern>,

    /// Tools matching one of these are callable only by bindings that grant them by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub require_grant: Vec<ToolPattern>,
}

/// A tool name or glob (`*`, `?`).
pub type ToolPattern = String;

/// Pinning enforcement.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum PinningMode {
    /// No comparison.
    #[default]
    Off,
    /// Event and ToolsPinned=False on a mismatch; tools stay callable.
    Warn,
    /// The gateway refuses mismatched or unpinned tools; Ready=False until pins match.
    Enforce,
}

/// Token-bucket rate limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per minute.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_minute: i32,

    /// Requests allowed at once above the sustained rate. Default: requestsPerMinute / 6
    /// (ten seconds' worth), at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: Option<i32>,

    /// One bucket per Binding (each consumer) or per Server (all consumers together).
    #[serde(default)]
    pub per: RateLimitScope,
}

/// What a rate-limit bucket counts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum RateLimitScope {
    /// A bucket per McpBinding.
    #[default]
    Binding,
    /// One bucket for the whole server.
    Server,
}

/// Gateway limits. Unset fields mean the gateway's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest request body, e.g. 1Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<Quantity>,

    /// Largest response body, e.g. 8Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<Quantity>,

    /// Longest tools/call; the gateway then cancels upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<GoDuration>,

    /// Calls in flight at once per gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_concurrent_calls: Option<i32>,
}

/// Audit settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// Metadata (no content), Hashes (SHA-256 of arguments and results) or Payloads
    /// (content with redactKeys values replaced).
    #[serde(default)]
    pub level: AuditLevel,

    /// JSON keys whose values are replaced in Payloads records, in addition to the
    /// built-in ones (authorization, password, secret, token, apiKey, api_key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub redact_keys: Vec<String>,
}

/// How much of each request the audit log records.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum AuditLevel {
    /// Who, what, when, outcome; no content.
    #[default]
    Metadata,
    /// Metadata plus SHA-256 of arguments and results.
    Hashes,
    /// Metadata plus content, redacted.
    Payloads,
}

/// Outbound traffic of the server pods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// Allow DNS (UDP and TCP 53) to any destination.
    #[serde(default = "default_true")]
    pub allow_dns: bool,

    /// Allowed destinations; everything else is blocked once egress is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub to: Vec<EgressRule>,
}

fn default_true() -> bool {
    true
}

/// An allowed egress destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Destination network, e.g. 10.0.0.0/8 or 2001:db8::/32.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("egress cidr must be a network in CIDR notation, e.g. 10.0.0.0/8 or 2001:db8::/32"))]
    #[schemars(length(max = 64))]
    pub cidr: String,

    /// TCP ports; empty means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ports: Vec<EgressPort>,
}

/// A TCP port number.
pub type EgressPort = i32;

/// Rules a server's spec must meet before it is deployed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRules {
    /// Image globs; when set, container.image must match one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowed_images: Vec<String>,

    /// container.image must name a digest (`@sha256:…`).
    #[serde(default)]
    pub require_digest: bool,

    /// The server must not run as root (securityContext.runAsUser 0 or runAsNonRoot
    /// false is refused).
    #[serde(default)]
    pub require_non_root: bool,

    /// Highest memory limit the server container may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<Quantity>,

    /// Highest spec.replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_replicas: Option<i32>,
}

/// Observed state of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpPolicyStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::common::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// Names of the McpServers the policy applies to, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,

    /// Number of targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_count: Option<i32>,
}
