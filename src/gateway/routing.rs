//! The request headers the gateway forwards besides the body: the modern era's routing
//! headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`, see
//! [`era`]) and the W3C trace context (`traceparent`, `tracestate`).
//!
//! Routing headers mirror the body so that intermediaries can route without parsing it;
//! the gateway's decisions are always made on the body, so a header that says something
//! else is refused whole before any rule is decided ([`check`]: -32020, HTTP 400), and
//! what is forwarded is exactly what was checked: `Mcp-Name` follows the body's name when
//! the tool prefix is stripped ([`Routing::rename`]). `Mcp-Param-*` values are bounded
//! and forwarded unchanged: the upstream, which knows its tools' `x-mcp-header`
//! annotations, checks them against the arguments (docs/gateway.md, "Protocol eras",
//! says why the gateway does not). Trace context is forwarded only when it is valid W3C
//! trace context, else dropped ([`trace_context`]).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::refusal::{Refusal, Rule};
use crate::mcp_http::PROTOCOL_VERSION;
use crate::mcp_http::era::{self, Era, HeaderMismatch};
use crate::mcp_http::jsonrpc::{self, Kind};

/// Most distinct `Mcp-Param-*` headers on one request.
pub const MAX_PARAM_HEADERS: usize = 32;
/// Longest `Mcp-Param-*` value, in bytes.
pub const MAX_PARAM_VALUE_BYTES: usize = 8192;
/// Longest `Mcp-Param-*` header name, in bytes.
pub const MAX_PARAM_NAME_BYTES: usize = 128;
/// Longest `Mcp-Method` / `Mcp-Name` value forwarded, in bytes.
pub const MAX_ROUTING_VALUE_BYTES: usize = 8192;
/// Longest `tracestate` (all values joined) forwarded, in bytes (W3C's own limit).
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Most `tracestate` list members (W3C's own limit).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The routing headers of one POST, checked against its message, as they go upstream.
#[derive(Debug, Default)]
pub struct Routing {
    /// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*`, as forwarded.
    forwarded: HeaderMap,
}

impl Routing {
    /// Points the forwarded `Mcp-Name` at `name` (the body's new name), encoded as the
    /// SDKs encode it. Nothing is added when the caller sent no `Mcp-Name`.
    pub fn rename(&mut self, name: &str) {
        if self.forwarded.contains_key(era::NAME_HEADER)
            && let Ok(v) = HeaderValue::from_str(&era::encode_header_value(name))
        {
            self.forwarded.insert(era::NAME_HEADER, v);
        }
    }

    /// Adds the checked routing headers to an upstream request's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.forwarded {
            headers.append(name, value.clone());
        }
    }

    /// The `_meta` envelope of a modern message (version, capabilities, client info), for
    /// the gateway's own requests on its behalf.
    pub fn envelope(msg: &Value) -> Option<Value> {
        let meta = era::request_meta(msg)?;
        era::declared_version(msg)?;
        let mut out = serde_json::Map::new();
        for key in [
            era::META_PROTOCOL_VERSION,
            era::META_CLIENT_CAPABILITIES,
            era::META_CLIENT_INFO,
        ] {
            if let Some(v) = meta.get(key) {
                out.insert(key.to_owned(), v.clone());
            }
        }
        Some(Value::Object(out))
    }
}

fn mismatch(why: impl Into<String>) -> Refusal {
    Refusal::new(Rule::HeaderMismatch, why)
}

fn invalid(why: impl Into<String>) -> Refusal {
    Refusal::new(
        Rule::InvalidMessage,
        format!("invalid request: {}", why.into()),
    )
}

/// The one value of header `name` as text; `Err` when it is repeated (first-value and
/// last-value readers would disagree), `Ok(None)` when absent. A value that is not
/// visible ASCII reads as a value that matches nothing.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(mismatch(format!(
            "the {name} header appears more than once"
        )));
    }
    Ok(Some(first.to_str().unwrap_or("\u{0}")))
}

