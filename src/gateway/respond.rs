//! The MCP routes, response side: sends the upstream request and relays the answer for
//! the route's [`Exchange`] (built by [`proxy`](super::proxy), which this module never
//! imports).
//! JSON bodies are read (bounded by `maxResponseBytes`), parsed once, rewritten only when
//! policy needs it (`tools/list` results) and audited; SSE bodies stream through event by
//! event by [`sse_relay`](super::sse_relay). A `tools/call` past its timeout is answered
//! with a JSON-RPC error and cancelled upstream in the same session.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;

use super::audit::Outcome;
use super::exchange::Exchange;
use super::state::{pass_through, upstream_unavailable, with_headers};
use super::upstream::{HeadersDeadline, UpstreamError, read_limited};
use crate::mcp_http::jsonrpc;

/// Sends the request and relays the answer.
pub async fn forward(mut ex: Exchange, mut req: Request<Bytes>) -> Response<Body> {
    if let Some(d) = ex.deadline {
        // Our own deadline answers first (with cancellation), not the upstream timeout.
        req.extensions_mut()
            .insert(HeadersDeadline(d + Duration::from_secs(1)));
    }
    let sent = ex.gw.upstream.send(req);
    let resp = match ex.deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, sent).await {
            Ok(r) => r,
            Err(_) => {
                let answers = ex.time_out();
                return super::refusal::json_response(StatusCode::OK, &ex.body_of(answers));
            }
        },
        None => sent.await,
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            ex.gw
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "upstream request failed");
            let ids = ex.pending_ids();
            ex.finish_all(Outcome::Error(None), |_| None);
            if let UpstreamError::Timeout(_) = e {
                return upstream_timed_out(&e.to_string(), &ids);
            }
            return upstream_unavailable(&e.to_string(), &ids);
        }
    };
    let status = resp.status();
    if status.is_server_error() {
        ex.gw
            .metrics
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
    }
    ex.track_sessions(resp.headers(), status);
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        if status.is_success() {
            ex.open_streams();
        }
        super::sse_relay::relay(ex, resp)
    } else if content_type.starts_with("application/json") {
        relay_json(ex, resp).await
    } else {
        let outcome = if status.is_success() {
            Outcome::Allowed
        } else {
            Outcome::Error(None)
        };
        ex.finish_all(outcome, |_| None);
        pass_through(resp)
    }
}

/// 504 with a JSON-RPC timeout error for the request's id (`ids` holds at most one).
fn upstream_timed_out(why: &str, ids: &[Value]) -> Response<Body> {
    let id = ids.first().cloned().unwrap_or(Value::Null);
    let body = jsonrpc::error_response(id, jsonrpc::code::TIMEOUT, why);
    super::refusal::json_response(StatusCode::GATEWAY_TIMEOUT, &body)
}

async fn relay_json(mut ex: Exchange, resp: Response<Body>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let limit = ex.cfg.limits.max_response_bytes;
    let read = read_limited(body, limit);
    let read = match ex.deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
            Ok(r) => r,
            Err(_) => {
                let answers = ex.time_out();
                return super::refusal::json_response(StatusCode::OK, &ex.body_of(answers));
            }
        },
        None => read.await,
    };
    let bytes = match read {
        Ok(Some(b)) => b,
        Ok(None) => {
            let answers = ex.too_large();
            return super::refusal::json_response(StatusCode::OK, &ex.body_of(answers));
        }
        Err(e) => {
            ex.gw
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            let ids = ex.pending_ids();
            ex.finish_all(Outcome::Error(None), |_| None);
            return upstream_unavailable(&e, &ids);
        }
    };
    let Ok(mut parsed) = serde_json::from_slice::<Value>(&bytes) else {
        ex.finish_all(Outcome::Error(None), |_| None);
        return with_headers(parts.status, &parts.headers, Body::from(bytes));
    };
    let mut changed = false;
    match &mut parsed {
        Value::Array(items) => {
            for m in items {
                let size = m.to_string().len();
                changed |= ex.on_message(m, size);
            }
        }
        single => changed |= ex.on_message(single, bytes.len()),
    }
    let outcome = if parts.status.is_success() {
        Outcome::Allowed
    } else {
        Outcome::Error(None)
    };
    ex.finish_all(outcome, |_| None);
    let body = if changed {
        Body::from(serde_json::to_vec(&parsed).unwrap_or_default())
    } else {
        Body::from(bytes)
    };
    with_headers(parts.status, &parts.headers, body)
}
