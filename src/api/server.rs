//! The McpServer kind: one MCP server, how it runs or where it lives (spec, with its
//! admission rules). What it was seen to offer (status) lives in `server_status`.

// kube's `printcolumn(…)` entries repeat `type_ = "string"`; clippy mistakes the
// repetition for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext,
    ResourceRequirements, SecretKeySelector, SecurityContext, Toleration, Volume, VolumeMount,
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::GoDuration;
pub use super::server_status::{
    LastProbe, McpServerStatus, Phase, ProbeResult, ProtocolEra, ServerCapabilities, ServerInfo,
    ToolHiddenReason, ToolStatus,
};

/// Desired state of an MCP server. Exactly one of `container` (run it in the cluster) or
/// `remote` (it already runs elsewhere) is set.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mcp-operator.dev",
    version = "v1alpha1",
    kind = "McpServer",
    plural = "mcpservers",
    shortname = "mcpsrv",
    category = "mcp",
    namespaced,
    status = "McpServerStatus",
    derive = "PartialEq",
    doc = "An MCP server: how it runs (container) or where it lives (remote), and what it was seen to offer.",
    printcolumn(name = "Transport", type_ = "string", json_path = ".spec.transport"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Tools", type_ = "integer", json_path = ".status.toolCount"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Last Probe",
        type_ = "date",
        json_path = ".status.lastProbe.time"
    ),
    printcolumn(
        name = "Era",
        type_ = "string",
        json_path = ".status.serverInfo.era",
        priority = "1"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // Names that fit: the operator names a Service (a DNS-1035 label, at most 63
    // characters) and the `app.kubernetes.io/instance` label (at most 63) after the
    // server. Root-level rules may read metadata.name; a real API server checks them too.
    // Static messages: the API server estimates a messageExpression that quotes the name
    // or its size (`string(size(…))`) as unbounded and refuses the CRD; the error it
    // prints starts with the name anyway.
    validation = Rule::new("!has(self.metadata.name) || size(self.metadata.name) <= 63")
        .message("metadata.name may be at most 63 characters: the operator creates a Service with the McpServer's name, and Service names are DNS-1035 labels of at most 63 characters"),
    validation = Rule::new("!has(self.metadata.name) || self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS-1035 label: McpServer names consist of lowercase letters, digits and '-', start with a letter and end with a letter or digit, because the operator creates a Service with the same name"),
)]
#[x_kube(
    validation = Rule::new("has(self.container) != has(self.remote)")
        .message("set exactly one of spec.container (run the server in the cluster) or spec.remote (an MCP server that already runs elsewhere)"),
    validation = Rule::new("self.transport != 'Stdio' || (has(self.container) && has(self.container.command) && size(self.container.command) > 0)")
        .message("transport Stdio needs spec.container.command: the command that starts the stdio server, e.g. [npx, -y, \"@modelcontextprotocol/server-memory\"]"),
    validation = Rule::new("!(self.transport == 'Stdio' && has(self.remote))")
        .message("transport Stdio cannot be used with spec.remote: a remote server is reached over HTTP, so use StreamableHttp or Sse"),
    validation = Rule::new("self.transport != 'Stdio' || !has(self.container) || (!has(self.container.port) && !has(self.container.path))")
        .message("spec.container.port and spec.container.path apply only to the StreamableHttp and Sse transports; a Stdio server is reached through its stdin/stdout"),
    validation = Rule::new("self.transport == 'Stdio' || !has(self.container) || has(self.container.port)")
        .message("transport StreamableHttp or Sse with spec.container needs spec.container.port: the port the server listens on inside the pod"),
    validation = Rule::new("!has(self.container) || !has(self.container.port) || self.container.port != (has(self.gateway) && has(self.gateway.port) ? self.gateway.port : 8080)")
        .message("spec.container.port must differ from the gateway port (spec.gateway.port, default 8080): both listen in the same pod"),
    validation = Rule::new("self.transport == 'Stdio' || (!has(self.sessionMode) && !has(self.warmPool))")
        .message("spec.sessionMode and spec.warmPool apply only to transport Stdio: they control how the bridge runs the stdio process"),
    validation = Rule::new("!has(self.gateway) || !has(self.gateway.enabled) || self.gateway.enabled || has(self.remote)")
        .message("spec.gateway.enabled: false is only for remote servers (catalogue only: probed, no pod); a server run in the cluster is always fronted by its gateway"),
)]
#[serde(rename_all = "camelCase")]
pub struct McpServerSpec {
    /// How the server itself speaks MCP: Stdio, StreamableHttp or Sse (legacy HTTP+SSE).
    /// Clients always reach the gateway over Streamable HTTP, whatever this is.
    pub transport: Transport,

