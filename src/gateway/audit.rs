//! Audit records: one JSON line per JSON-RPC request on stdout (target `audit`), written
//! by a dedicated thread so a slow stdout never blocks the runtime (a full queue applies
//! back-pressure instead of dropping records). Records never hold tokens; content appears
//! per `policy.audit.level`: Metadata (none), Hashes (SHA-256 of the canonical JSON of
//! arguments and result), Payloads (both, with the values of the built-in secret keys
//! ([`ALWAYS_REDACTED`]) and of `redactKeys` replaced at any depth; names compared
//! normalised, by suffix).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::kube_events::EventReporter;
use super::live::{LiveConfig, normalise_key};
use super::metrics::Metrics;
use super::refusal::Rule;
use crate::api::policy::AuditLevel;
use crate::prober::inventory::canonical_json;

/// What replaces redacted values.
pub const REDACTED: &str = "[REDACTED]";

/// Where records go. With [`AuditLog::with_events`], denials, rate-limit trips and 401s
/// are also reported as (aggregated) Kubernetes Events.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<String>,
    events: Option<EventReporter>,
}

impl AuditLog {
    /// Starts the stdout writer thread. It ends when every `AuditLog` clone is dropped,
    /// after writing what is queued.
    pub fn stdout() -> (AuditLog, std::thread::JoinHandle<()>) {
        let (tx, rx) = sync_channel::<String>(8192);
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_lines(rx))
            .expect("spawning the audit writer thread");
        (AuditLog { tx, events: None }, handle)
    }

    /// Also reports refusals as Kubernetes Events.
    pub fn with_events(mut self, events: EventReporter) -> Self {
        self.events = Some(events);
        self
    }

    /// Reports a refusal that has no audit record (a GET or DELETE refused with 401, a
    /// body of notifications only) as an Event.
    pub fn report(&self, rule: Rule, principal: &str, tool: Option<&str>) {
        if let Some(events) = &self.events {
            events.report(rule, principal, tool);
        }
    }

    fn write(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(line)) => {
                let _ = self.tx.send(line);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_lines(rx: Receiver<String>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        // Flush whenever the queue is momentarily empty: batches under load, prompt when idle.
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied(Rule),
    /// Upstream answered with a JSON-RPC error, or could not be reached; or a rule that
    /// is an error rather than a denial (Timeout).
    Error(Option<Rule>),
}

impl Outcome {
    pub fn refused(rule: Rule) -> Outcome {
        match rule.outcome() {
            "error" => Outcome::Error(Some(rule)),
            _ => Outcome::Denied(rule),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied(_) => "denied",
            Outcome::Error(_) => "error",
        }
    }

    fn rule(self) -> Option<Rule> {
        match self {
            Outcome::Allowed => None,
            Outcome::Denied(r) => Some(r),
            Outcome::Error(r) => r,
        }
    }
}

/// One request, from arrival to answer.
pub struct PendingAudit {
    config: Arc<LiveConfig>,
    principal: String,
    pub method: String,
    /// The tool name as the caller used it.
    pub tool: Option<String>,
    pub id: Value,
    /// The message's protocol era and version ([`routing::protocol`](super::routing::protocol));
    /// None for a request refused whole before its body was read.
    pub era: Option<crate::mcp_http::era::Era>,
    pub protocol_version: Option<String>,
    start: Instant,
    bytes_in: u64,
    arguments: Option<Value>,
}

impl PendingAudit {
    /// Starts the record of `msg` (a request).
    pub fn start(
        config: Arc<LiveConfig>,
        principal: &str,
        msg: &Value,
        bytes_in: u64,
        start: Instant,
    ) -> PendingAudit {
        let method = crate::mcp_http::jsonrpc::method(msg)
            .unwrap_or_default()
            .to_owned();
        let tool = (method == "tools/call")
            .then(|| crate::mcp_http::jsonrpc::param_name(msg).map(str::to_owned))
            .flatten();
        let arguments = if config.file.policy.audit.level == AuditLevel::Metadata {
            None
        } else if method == "tools/call" {
            msg.get("params").and_then(|p| p.get("arguments")).cloned()
        } else {
            msg.get("params").map(without_envelope)
        };
        PendingAudit {
            principal: principal.to_owned(),
            method,
            tool,
            id: msg.get("id").cloned().unwrap_or(Value::Null),
            era: None,
            protocol_version: None,
            start,
            bytes_in,
            arguments,
            config,
        }
    }

    /// Writes the record and counts the request. `answer` is the JSON-RPC response sent
    /// back (its `result` or `error` is the audited result).
    pub fn finish(
        self,
        log: &AuditLog,
        metrics: &Metrics,
        outcome: Outcome,
        bytes_out: u64,
        answer: Option<&Value>,
    ) {
        let took = self.start.elapsed();
        if let Some(rule) = outcome.rule() {
            metrics.refused(rule);
            log.report(rule, &self.principal, self.tool.as_deref());
        }
        metrics.request(
            &self.method,
            self.tool.as_deref().unwrap_or_default(),
            outcome.name(),
            took,
        );
        let file = &self.config.file;
        let mut rec = Map::new();
        rec.insert("time".into(), json!(now_rfc3339()));
        rec.insert("target".into(), json!("audit"));
        rec.insert("server".into(), json!(file.server.name));
        rec.insert("namespace".into(), json!(file.server.namespace));
        rec.insert("binding".into(), json!(self.principal));
        rec.insert("method".into(), json!(self.method));
        if let Some(tool) = &self.tool {
            rec.insert("tool".into(), json!(tool));
        }
        rec.insert("id".into(), self.id.clone());
        rec.insert("era".into(), json!(self.era.map(|e| e.as_str())));
        rec.insert("protocolVersion".into(), json!(self.protocol_version));
        rec.insert("outcome".into(), json!(outcome.name()));
        if let Some(rule) = outcome.rule() {
            rec.insert("rule".into(), json!(rule.as_str()));
        }
        rec.insert(
            "durationMs".into(),
            json!((took.as_secs_f64() * 1e6).round() / 1e3),
        );
        rec.insert("bytesIn".into(), json!(self.bytes_in));
        rec.insert("bytesOut".into(), json!(bytes_out));
        let result = answer.and_then(|a| a.get("result").or_else(|| a.get("error")));
        match file.policy.audit.level {
            AuditLevel::Metadata => {}
            AuditLevel::Hashes => {
                if let Some(args) = &self.arguments {
                    rec.insert("argumentsSha256".into(), json!(sha256_canonical(args)));
                }
                if let Some(result) = result {
                    rec.insert("resultSha256".into(), json!(sha256_canonical(result)));
                }
            }
            AuditLevel::Payloads => {
                let keys = &self.config.redact_keys;
                if let Some(args) = &self.arguments {
                    rec.insert("arguments".into(), redact(args, keys));
                }
                if let Some(result) = result {
                    rec.insert("result".into(), redact(result, keys));
                }
            }
        }
        log.write(Value::Object(rec).to_string());
    }
}

/// `params` without the modern era's `_meta` envelope (protocol version, client
/// capabilities and info: the record has `era` and `protocolVersion`), so one request
/// is recorded alike in both eras; `_meta` goes when nothing else is left in it.
fn without_envelope(params: &Value) -> Value {
    let mut params = params.clone();
    if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
        for key in [
            crate::mcp_http::era::META_PROTOCOL_VERSION,
            crate::mcp_http::era::META_CLIENT_CAPABILITIES,
            crate::mcp_http::era::META_CLIENT_INFO,
        ] {
            meta.remove(key);
        }
        if meta.is_empty()
            && let Some(obj) = params.as_object_mut()
        {
            obj.remove("_meta");
        }
    }
    params
}

