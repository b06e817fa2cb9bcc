//! The MCP routes, request side: authenticate (before reading the body: a refused
//! caller's body is never read), bound the body, parse it strictly
//! ([`strict_json`]) into exactly one JSON-RPC message, check its
//! routing headers against it ([`routing`](super::routing): -32020 before any rule), apply
//! the read-only rule for probes, the rate limit, the tool policy and prefix for a
//! `tools/call`, the concurrency limit, then forward to the upstream and hand the answer
//! to [`respond`] with the request's [`Exchange`] (one constructor per route:
//! [`Exchange::for_post`], [`Exchange::for_get`]; a DELETE's answer is passed through). Unknown methods, notifications and responses to server
//! requests pass through untouched — once they parsed strictly.
//!
//! Nothing unchecked goes upstream: a body that is not strict JSON is refused (HTTP 400,
//! JSON-RPC -32700, rule `Malformed`), and so is strict JSON that is not one message — a
//! batch (JSON array; removed from MCP in 2025-06-18), a scalar, an object that is no
//! request, notification or response, a request whose id is not a string or an integer,
//! a `tools/call` without a string `params.name` (HTTP 400, -32600, `InvalidMessage`).
//! Every refusal of a whole request is one JSON-RPC error (id null) and one audit record.
//! The upstream receives the bytes the caller sent, or the re-serialised message when the
//! gateway rewrote it (tool prefix); `docs/gateway.md` ("Strict parsing") says why the
//! two mean the same to any upstream.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::audit::{Outcome, PendingAudit};
use super::auth::PROBE_METHODS;
use super::enforce;
use super::exchange::{Exchange, PostMessage};
use super::live::LiveConfig;
use super::principal::Principal;
use super::ratelimit::retry_after_secs;
use super::refusal::{Refusal, Rule, json_response};
use super::respond;
use super::state::{Gateway, SessionHeaders, pass_through, upstream_request, upstream_unavailable};
use super::strict_json;
use crate::mcp_http::SESSION_ID;
use crate::mcp_http::jsonrpc::{self, Kind, code};

/// `POST <path>`: client messages.
pub async fn post(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let start = Instant::now();
    let Some(cfg) = gw.config.current() else {
        return not_configured();
    };
    // Authenticate first: a refused caller's body is never read.
    let principal = match gw.authenticate(&headers, &cfg).await {
        Ok(p) => p,
        Err(refusal) => {
            return refuse_request(&gw, &cfg, "unknown", &Method::POST, &refusal, 0, start);
        }
    };
    let (body, mut parsed) = match read_message(&headers, body, &cfg).await {
        Ok(read) => read,
        Err((refusal, len)) => {
            let who = principal.name();
            return refuse_request(&gw, &cfg, who, &Method::POST, &refusal, len, start);
        }
    };
    // One record per message, written when it is refused or, for a request, answered.
    let mut record = PendingAudit::start(
        cfg.clone(),
        principal.name(),
        &parsed,
        body.len() as u64,
        start,
    );
    (record.era, record.protocol_version) = super::routing::protocol(&headers, &parsed);
    // Routing headers that disagree with the body: refused before any rule is decided.
    let mut routing = match super::routing::check(&headers, &parsed) {
        Ok(r) => r,
        Err(refusal) => return refuse(&gw, record, &refusal),
    };
    let request = jsonrpc::kind(&parsed) == Kind::Request;
    if let Err(refusal) = admit(&gw, &cfg, &principal, &parsed, usize::from(request)) {
        return refuse(&gw, record, &refusal);
    }
    // Session ownership and caps, before anything is sent in the named session.
    let opens = request && record.method == "initialize";
    let slot = match super::session_gate::gate_post(&gw, &principal, &headers, opens).await {
        Ok(slot) => slot,
        Err(refusal) => return refuse(&gw, record, &refusal),
    };
    let session = SessionHeaders::of(&headers, Some(&parsed));
    let (verdict, rewritten) = check_call(&gw, &cfg, &principal, &mut parsed, &session).await;
    if let Some((answer, outcome)) = verdict {
        return answer_refused(&gw, record, &answer, outcome);
    }
    if rewritten && let Some(name) = jsonrpc::param_name(&parsed) {
        routing.rename(name);
    }
    let calls = u32::from(request && record.method == "tools/call");
    let permit = match acquire_calls(&cfg, calls) {
        Ok(p) => p,
        Err(refusal) => return refuse(&gw, record, &refusal),
    };
    let body = if rewritten {
        Bytes::from(serde_json::to_vec(&parsed).unwrap_or_default())
    } else {
        body
    };
    let mut req = upstream_request(Method::POST, &headers, &cfg, body);
    routing.apply(req.headers_mut());
    let message = PostMessage {
        // Only a request awaits an answer; a forwarded notification or response has no record.
        record: request.then_some(record),
        call_permit: permit,
        initialize: opens,
        session_slot: slot,
    };
    let exchange = Exchange::for_post(gw.clone(), cfg, principal, session, message);
    let resp = respond::forward(exchange, req).await;
    super::session_gate::hold_while_streaming(&gw, &headers, resp)
}