    /// Run the server in the cluster. Exactly one of container or remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,

    /// An MCP server that already runs elsewhere. Exactly one of container or remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSpec>,

    /// Number of server pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Stdio only. Shared: one long-lived process per replica, sessions multiplexed onto it.
    /// PerSession: a process per client session, taken from a warm pool. Default Shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_mode: Option<SessionMode>,

    /// Stdio with PerSession only: how many ready processes to keep waiting. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub warm_pool: Option<i32>,

    /// Exposed tool names become `<toolPrefix><name>`, so several servers can share one
    /// client without name clashes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]*$')").message("toolPrefix may contain only letters, digits, '_', '-' and '.' (MCP tool name characters)"))]
    #[schemars(length(max = 64))]
    pub tool_prefix: String,

    /// The gateway sidecar: the pod's only open port (auth, policy, audit, metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// How the operator tests the server and discovers what it offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,

    /// Reviewed tool definitions, compared with what the server offers when a policy asks
    /// for pinning. `mcp-operator probe --pins URL` prints them in this form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 1024))]
    pub pinned_tools: Vec<PinnedTool>,
}

fn default_replicas() -> i32 {
    1
}

/// How the server itself speaks MCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Transport {
    /// JSON-RPC over the process's stdin/stdout, served on loopback by the bridge.
    Stdio,
    /// MCP Streamable HTTP (one endpoint, POST + optional SSE stream).
    StreamableHttp,
    /// Legacy HTTP+SSE (GET /sse for the stream, POST to the announced endpoint).
    Sse,
}

/// How a Stdio server's process is shared between client sessions.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum SessionMode {
    /// One long-lived process per replica; sessions are multiplexed onto it.
    #[default]
    Shared,
    /// One process per session, from a warm pool.
    PerSession,
}

/// Running the server in the cluster. Maps onto the `mcp` container of the server pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container image of the server.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Entrypoint. Required for Stdio: the bridge runs it as the stdio server process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,

    /// Arguments to the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Environment of the server container only (the gateway never sees it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Environment from ConfigMaps or Secrets, server container only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// StreamableHttp/Sse: the port the server listens on inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// StreamableHttp/Sse: the endpoint path. Default /mcp (StreamableHttp) or /sse (Sse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("container.path must start with '/', e.g. /mcp or /sse"))]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,

    /// Compute resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Image pull policy. Default IfNotPresent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets for pulling the server image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Pod volumes, mounted into the server container with volumeMounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,

    /// Mounts of `volumes` into the server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,

    /// Server container security context. Defaults to the restricted Pod Security profile;
    /// fields set here override the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,

    /// Pod security context. Defaults to the restricted Pod Security profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,

    /// ServiceAccount of the pod. Default: a per-server ServiceAccount created and owned
    /// by the operator, whose only API access is creating and patching Events in its
    /// namespace (the gateway's audit Events). A ServiceAccount named here gets no cluster-wide
    /// rights from the operator: its gateway accepts binding tokens only, not
    /// ServiceAccount tokens (which need TokenReview).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service_account_name: Option<String>,

    /// Node selector of the server pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the server pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity of the server pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// Container image pull policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ImagePullPolicy {
    /// Always pull.
    Always,
    /// Pull only when the image is not on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// An MCP server that already runs elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tls) || self.url.startsWith('https://')").message("remote.tls applies only to https:// URLs"))]