/// Checks a POST's routing headers against its (strictly parsed, single) message and
/// returns what will be forwarded, or the refusal: -32020 (`HeaderMismatch`) when a
/// routing header is repeated, missing on a modern request, or disagrees with the body;
/// -32600 (`InvalidMessage`) when `Mcp-Param-*` headers pass the bounds.
///
/// A modern request (a protocol version in `params._meta`) must carry
/// `MCP-Protocol-Version`, `Mcp-Method` and, for the name-bearing methods, `Mcp-Name`
/// equal to its body ([`era::check_routing_headers`]). Any other message (legacy era,
/// notifications) need not carry them, but those it carries must agree with the body
/// all the same. In every era an `Mcp-Name` must mirror a name the body carries.
pub fn check(headers: &HeaderMap, msg: &Value) -> Result<Routing, Refusal> {
    let version = single(headers, PROTOCOL_VERSION)?;
    let method_header = single(headers, era::METHOD_HEADER)?;
    let name_header = single(headers, era::NAME_HEADER)?;
    let params = param_headers(headers)?;
    let kind = jsonrpc::kind(msg);
    let method = jsonrpc::method(msg);
    let declared = era::declared_version(msg);
    if matches!(kind, Kind::Response | Kind::Error) {
        // A client's answer to a server request names no method: nothing to mirror and
        // nothing is forwarded (Mcp-Param-* mirror tool arguments only).
        return Ok(Routing::default());
    }
    let lookup = |name: &str| match name {
        PROTOCOL_VERSION => version,
        era::METHOD_HEADER => method_header,
        era::NAME_HEADER => name_header,
        _ => None,
    };
    if kind == Kind::Request && declared.is_some() {
        era::check_routing_headers(msg, lookup).map_err(|e| mismatch(e.to_string()))?;
    } else {
        if let (Some(v), Some(d)) = (version, declared)
            && v != d
        {
            return Err(mismatch(HeaderMismatch::ProtocolVersion.to_string()));
        }
        if method_header.is_some() && method_header != method {
            return Err(mismatch(HeaderMismatch::Method.to_string()));
        }
    }
    // Every era: an Mcp-Name mirrors a name the body carries, or is refused (the SDKs
    // skip the comparison when the body has no name; an intermediary would route on a
    // name that no request carries).
    if let Some(name) = name_header {
        let key = method.and_then(era::name_param);
        let body = key.and_then(|k| msg.get("params")?.get(k)?.as_str());
        match (key, body) {
            (Some(key), Some(body)) => {
                if era::decode_header_value(name).as_deref() != Some(body) {
                    return Err(mismatch(HeaderMismatch::Name(key).to_string()));
                }
            }
            _ => {
                return Err(mismatch(
                    "the Mcp-Name header names something the request body does not",
                ));
            }
        }
    }
    let mut forwarded = params;
    for (name, value) in [
        (era::METHOD_HEADER, method_header),
        (era::NAME_HEADER, name_header),
    ] {
        if let Some(v) = value {
            if v.len() > MAX_ROUTING_VALUE_BYTES {
                return Err(invalid(format!("the {name} header is too long")));
            }
            let v = HeaderValue::from_str(v).map_err(|_| mismatch("unreadable routing header"))?;
            forwarded.insert(HeaderName::from_static(name), v);
        }
    }
    Ok(Routing { forwarded })
}

/// The era of a message and the protocol version it travels under: the `_meta` version
/// of a modern message; for a legacy one `params.protocolVersion` of an `initialize`,
/// else the caller's `MCP-Protocol-Version` (the session's; None when it sent none).
/// The era is the body's (the envelope), whatever the headers say, as the gateway decides.
pub fn protocol(headers: &HeaderMap, msg: &Value) -> (Option<Era>, Option<String>) {
    if let Some(d) = era::declared_version(msg) {
        return (
            Some(Era::Modern),
            Some(d.to_owned()).filter(|d| d.len() <= 64),
        );
    }
    let version = if jsonrpc::method(msg) == Some("initialize") {
        msg["params"]["protocolVersion"].as_str()
    } else {
        headers.get(PROTOCOL_VERSION).and_then(|v| v.to_str().ok())
    };
    let version = version.filter(|v| v.len() <= 64).map(str::to_owned);
    (Some(Era::Legacy), version)
}

