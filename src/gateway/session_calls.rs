//! The gateway's own requests inside a caller's session: `notifications/cancelled` when a
//! call times out, and `tools/list` to learn definition hashes when pinning needs one the
//! cache does not hold. For a modern (stateless) caller there is no session: the
//! gateway's `tools/list` carries the caller's `_meta` envelope and routing headers, and
//! a timed-out call is cancelled by closing its response stream (the modern era's way),
//! which the gateway does when it answers the timeout.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, Request, header};
use bytes::Bytes;
use serde_json::Value;

use super::live::LiveConfig;
use super::sse::{SseEvent, SseFramer};
use super::state::{Gateway, SessionHeaders, upstream_request};
use super::upstream::read_limited;
use crate::mcp_http::{PROTOCOL_VERSION, era, jsonrpc};

/// Sends `notifications/cancelled` for `id` upstream in the caller's session, in the
/// background.
pub fn send_cancelled(gw: &Arc<Gateway>, cfg: &LiveConfig, session: &SessionHeaders, id: Value) {
    if session.envelope.is_some() {
        return; // modern: the closed response stream is the cancellation
    }
    let req = own_request(cfg, session, jsonrpc::cancelled(id, "gateway call timeout"));
    let upstream = gw.upstream.clone();
    tokio::spawn(async move {
        match upstream.send(req).await {
            Ok(resp) => {
                let _ = axum::body::to_bytes(resp.into_body(), 64 * 1024).await;
            }
            Err(e) => tracing::warn!(error = %e, "could not send notifications/cancelled upstream"),
        }
    });
}

/// A POST of the gateway's own in the caller's session, or with the modern caller's
/// envelope and the routing headers it requires.
fn own_request(cfg: &LiveConfig, session: &SessionHeaders, mut msg: Value) -> Request<Bytes> {
    let mut headers = session.headers.clone();
    let mut method = None;
    if let Some(envelope) = &session.envelope {
        era::stamp_envelope(&mut msg, envelope);
        let version = envelope
            .get(era::META_PROTOCOL_VERSION)
            .and_then(Value::as_str);
        if let Some(v) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(PROTOCOL_VERSION, v);
        }
        method = jsonrpc::method(&msg).and_then(|m| HeaderValue::from_str(m).ok());
    }
    let body = Bytes::from(msg.to_string());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    let mut req = upstream_request(Method::POST, &headers, cfg, body);
    if let Some(m) = method {
        req.headers_mut().insert(era::METHOD_HEADER, m);
    }
    req
}

/// Lists the upstream's tools in the caller's session (all pages) to learn their
/// definition hashes, for pinning. Failures leave the cache as it was.
pub async fn fetch_definitions(gw: &Gateway, cfg: &LiveConfig, session: &SessionHeaders) {
    let mut cursor: Option<Value> = None;
    for _ in 0..50 {
        let id = gw.own_id();
        let mut msg =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}});
        if let Some(c) = &cursor {
            msg["params"]["cursor"] = c.clone();
        }
        let req = own_request(cfg, session, msg);
        let answer = tokio::time::timeout(cfg.limits.call_timeout, async {
            let resp = gw.upstream.send(req).await.ok()?;
            let sse = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/event-stream"));
            let bytes = read_limited(resp.into_body(), cfg.limits.max_response_bytes)
                .await
                .ok()??;
            find_response(&bytes, sse, &id)
        })
        .await
        .ok()
        .flatten();
        let Some(result) = answer.and_then(|mut a| a.get_mut("result").map(Value::take)) else {
            tracing::warn!("could not list the upstream's tools to check pins");
            return;
        };
        if let Some(tools) = result.get("tools").and_then(Value::as_array) {
            gw.definitions.record(tools.iter().map(|t| {
                let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                (name.to_owned(), crate::prober::inventory::tool_sha256(t))
            }));
        }
        cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            return;
        }
    }
}

/// The response with `id` in a JSON or SSE body.
fn find_response(bytes: &[u8], sse: bool, id: &Value) -> Option<Value> {
    let matches = |v: &Value| v.get("id") == Some(id);
    if !sse {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        return jsonrpc::messages(&v)
            .into_iter()
            .find(|m| matches(m))
            .cloned();
    }
    let mut framer = SseFramer::default();
    framer.push(bytes);
    let mut events = Vec::new();
    while let Some(raw) = framer.next_event() {
        events.push(raw);
    }
    events.push(framer.take_rest());
    events
        .into_iter()
        .filter_map(|raw| SseEvent::parse(&raw).data)
        .filter_map(|d| serde_json::from_str::<Value>(&d).ok())
        .find(matches)
}