pub struct RemoteSpec {
    /// Endpoint of the server, e.g. https://mcp.example.com/mcp (or .../sse for Sse).
    // The doc comment is the CRD's description: a bare URL reads best there.
    #[allow(rustdoc::bare_urls)]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+([/?#].*)?$')").message("remote.url must be an http:// or https:// URL with a host, e.g. https://mcp.example.com/mcp"))]
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,

    /// Request headers sent upstream, with values from Secrets. Values never appear in
    /// status, Events or logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 32))]
    pub headers_from: Vec<HeaderFromSecret>,

    /// TLS settings for https URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RemoteTls>,
}

/// A request header whose value comes from a Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderFromSecret {
    /// Header name, e.g. Authorization.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$')").message("header name must be an HTTP token (letters, digits and !#$%&'*+.^_`|~-), e.g. Authorization"))]
    #[schemars(length(min = 1, max = 256))]
    pub name: String,

    /// Text put before the Secret value, e.g. "Bearer ".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub prefix: String,

    /// Where the value comes from.
    pub value_from: HeaderValueSource,
}

/// Source of a header value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueSource {
    /// A key of a Secret in the server's namespace.
    pub secret_key_ref: SecretKeySelector,
}

/// TLS settings for a remote server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.caSecretRef) && has(self.insecureSkipVerify) && self.insecureSkipVerify)").message("set either remote.tls.caSecretRef or remote.tls.insecureSkipVerify, not both: skipping verification ignores the CA"))]
pub struct RemoteTls {
    /// PEM CA bundle to trust instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeySelector>,

    /// Do not verify the server certificate. For testing only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// The gateway sidecar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Remote servers only: false = catalogue only (probe + status, no pod).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// The gateway's port: the only port of the pod and of the Service.
    #[serde(default = "default_gateway_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Required: bearer tokens from McpBindings. None: anyone who can reach the Service
    /// (development only).
    #[serde(default)]
    pub auth: GatewayAuth,

    /// Compute resources of the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            port: default_gateway_port(),
            auth: GatewayAuth::default(),
            resources: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The gateway's default port.
pub const DEFAULT_GATEWAY_PORT: i32 = 8080;

fn default_gateway_port() -> i32 {
    DEFAULT_GATEWAY_PORT
}

/// Who may call through the gateway.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum GatewayAuth {
    /// Bearer tokens issued by McpBindings; unknown tokens are refused.
    #[default]
    Required,
    /// No authentication. Development only.
    None,
}

/// Probing: how the operator tests the server and discovers its tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Do not probe (status then has no inventory and Reachable is Unknown).
    #[serde(default)]
    pub disabled: bool,

    /// Re-probe period, jittered.
    #[serde(default = "default_probe_interval")]
    pub interval: GoDuration,

    /// Limit for one attempt: connect + initialize or server/discover + lists.
    #[serde(default = "default_probe_timeout")]
    pub timeout: GoDuration,

    /// Further attempts after a transient failure.
    #[serde(default = "default_probe_retries")]
    #[schemars(range(min = 0, max = 10))]
    pub retries: i32,

    /// Pause between attempts.
    #[serde(default = "default_probe_retry_delay")]
    pub retry_delay: GoDuration,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            disabled: false,
            interval: default_probe_interval(),
            timeout: default_probe_timeout(),
            retries: default_probe_retries(),
            retry_delay: default_probe_retry_delay(),
        }
    }
}

fn default_probe_interval() -> GoDuration {
    GoDuration::from_static("5m")
}
fn default_probe_timeout() -> GoDuration {
    GoDuration::from_static("10s")
}
fn default_probe_retries() -> i32 {
    1
}
fn default_probe_retry_delay() -> GoDuration {
    GoDuration::from_static("3s")
}

/// A reviewed tool definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinnedTool {
    /// Tool name as the server reports it (without toolPrefix).
    #[schemars(length(min = 1, max = 128))]
    pub name: String,

    /// SHA-256 (lowercase hex) of the tool's canonical definition, as in status.tools.
    // maxLength bounds the rule's estimated CEL cost: without it (1,024 pins of unbounded
    // strings) a real API server refuses the CRD (cost budget exceeded).
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]{64}$')").message("sha256 must be 64 lowercase hex characters, as printed by `mcp-operator probe --pins`"))]
    pub sha256: String,
}