/// The `Mcp-Param-*` headers, bounded: at most [`MAX_PARAM_HEADERS`] names, each
/// carrying a token and at most [`MAX_PARAM_NAME_BYTES`], one visible-ASCII value each
/// of at most [`MAX_PARAM_VALUE_BYTES`].
fn param_headers(headers: &HeaderMap) -> Result<HeaderMap, Refusal> {
    let mut out = HeaderMap::new();
    for name in headers.keys() {
        let Some(token) = name.as_str().strip_prefix(era::PARAM_HEADER_PREFIX) else {
            continue;
        };
        if token.is_empty() {
            return Err(invalid("an Mcp-Param- header without a parameter name"));
        }
        if name.as_str().len() > MAX_PARAM_NAME_BYTES {
            return Err(invalid(format!(
                "an Mcp-Param-* header name is longer than {MAX_PARAM_NAME_BYTES} bytes"
            )));
        }
        if out.len() >= MAX_PARAM_HEADERS {
            return Err(invalid(format!(
                "more than {MAX_PARAM_HEADERS} Mcp-Param-* headers"
            )));
        }
        let Some(value) = single(headers, name.as_str())? else {
            continue;
        };
        if value.len() > MAX_PARAM_VALUE_BYTES {
            return Err(invalid(format!(
                "an Mcp-Param-* value is longer than {MAX_PARAM_VALUE_BYTES} bytes"
            )));
        }
        let value = HeaderValue::from_str(value)
            .ok()
            .ok_or_else(|| mismatch(format!("the {name} header is not visible ASCII")))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// The caller's W3C trace context as forwarded: `traceparent` when it is exactly one
/// valid value, and with it `tracestate` when its values (joined) are a valid list
/// within W3C's bounds. Anything else is dropped, never refused: tracing is the
/// caller's aid, not a condition of the request.
pub fn trace_context(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let (Some(parent), None) = (parents.next(), parents.next()) else {
        return out;
    };
    if !parent.to_str().is_ok_and(valid_traceparent) {
        return out;
    }
    out.insert(TRACEPARENT, parent.clone());
    let mut state = String::new();
    for v in headers.get_all(TRACESTATE) {
        let Ok(v) = v.to_str() else {
            return out;
        };
        if !state.is_empty() {
            state.push(',');
        }
        state.push_str(v);
        if state.len() > MAX_TRACESTATE_BYTES {
            return out;
        }
    }
    if !state.is_empty()
        && valid_tracestate(&state)
        && let Ok(v) = HeaderValue::from_str(&state)
    {
        out.insert(TRACESTATE, v);
    }
    out
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// W3C Trace Context `traceparent`: `version-traceid-parentid-flags`, lowercase hex,
/// version not `ff`, ids not all zeros; version `00` is exactly 55 characters, later
/// versions may append `-…` fields (at most 512 characters in all).
pub fn valid_traceparent(v: &str) -> bool {
    if v.len() < 55 || v.len() > 512 {
        return false;
    }
    let (head, rest) = v.split_at(55);
    let fields: Vec<&str> = head.split('-').collect();
    let [version, trace, parent, flags] = fields[..] else {
        return false;
    };
    lower_hex(version, 2)
        && version != "ff"
        && (rest.is_empty() || (version != "00" && rest.starts_with('-')))
        && lower_hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && lower_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2)
}

/// W3C Trace Context `tracestate`: at most 32 `key=value` members (empty members
/// ignored), keys lowercase `[a-z0-9_*/-]` with at most one `@` (tenant@system), values
/// printable ASCII without `,` and `=`, not ending in a space.
pub fn valid_tracestate(v: &str) -> bool {
    let mut members = 0;
    for member in v.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        members += 1;
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && key.bytes().filter(|b| *b == b'@').count() <= 1
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(&b));
        let value_ok = !value.is_empty()
            && value.len() <= 256
            && !value.ends_with(' ')
            && value
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
        if !key_ok || !value_ok {
            return false;
        }
    }
    members <= MAX_TRACESTATE_MEMBERS
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn modern(method: &str, params: Value) -> Value {
        let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        era::stamp_envelope(
            &mut msg,
            &era::request_envelope(era::LATEST_MODERN, json!({}), json!({"name": "t"})),
        );
        msg
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const ROUTED: [(&str, &str); 3] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "p_echo"),
    ];

    #[test]
    fn checked_headers_are_forwarded_and_the_name_follows_the_body() {
        let msg = modern("tools/call", json!({"name": "p_echo"}));
        let mut h = headers(&ROUTED);
        h.append("mcp-param-region", HeaderValue::from_static("eu"));
        let mut r = check(&h, &msg).unwrap();
        assert_eq!(
            protocol(&h, &msg),
            (Some(Era::Modern), Some("2026-07-28".to_owned()))
        );
        r.rename("échø");
        let mut out = HeaderMap::new();
        r.apply(&mut out);
        assert_eq!(out["mcp-method"], "tools/call");
        assert_eq!(out["mcp-name"], era::encode_header_value("échø").as_str());
        assert_eq!(out["mcp-param-region"], "eu");
        assert!(
            !out.contains_key("mcp-protocol-version"),
            "forwarded with the session headers"
        );
    }

    #[test]
    fn repeats_lies_and_orphans_are_mismatches() {
        let msg = modern("tools/call", json!({"name": "p_echo"}));
        let rule = |h: &HeaderMap, m: &Value| check(h, m).err().map(|r| r.rule);
        let mut h = headers(&ROUTED);
        h.append("mcp-name", HeaderValue::from_static("p_echo"));
        assert_eq!(rule(&h, &msg), Some(Rule::HeaderMismatch), "repeated");
        let mut h = headers(&ROUTED);
        h.append("mcp-param-x", HeaderValue::from_static("1"));
        h.append("mcp-param-x", HeaderValue::from_static("2"));
        assert_eq!(rule(&h, &msg), Some(Rule::HeaderMismatch), "repeated param");
        let list = modern("tools/list", json!({}));
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
            ("mcp-name", "x"),
        ]);
        assert_eq!(
            rule(&h, &list),
            Some(Rule::HeaderMismatch),
            "name on a list"
        );
        let legacy =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}});
        assert!(
            check(&HeaderMap::new(), &legacy).is_ok(),
            "legacy needs none"
        );
        let h = headers(&[("mcp-name", "b")]);
        assert_eq!(rule(&h, &legacy), Some(Rule::HeaderMismatch), "legacy lie");
        let h = headers(&[("mcp-name", "a"), ("mcp-method", "tools/call")]);
        assert!(check(&h, &legacy).is_ok(), "legacy truth");
        assert_eq!(
            rule(&HeaderMap::new(), &msg),
            Some(Rule::HeaderMismatch),
            "modern needs them"
        );
    }

    #[test]
    fn param_headers_are_bounded() {
        let msg = modern("tools/call", json!({"name": "p_echo"}));
        let mut h = headers(&ROUTED);
        for i in 0..MAX_PARAM_HEADERS {
            h.append(
                HeaderName::from_bytes(format!("mcp-param-p{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(check(&h, &msg).is_ok());
        h.append("mcp-param-one-more", HeaderValue::from_static("v"));
        assert_eq!(check(&h, &msg).unwrap_err().rule, Rule::InvalidMessage);
        let mut h = headers(&ROUTED);
        h.append(
            "mcp-param-big",
            HeaderValue::from_str(&"v".repeat(MAX_PARAM_VALUE_BYTES + 1)).unwrap(),
        );
        assert_eq!(check(&h, &msg).unwrap_err().rule, Rule::InvalidMessage);
    }

    #[test]
    fn trace_context_is_checked() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(valid_traceparent(good));
        assert!(valid_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
        ));
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
        assert!(valid_tracestate(
            "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,"
        ));
        assert!(valid_tracestate("tenant@sys=v"));
        for bad in ["noequals", "Upper=v", "k=v,", "k=a=b", "k=", "a@b@c=v"] {
            let ok = valid_tracestate(bad);
            assert_eq!(ok, bad == "k=v,", "{bad}");
        }
        let h = headers(&[
            ("traceparent", good),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]);
        let out = trace_context(&h);
        assert_eq!(out["traceparent"], good);
        assert_eq!(out["tracestate"], "a=1,b=2");
        let h = headers(&[("traceparent", good), ("traceparent", good)]);
        assert!(trace_context(&h).is_empty());
    }
}
