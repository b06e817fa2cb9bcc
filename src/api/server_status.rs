//! McpServer status: what the operator saw of a server (conditions, phase, the inventory
//! from the latest probe). Written only by the controller, through the status subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Observed state of an MCP server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Summary of the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Where bound clients connect (the gateway Service, or the remote URL without gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Accepted, Available, Reachable, ToolsDiscovered, ToolsPinned, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::common::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// What the server said about itself (initialize or server/discover), and the era.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<ServerInfo>,

    /// Capabilities the server declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<ServerCapabilities>,

    /// Number of tools the server offers (all of them, even past the 128 listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_count: Option<i32>,

    /// Number of resources the server offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_count: Option<i32>,

    /// Number of prompts the server offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_count: Option<i32>,

    /// Tools, sorted by name, at most 128 (toolsTruncated says when cut).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 128))]
    pub tools: Vec<ToolStatus>,

    /// True when the server offers more tools than status lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools_truncated: bool,

    /// SHA-256 over the sorted per-tool hashes: changes whenever any tool changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_digest: Option<String>,

    /// The latest probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe: Option<LastProbe>,

    /// Failed probes in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<i32>,

    /// McpPolicies that apply to this server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_policies: Vec<String>,

    /// The Deployment running the server (container servers and gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,

    /// The Service clients connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// Summary of an McpServer's conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Phase {
    /// Accepted, nothing running yet.
    Pending,
    /// Rolling out or waiting for the first probe.
    Progressing,
    /// Ready.
    Ready,
    /// Was ready, now something fails (probe, availability, pins).
    Degraded,
    /// Cannot run as specified (invalid spec, missing Secret, policy violation).
    Failed,
}

/// What the server said about itself (at `initialize`, or in its `server/discover`
/// answer), and which protocol era the probe spoke. Every string is cut to its limit (a
/// cut value ends with "…").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// serverInfo.name, cut to 128 characters.
    #[schemars(length(max = 128))]
    pub name: String,
    /// serverInfo.version, cut to 64 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub version: String,
    /// The negotiated MCP protocol version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 32))]
    pub protocol_version: String,
    /// The server's instructions, cut to 1 KiB.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub instructions: String,
    /// The protocol era the probe negotiated: Modern (2026-07-28 and later: stateless,
    /// `server/discover`) or Legacy (the `initialize` handshake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub era: Option<ProtocolEra>,
    /// The protocol versions the server lists in its `server/discover` answer, at most 16,
    /// each cut to 32 characters; empty in the legacy era.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 32)))]
    pub supported_versions: Vec<String>,
}

/// The MCP protocol era a probe negotiated: Modern (2026-07-28 and later: stateless
/// requests, `server/discover`) or Legacy (the `initialize` handshake and sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ProtocolEra {
    /// The `initialize` handshake and sessions (2024-11-05 … 2025-11-25).
    Legacy,
    /// Stateless requests that carry their protocol version (2026-07-28 and later).
    Modern,
}

/// Capabilities a server declared at initialize or in its server/discover answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerCapabilities {
    /// tools.
    #[serde(default)]
    pub tools: bool,
    /// resources.
    #[serde(default)]
    pub resources: bool,
    /// prompts.
    #[serde(default)]
    pub prompts: bool,
    /// logging.
    #[serde(default)]
    pub logging: bool,
    /// completions.
    #[serde(default)]
    pub completions: bool,
}

/// One tool as seen by the latest successful probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolStatus {
    /// Tool name as the server reports it; a name longer than 128 characters is cut to 119,
    /// "…" and 8 hex digits of the SHA-256 of the full name.
    #[schemars(length(max = 128))]
    pub name: String,
    /// Description, cut to 200 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 200))]
    pub description: String,
    /// SHA-256 of the canonical JSON of name, description, inputSchema and annotations.
    pub sha256: String,
    /// Whether clients can see and call it through the gateway.
    pub exposed: bool,
    /// Why it is not exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ToolHiddenReason>,
}

/// Why a tool is not exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ToolHiddenReason {
    /// A policy's deny list matches it, or an allow list does not.
    Denied,
    /// A policy requires a grant and no binding grants it.
    NotGranted,
    /// Pinning is enforced and the tool has no pin.
    Unpinned,
    /// Pinning is enforced and the tool differs from its pin.
    Changed,
}

/// The latest probe of a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastProbe {
    /// When the probe finished.
    pub time: Time,
    /// Succeeded or Failed.
    pub result: ProbeResult,
    /// Error code on failure (the Reachable condition's reason).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// What was tried and what came back, on failure. Never a credential.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub message: String,
    /// Duration of the probe in milliseconds.
    pub latency_ms: i64,
    /// Attempts made.
    pub attempts: i32,
}

/// Outcome of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ProbeResult {
    /// The server answered initialize or server/discover, and the lists.
    Succeeded,
    /// See code and message.
    Failed,
}