/// `GET <path>`: the server's event stream (also resumption with `Last-Event-ID`).
pub async fn get(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response<Body> {
    let start = Instant::now();
    let Some(cfg) = gw.config.current() else {
        return not_configured();
    };
    let principal = match gw.authenticate(&headers, &cfg).await {
        Ok(p) => p,
        Err(refusal) => {
            return refuse_request(&gw, &cfg, "unknown", &Method::GET, &refusal, 0, start);
        }
    };
    if let Err(refusal) = super::session_gate::gate(&gw, &principal, &headers).await {
        let who = principal.name();
        return refuse_request(&gw, &cfg, who, &Method::GET, &refusal, 0, start);
    }
    let req = upstream_request(Method::GET, &headers, &cfg, Bytes::new());
    let session = SessionHeaders::of(&headers, None);
    let exchange = Exchange::for_get(gw.clone(), cfg, principal, session);
    let resp = respond::forward(exchange, req).await;
    super::session_gate::hold_while_streaming(&gw, &headers, resp)
}

/// `DELETE <path>`: ends a session.
pub async fn delete(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response<Body> {
    let start = Instant::now();
    let Some(cfg) = gw.config.current() else {
        return not_configured();
    };
    let principal = match gw.authenticate(&headers, &cfg).await {
        Ok(p) => p,
        Err(refusal) => {
            return refuse_request(&gw, &cfg, "unknown", &Method::DELETE, &refusal, 0, start);
        }
    };
    if let Err(refusal) = super::session_gate::gate(&gw, &principal, &headers).await {
        let who = principal.name();
        return refuse_request(&gw, &cfg, who, &Method::DELETE, &refusal, 0, start);
    }
    let resp = forward_untracked(&gw, &cfg, Method::DELETE, &headers, Bytes::new()).await;
    if (resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND)
        && let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok())
    {
        gw.metrics.session_closed(id);
        gw.sessions.forget(id);
    }
    resp
}

/// Forwards without looking at the answer (DELETE).
async fn forward_untracked(
    gw: &Gateway,
    cfg: &LiveConfig,
    method: Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    match gw
        .upstream
        .send(upstream_request(method, headers, cfg, body))
        .await
    {
        Ok(resp) => pass_through(resp),
        Err(e) => {
            gw.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            upstream_unavailable(&e.to_string(), &[])
        }
    }
}

/// Reads the body, refusing more than `limit` bytes (by `Content-Length` before reading).
async fn read_request_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            Rule::TooLarge,
            format!("request body larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| too_large())
}

/// Reads the body and parses it strictly into one JSON-RPC message. A refusal comes with
/// the number of bytes read (0 when the body was refused unread).
async fn read_message(
    headers: &HeaderMap,
    body: Body,
    cfg: &LiveConfig,
) -> Result<(Bytes, Value), (Refusal, u64)> {
    // Every value: the upstream receives them all and may pick any.
    let mut content_types = headers.get_all(header::CONTENT_TYPE).iter();
    if !content_types.all(|v| v.to_str().is_ok_and(strict_json::utf8_content_type)) {
        let why = "parse error: the body must be UTF-8 (the Content-Type names another charset)";
        return Err((Refusal::new(Rule::Malformed, why), 0));
    }
    let body = read_request_body(headers, body, cfg.limits.max_request_bytes)
        .await
        .map_err(|r| (r, 0))?;
    let len = body.len() as u64;
    let parsed = strict_json::parse(&body).map_err(|e| {
        let refusal = Refusal::new(Rule::Malformed, format!("parse error: {e}"));
        (refusal, len)
    })?;
    one_message(&parsed).map_err(|r| (r, len))?;
    Ok((body, parsed))
}

/// Whether a strictly parsed body is one JSON-RPC message the gateway can decide on.
fn one_message(msg: &Value) -> Result<(), Refusal> {
    let invalid = |why: &str| {
        let message = format!("invalid request: {why}");
        Err(Refusal::new(Rule::InvalidMessage, message))
    };
    match msg {
        Value::Object(_) => {}
        Value::Array(_) => {
            return invalid(
                "JSON-RPC batches are not supported (removed from MCP in 2025-06-18); \
                 send one message per request",
            );
        }
        _ => return invalid("the body is not a JSON-RPC message (an object)"),
    }
    match jsonrpc::kind(msg) {
        Kind::Invalid => invalid("not a JSON-RPC request, notification or response"),
        Kind::Request if !(msg["id"].is_string() || msg["id"].is_i64() || msg["id"].is_u64()) => {
            invalid("a request id must be a string or an integer")
        }
        Kind::Request
            if jsonrpc::method(msg) == Some("tools/call") && jsonrpc::param_name(msg).is_none() =>
        {
            invalid("tools/call needs params.name, a string")
        }
        _ => Ok(()),
    }
}

/// Refuses a whole request before any JSON-RPC message in it is looked at
/// (unauthenticated, a foreign session on GET or DELETE, too large, not strict JSON,
/// not one message): the rule's HTTP
/// status, one JSON-RPC error with id null, one audit record whose method is the HTTP
/// method.
fn refuse_request(
    gw: &Gateway,
    cfg: &Arc<LiveConfig>,
    who: &str,
    http_method: &Method,
    refusal: &Refusal,
    bytes_in: u64,
    start: Instant,
) -> Response<Body> {
    let answer = refusal.to_jsonrpc(Value::Null);
    let what = json!({"method": http_method.as_str()});
    PendingAudit::start(cfg.clone(), who, &what, bytes_in, start).finish(
        &gw.audit,
        &gw.metrics,
        Outcome::refused(refusal.rule),
        answer.to_string().len() as u64,
        Some(&answer),
    );
    refusal.into_response(&[Value::Null], false)
}

/// Rules on the message: read-only probes, then the rate limit (`requests` is 1 for a
/// request, 0 for a notification or response).
fn admit(
    gw: &Gateway,
    cfg: &LiveConfig,
    principal: &Principal,
    parsed: &Value,
    requests: usize,
) -> Result<(), Refusal> {
    if matches!(principal, Principal::Probe) {
        let method = jsonrpc::method(parsed).unwrap_or_default();
        if PROBE_METHODS.contains(&method) {
            return Ok(());
        }
        let what = if method.is_empty() {
            "a response"
        } else {
            method
        };
        return Err(Refusal::new(
            Rule::ReadOnly,
            format!("the probe token is read-only: {what} is not allowed"),
        ));
    }
    let Some(limit) = &cfg.file.policy.rate_limit else {
        return Ok(());
    };
    if requests == 0 {
        return Ok(());
    }
    gw.limiter
        .take(limit, principal.name(), requests as u32, Instant::now())
        .map_err(|wait| {
            let secs = retry_after_secs(wait);
            let mut r = Refusal::new(
                Rule::RateLimited,
                format!(
                    "rate limit of {} requests per minute (burst {}) exceeded; retry in {secs} s",
                    limit.requests_per_minute, limit.burst
                ),
            );
            r.retry_after_secs = Some(secs);
            r
        })
}

/// Applies the tool policy and prefix to a `tools/call` (renaming it in place). Returns
/// the gateway's answer and outcome when the call is refused, and whether it was renamed.
async fn check_call(
    gw: &Gateway,
    cfg: &LiveConfig,
    principal: &Principal,
    msg: &mut Value,
    session: &SessionHeaders,
) -> (Option<(Value, Outcome)>, bool) {
    if jsonrpc::kind(msg) != Kind::Request || jsonrpc::method(msg) != Some("tools/call") {
        return (None, false);
    }
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let exposed = jsonrpc::param_name(msg).unwrap_or_default().to_owned();
    let Some(name) = enforce::strip_prefix(cfg, principal, &exposed).map(str::to_owned) else {
        let answer = jsonrpc::error_response_with_data(
            id,
            code::INVALID_PARAMS,
            format!("Unknown tool: {exposed}"),
            json!({"tool": exposed}),
        );
        return (Some((answer, Outcome::Error(None))), false);
    };
    let hash = if enforce::needs_hashes(cfg) {
        match gw.definitions.get(&name) {
            Some(h) => h,
            None => {
                super::session_calls::fetch_definitions(gw, cfg, session).await;
                gw.definitions.get(&name).unwrap_or_default()
            }
        }
    } else {
        String::new()
    };
    match enforce::decide(cfg, principal, &name, &hash) {
        Ok(()) if name != exposed => {
            msg["params"]["name"] = Value::String(name);
            (None, true)
        }
        Ok(()) => (None, false),
        Err(rule) => {
            let refusal = enforce::call_refusal(rule, &exposed);
            (Some((refusal.to_jsonrpc(id), Outcome::Denied(rule))), false)
        }
    }
}

/// Permits for `n` calls, or Overloaded.
fn acquire_calls(cfg: &LiveConfig, n: u32) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
    if n == 0 {
        return Ok(None);
    }
    cfg.calls
        .clone()
        .try_acquire_many_owned(n)
        .map(Some)
        .map_err(|_| {
            Refusal::new(
                Rule::Overloaded,
                format!(
                    "too many tool calls in flight (limit {}); retry shortly",
                    cfg.limits.max_concurrent_calls
                ),
            )
        })
}