/// Lowercase hex SHA-256 of a value's canonical JSON (keys sorted, no whitespace).
pub fn sha256_canonical(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(v).as_bytes()))
}

/// Keys whose values Payloads records always hide, whatever `redactKeys` says, in
/// [`normalise_key`] form. A key is hidden when its normalised name equals or ends with
/// one of these (or a `redactKeys` entry): `github_token`, `DB-Password`, `x-api-key`.
pub const ALWAYS_REDACTED: &[&str] = &[
    "authorization",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "clientsecret",
    "token",
    "tokens",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "apikey",
    "apikeys",
    "xapikey",
    "cookie",
    "cookies",
    "setcookie",
    "privatekey",
    "credential",
    "credentials",
];

/// Whether the value of `key` is hidden: its normalised name equals or ends with a
/// built-in key or one of `extra` (normalised already).
pub fn is_redacted(key: &str, extra: &[String]) -> bool {
    let key = normalise_key(key);
    ALWAYS_REDACTED
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .any(|r| !r.is_empty() && key.ends_with(r))
}

/// A copy of `v` with the values of redacted keys ([`is_redacted`]: the built-ins and
/// `extra`, normalised) replaced by [`REDACTED`] at any depth.
pub fn redact(v: &Value, extra: &[String]) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, val)| {
                    let val = if is_redacted(k, extra) {
                        json!(REDACTED)
                    } else {
                        redact(val, extra)
                    };
                    (k.clone(), val)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| redact(i, extra)).collect()),
        other => other.clone(),
    }
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_is_deep_and_case_insensitive() {
        let v = json!({"user": "a", "Password": "p", "SSN": 1,
                       "nested": [{"API_KEY": {"x": 1}, "ok": 2}]});
        let r = redact(&v, &[normalise_key("s-s-n")]);
        assert_eq!(
            r,
            json!({"user": "a", "Password": REDACTED, "SSN": REDACTED,
                   "nested": [{"API_KEY": REDACTED, "ok": 2}]})
        );
    }

    #[test]
    fn built_in_keys_match_normalised_names_and_suffixes() {
        for k in [
            "authorization",
            "Authorization",
            "password",
            "DB_PASSWORD",
            "db.password",
            "passwd",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "github_token",
            "access_token",
            "Access-Token",
            "refresh_token",
            "id_token",
            "api_key",
            "apiKey",
            "API-KEY",
            "x-api-key",
            "X_Api_Key",
            "cookie",
            "Set-Cookie",
            "private_key",
            "ssh private key",
            "credentials",
            "aws_credential",
            "tokens",
        ] {
            assert!(is_redacted(k, &[]), "{k} should be redacted");
        }
        for k in [
            "tokenizer",
            "user",
            "message",
            "monkey",
            "keys",
            "token_count",
            "cookie_jar",
        ] {
            assert!(!is_redacted(k, &[]), "{k} should be kept");
        }
        // Empty entries (a redactKeys of "-") never hide everything.
        assert!(!is_redacted("user", &[normalise_key("-")]));
        assert!(is_redacted("patient-SSN", &[normalise_key("ssn")]));
    }

    #[test]
    fn the_modern_envelope_is_not_audited() {
        let modern = json!({"cursor": "c", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "x"}}});
        assert_eq!(without_envelope(&modern), json!({"cursor": "c"}));
        let traced = json!({"_meta": {"progressToken": 1,
            "io.modelcontextprotocol/protocolVersion": "2026-07-28"}});
        assert_eq!(
            without_envelope(&traced),
            json!({"_meta": {"progressToken": 1}})
        );
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        assert_eq!(
            sha256_canonical(&json!({"a": 1, "b": 2})),
            sha256_canonical(&json!({"b": 2, "a": 1}))
        );
    }
}
