//! The gateway's configuration file: what the operator renders into the Secret
//! `<server>-gateway` (key `config.json`) and the gateway reads (and re-reads when it
//! changes). JSON or YAML. It holds no credentials: bearer tokens appear only as SHA-256
//! hashes, upstream credentials only as names of environment variables.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::server::{GatewayAuth, PinnedTool};
use crate::policy::{EffectivePolicy, ToolAccess};

/// Key of the gateway configuration in the `<server>-gateway` Secret.
pub const CONFIG_KEY: &str = "config.json";

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    /// The McpServer this gateway fronts (audit records and metrics name it).
    pub server: ServerIdentity,
    /// Required: unknown or missing tokens get 401. None: anyone may call (dev only).
    #[serde(default)]
    pub auth: GatewayAuth,
    /// SHA-256 (hex) of the operator's probe tokens: read-only, list methods only, and
    /// they see the server's unfiltered, unprefixed tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_token_sha256: Vec<String>,
    /// Exposed tool names become `<toolPrefix><name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_prefix: String,
    /// The server's reviewed tool definitions (spec.pinnedTools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_tools: Vec<PinnedTool>,
    /// The effective policy of every McpPolicy targeting the server.
    #[serde(default)]
    pub policy: EffectivePolicy,
    /// The consumers: one entry per McpBinding naming this server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingConfig>,
    /// How to reach the upstream server beyond its URL.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Host names (without port) clients may address the gateway by, besides
    /// `localhost` and IP literals: DNS-rebinding protection. The operator renders the
    /// Service's names. `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`scheme://host[:port]`) allowed besides loopback origins and
    /// origins on an allowed host. `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

/// Which server a gateway fronts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerIdentity {
    pub name: String,
    pub namespace: String,
    /// The McpServer's uid: Events the gateway records name it, so `kubectl describe`
    /// shows them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// One consumer's access.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingConfig {
    /// McpBinding name (audit records and metrics name it).
    pub name: String,
    /// SHA-256 (hex) of each valid token: the current one and, during a rotation's grace
    /// period, the previous one.
    pub token_sha256: Vec<String>,
    /// The binding's narrowing and grants for this server.
    #[serde(default)]
    pub access: ToolAccess,
    /// ServiceAccounts (the binding's subjects) whose projected tokens with audience
    /// `mcp-operator.dev` the gateway accepts for this binding, checked by TokenReview.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccountRef>,
}

/// A ServiceAccount by namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

/// Upstream connection settings (credentials by reference only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Headers added to every upstream request, values read from environment variables
    /// (the operator fills those from Secrets with `valueFrom.secretKeyRef`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<UpstreamHeader>,
    /// PEM file of extra CA certificates for an https upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Skip certificate verification (development only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A header sent upstream, its value from an environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    pub value_from_env: String,
}

/// Why a configuration file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read gateway config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("gateway config {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("gateway config {path}: {message}")]
    Invalid { path: String, message: String },
}

impl GatewayConfig {
    /// Reads and validates a file (JSON or YAML).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates text (JSON is YAML).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: GatewayConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: String::new(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let is_hash = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        for b in &self.bindings {
            if b.name.is_empty() {
                return Err("a binding has an empty name".into());
            }
            if let Some(bad) = b.token_sha256.iter().find(|h| !is_hash(h)) {
                return Err(format!(
                    "binding {}: tokenSha256 entry of {} characters is not a SHA-256 hex digest",
                    b.name,
                    bad.len()
                ));
            }
        }
        if self.probe_token_sha256.iter().any(|h| !is_hash(h)) {
            return Err("probeTokenSha256 entries must be SHA-256 hex digests".into());
        }
        if let Some(bad) = self
            .allowed_hosts
            .iter()
            .chain(&self.allowed_origins)
            .find(|h| h.is_empty() || h.len() > 253 || h.contains(char::is_whitespace))
        {
            return Err(format!(
                "allowedHosts/allowedOrigins entry {:?} is not a host name or origin",
                bad.chars().take(64).collect::<String>()
            ));
        }
        for h in &self.upstream.headers {
            if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                return Err(format!("upstream header name {:?} is not valid", h.name));
            }
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256 of a bearer token, as stored in the configuration.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_round_trips() {
        let text = r#"{
          "server": {"name": "memory", "namespace": "agents"},
          "auth": "Required",
          "probeTokenSha256": ["0000000000000000000000000000000000000000000000000000000000000000"],
          "toolPrefix": "mem_",
          "pinnedTools": [{"name": "echo", "sha256": "abababababababababababababababababababababababababababababababab"}],
          "policy": {"policies": ["baseline"], "deny": ["delete_*"], "pinning": "Enforce",
                     "rateLimit": {"requestsPerMinute": 60, "burst": 10, "per": "Binding"},
                     "limits": {"maxRequestBytes": 1048576, "callTimeoutMs": 30000},
                     "audit": {"level": "Hashes", "redactKeys": ["password"]}},
          "bindings": [{"name": "agent", "tokenSha256": ["1111111111111111111111111111111111111111111111111111111111111111"],
                        "access": {"narrowing": {"allow": ["read_*"]}, "grants": ["create_x"]}}],
          "upstream": {"headers": [{"name": "Authorization", "prefix": "Bearer ", "valueFromEnv": "UPSTREAM_TOKEN"}]}
        }"#;
        let c = GatewayConfig::parse(text).unwrap();
        assert_eq!(c.bindings[0].access.grants, ["create_x"]);
        assert_eq!(c.policy.limits.call_timeout_ms, Some(30_000));
        let again = GatewayConfig::parse(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn rejects_bad_files_with_a_reason() {
        let e = GatewayConfig::parse(r#"{"server": {"name": "a", "namespace": "b"}, "bindings": [{"name": "x", "tokenSha256": ["plain-token"]}]}"#).unwrap_err();
        assert!(e.to_string().contains("not a SHA-256"), "{e}");
        assert!(
            !e.to_string().contains("plain-token"),
            "never echo a token: {e}"
        );
        let e = GatewayConfig::parse(r#"{"server": {"name": "a", "namespace": "b"}, "polcy": {}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("polcy"), "{e}");
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