/// Answers the message with `refusal` (HTTP status per rule) and writes its one audit
/// record (id null for a notification or response).
fn refuse(gw: &Gateway, record: PendingAudit, refusal: &Refusal) -> Response<Body> {
    let answer = refusal.to_jsonrpc(record.id.clone());
    let resp = refusal.into_response(std::slice::from_ref(&record.id), false);
    let bytes_out = answer.to_string().len() as u64;
    let outcome = Outcome::refused(refusal.rule);
    record.finish(&gw.audit, &gw.metrics, outcome, bytes_out, Some(&answer));
    resp
}

/// Answers a call the gateway refused itself (nothing is forwarded): `answer` in a 200,
/// as an MCP server would.
fn answer_refused(
    gw: &Gateway,
    record: PendingAudit,
    answer: &Value,
    outcome: Outcome,
) -> Response<Body> {
    let bytes_out = answer.to_string().len() as u64;
    record.finish(&gw.audit, &gw.metrics, outcome, bytes_out, Some(answer));
    json_response(StatusCode::OK, answer)
}

fn not_configured() -> Response<Body> {
    let mut resp = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &jsonrpc::error_response(
            Value::Null,
            code::UPSTREAM_UNAVAILABLE,
            "the gateway has no valid configuration yet",
        ),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    resp
}
