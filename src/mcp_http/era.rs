//! The two MCP protocol eras, as every part (gateway, bridge, prober) tells them apart.
//!
//! * **Legacy** (2024-11-05 … 2025-11-25): an `initialize` handshake, then a session
//!   (`Mcp-Session-Id` over Streamable HTTP) whose negotiated version applies to every
//!   later message.
//! * **Modern** (2026-07-28): stateless. No handshake and no session; every request
//!   carries its protocol version and the client's capabilities (and, optionally, its
//!   info) in `params._meta`, and over HTTP mirrors its version, method and name in the
//!   `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers (plus `Mcp-Param-*` for
//!   tool arguments the tool's schema marks with `x-mcp-header`). `server/discover`
//!   replaces `initialize`.
//!
//! Here: the names (headers, `_meta` keys, error codes), which era a request belongs to,
//! the routing-header check (-32020) and the header value encoding the SDKs use for
//! values that do not survive an HTTP field. No I/O and no policy.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// Protocol versions of the modern (stateless) era, oldest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// Protocol versions of the legacy (handshake) era, oldest first.
pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest modern version: what a probe proposes first.
pub const LATEST_MODERN: &str = "2026-07-28";
/// The newest legacy version: what an `initialize` proposes.
pub const LATEST_LEGACY: &str = "2025-11-25";

/// `Mcp-Method` header: mirrors the body's `method` on every modern request.
pub const METHOD_HEADER: &str = "mcp-method";
/// `Mcp-Name` header: mirrors the body's name for the methods in [`name_param`].
pub const NAME_HEADER: &str = "mcp-name";
/// Prefix of the `Mcp-Param-<token>` headers mirroring annotated tool arguments.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";
/// W3C trace context headers, forwarded as they are.
pub const TRACE_HEADERS: &[&str] = &["traceparent", "tracestate"];

/// `_meta` key of the request's protocol version (required on modern requests).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities (required on modern requests).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version (optional).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// `_meta` key naming the `subscriptions/listen` request (its JSON-RPC id) a notification
/// belongs to: the acknowledgement and every change notification of a subscription carry it.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The `subscriptions/listen` request a notification belongs to, if any.
pub fn subscription_id(msg: &Value) -> Option<&Value> {
    request_meta(msg)?.get(META_SUBSCRIPTION_ID)
}

/// The modern era's discovery method (replaces `initialize`).
pub const DISCOVER: &str = "server/discover";
/// The modern era's long-lived notification stream.
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";

/// JSON-RPC error codes the modern era adds.
pub mod code {
    /// A routing header disagrees with the body (or is missing).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// The server needs a client capability the request did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// The requested protocol version is not supported; `data.supported` lists what is.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// Which era a message or a peer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    Legacy,
    Modern,
}

impl Era {
    /// The era a protocol version belongs to; unknown versions are legacy when older than
    /// every modern one (date-shaped strings compare in order), modern otherwise.
    pub fn of_version(version: &str) -> Era {
        if MODERN_VERSIONS.contains(&version) || version > LATEST_LEGACY {
            Era::Modern
        } else {
            Era::Legacy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

/// The `_meta` object of a request's params, if any.
pub fn request_meta(msg: &Value) -> Option<&Map<String, Value>> {
    msg.get("params")?.get("_meta")?.as_object()
}

/// The protocol version a modern request declares in `params._meta`; `None` for a
/// legacy-era message (which carries none).
pub fn declared_version(msg: &Value) -> Option<&str> {
    request_meta(msg)?.get(META_PROTOCOL_VERSION)?.as_str()
}

/// Whether a message is a modern-era request: it declares a protocol version in
/// `_meta`, or it is `server/discover`.
pub fn is_modern_request(msg: &Value) -> bool {
    declared_version(msg).is_some() || super::jsonrpc::method(msg) == Some(DISCOVER)
}

/// The params key mirrored in `Mcp-Name` for a method, if the method names something:
/// the spec's table, and the tasks extension's (SEP-2663: `params.taskId` for
/// `tasks/get`, `tasks/update` and `tasks/cancel`, as the TypeScript SDK checks it).
pub fn name_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// Why a modern request's routing headers were refused (all answered with -32020).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderMismatch {
    #[error("MCP-Protocol-Version header does not match the request's _meta protocol version")]
    ProtocolVersion,
    #[error("Mcp-Method header does not match the request body's method")]
    Method,
    #[error("Mcp-Name header does not match the request body's {0} parameter")]
    Name(&'static str),
}

/// Checks a modern request's routing headers against its body, as the SDKs' servers do:
/// `MCP-Protocol-Version` equals the declared version, `Mcp-Method` equals `method`, and
/// for name-bearing methods `Mcp-Name` (decoded) equals the named parameter. `header`
/// looks a header up by lowercase name and must return `None` when it is absent (or
/// present more than once: a repeated routing header is never trusted).
///
/// Legacy-era messages (no declared version) are not checked: their clients send no
/// routing headers.
pub fn check_routing_headers<'h>(
    msg: &Value,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<(), HeaderMismatch> {
    let Some(version) = declared_version(msg) else {
        return Ok(());
    };
    if header(super::PROTOCOL_VERSION) != Some(version) {
        return Err(HeaderMismatch::ProtocolVersion);
    }
    let method = super::jsonrpc::method(msg);
    if method.is_none() || header(METHOD_HEADER) != method {
        return Err(HeaderMismatch::Method);
    }
    if let Some(key) = method.and_then(name_param)
        && let Some(body_name) = msg.get("params").and_then(|p| p.get(key))
    {
        let matches = match (
            body_name.as_str(),
            header(NAME_HEADER).and_then(decode_header_value),
        ) {
            (Some(body), Some(header)) => body == header,
            _ => false,
        };
        if !matches {
            return Err(HeaderMismatch::Name(key));
        }
    }
    Ok(())
}

/// Encodes a value for an `Mcp-Name` / `Mcp-Param-*` header the way the SDKs do: printable
/// ASCII without edge whitespace passes as it is, anything else (or anything that looks
/// like the sentinel) becomes `=?base64?<standard base64 of the UTF-8>?=`.
pub fn encode_header_value(value: &str) -> String {
    let safe = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && sentinel_payload(value).is_none();
    if safe {
        value.to_string()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value.as_bytes()))
    }
}

/// Inverse of [`encode_header_value`]: `None` for a malformed sentinel (bad or
/// non-canonical base64, or bytes that are not UTF-8), so a corrupt header never matches.
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = sentinel_payload(value) else {
        return Some(value.to_string());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn sentinel_payload(value: &str) -> Option<&str> {
    value.strip_prefix("=?base64?")?.strip_suffix("?=")
}

/// The `_meta` envelope a modern request must carry: version, capabilities and info.
pub fn request_envelope(version: &str, capabilities: Value, client_info: Value) -> Value {
    json!({
        META_PROTOCOL_VERSION: version,
        META_CLIENT_CAPABILITIES: capabilities,
        META_CLIENT_INFO: client_info,
    })
}

/// Adds the modern envelope to a request's `params._meta`, keeping every `_meta` key the
/// request already has (its own keys win).
pub fn stamp_envelope(msg: &mut Value, envelope: &Value) {
    let Some(obj) = msg.as_object_mut() else {
        return;
    };
    let params = obj.entry("params").or_insert_with(|| json!({}));
    if !params.is_object() {
        return;
    }
    let meta = params
        .as_object_mut()
        .expect("checked above")
        .entry("_meta")
        .or_insert_with(|| json!({}));
    let (Some(meta), Some(envelope)) = (meta.as_object_mut(), envelope.as_object()) else {
        return;
    };
    for (key, value) in envelope {
        meta.entry(key.clone()).or_insert_with(|| value.clone());
    }
}

/// The supported versions a -32022 error lists in `data.supported` (strings only).
pub fn unsupported_version_list(error: &Value) -> Option<Vec<String>> {
    let supported = error.get("data")?.get("supported")?.as_array()?;
    Some(
        supported
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn modern(method: &str, params: Value) -> Value {
        let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        stamp_envelope(
            &mut msg,
            &request_envelope(
                LATEST_MODERN,
                json!({}),
                json!({"name": "t", "version": "1"}),
            ),
        );
        msg
    }

    fn lookup<'a>(headers: &'a HashMap<&'a str, &'a str>) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| headers.get(name).copied()
    }

    #[test]
    fn eras_are_told_apart_by_the_envelope() {
        assert!(is_modern_request(&modern("tools/list", json!({}))));
        assert!(is_modern_request(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover"})
        ));
        assert!(!is_modern_request(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        ));
        assert_eq!(Era::of_version("2025-11-25"), Era::Legacy);
        assert_eq!(Era::of_version("2026-07-28"), Era::Modern);
        assert_eq!(Era::of_version("2027-01-01"), Era::Modern);
    }

    #[test]
    fn matching_headers_pass_and_every_mismatch_is_named() {
        let msg = modern("tools/call", json!({"name": "echo", "arguments": {}}));
        let mut h = HashMap::from([
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ]);
        assert_eq!(check_routing_headers(&msg, lookup(&h)), Ok(()));
        h.insert("mcp-name", "other");
        assert_eq!(
            check_routing_headers(&msg, lookup(&h)),
            Err(HeaderMismatch::Name("name"))
        );
        h.remove("mcp-name");
        assert_eq!(
            check_routing_headers(&msg, lookup(&h)),
            Err(HeaderMismatch::Name("name"))
        );
        h.insert("mcp-name", "echo");
        h.insert("mcp-method", "tools/list");
        assert_eq!(
            check_routing_headers(&msg, lookup(&h)),
            Err(HeaderMismatch::Method)
        );
        h.insert("mcp-method", "tools/call");
        h.insert("mcp-protocol-version", "2025-11-25");
        assert_eq!(
            check_routing_headers(&msg, lookup(&h)),
            Err(HeaderMismatch::ProtocolVersion)
        );
        h.remove("mcp-protocol-version");
        assert_eq!(
            check_routing_headers(&msg, lookup(&h)),
            Err(HeaderMismatch::ProtocolVersion)
        );
    }

    #[test]
    fn an_encoded_name_matches_after_decoding_and_a_corrupt_one_never_does() {
        let msg = modern("tools/call", json!({"name": "héllo", "arguments": {}}));
        let encoded = encode_header_value("héllo");
        assert!(encoded.starts_with("=?base64?"));
        let mut h = HashMap::from([
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", encoded.as_str()),
        ]);
        assert_eq!(check_routing_headers(&msg, lookup(&h)), Ok(()));
        h.insert("mcp-name", "=?base64?not base64?=");
        assert!(check_routing_headers(&msg, lookup(&h)).is_err());
        // Non-canonical base64 (trailing bits set) is refused like the SDKs refuse it.
        assert_eq!(
            decode_header_value("=?base64?aGk=?="),
            Some("hi".to_string())
        );
        assert_eq!(decode_header_value("=?base64?aGl=?="), None);
    }

    #[test]
    fn values_round_trip_through_the_header_encoding() {
        for value in ["echo", " lead", "tab\there", "ünï", "=?base64?x?=", ""] {
            assert_eq!(
                decode_header_value(&encode_header_value(value)).as_deref(),
                Some(value)
            );
        }
        assert_eq!(encode_header_value("plain_tool-1"), "plain_tool-1");
    }

    #[test]
    fn task_requests_mirror_their_task_id() {
        let msg = modern("tasks/get", json!({"taskId": "t-1"}));
        let h = HashMap::from([
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tasks/get"),
        ]);
        assert_eq!(
            check_routing_headers(&msg, lookup(&h)),
            Err(HeaderMismatch::Name("taskId"))
        );
        let mut h = h;
        h.insert("mcp-name", "t-1");
        assert_eq!(check_routing_headers(&msg, lookup(&h)), Ok(()));
    }

    #[test]
    fn legacy_messages_are_not_checked() {
        let msg =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}});
        assert_eq!(check_routing_headers(&msg, |_| None), Ok(()));
    }

    #[test]
    fn stamping_keeps_the_requests_own_meta() {
        let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "x", "_meta": {"progressToken": 7, META_PROTOCOL_VERSION: "2026-07-28"}}});
        stamp_envelope(
            &mut msg,
            &request_envelope("2099-01-01", json!({"x": 1}), json!({})),
        );
        let meta = request_meta(&msg).unwrap();
        assert_eq!(meta["progressToken"], 7);
        assert_eq!(meta[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(meta[META_CLIENT_CAPABILITIES], json!({"x": 1}));
    }

    #[test]
    fn supported_versions_are_read_from_a_32022_error() {
        let error = json!({"code": -32022, "message": "Unsupported protocol version",
            "data": {"supported": ["2026-07-28", 5], "requested": "1999-01-01"}});
        assert_eq!(
            unsupported_version_list(&error),
            Some(vec!["2026-07-28".to_string()])
        );
        assert_eq!(unsupported_version_list(&json!({"code": -32022})), None);
    }
}
