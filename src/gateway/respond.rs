//! The MCP routes, response side: sends the upstream request and relays the answer.
//! JSON bodies are read (bounded by `maxResponseBytes`), parsed once, rewritten only when
//! policy needs it (`tools/list` results) and audited; SSE bodies stream through event by
//! event by [`sse_relay`](super::sse_relay). A `tools/call` past its timeout is answered
//! with a JSON-RPC error and cancelled upstream in the same session.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::audit::{Outcome, PendingAudit};
use super::auth::Principal;
use super::enforce;
use super::live::LiveConfig;
use super::refusal::{Refusal, Rule};
use super::sessions::SessionSlot;
use super::state::{Gateway, SessionHeaders, pass_through, upstream_unavailable, with_headers};
use super::upstream::{HeadersDeadline, UpstreamError, read_limited};
use crate::mcp_http::SESSION_ID;
use crate::mcp_http::era::{self, Era};
use crate::mcp_http::jsonrpc::{self, Kind};

/// One caller request on its way: who asked, what is awaiting an answer.
pub struct Exchange {
    pub(super) gw: Arc<Gateway>,
    pub(super) cfg: Arc<LiveConfig>,
    pub(super) principal: Principal,
    /// Audit records awaiting their response, by the JSON text of their id.
    pub(super) pending: HashMap<String, PendingAudit>,
    /// When unanswered `tools/call`s time out.
    pub(super) deadline: Option<Instant>,
    pub(super) session: SessionHeaders,
    /// Concurrency permits of the calls; released when every answer is in.
    pub(super) permit: Option<OwnedSemaphorePermit>,
    initialize: bool,
    /// The place reserved for the session an `initialize` opens.
    slot: Option<SessionSlot>,
    /// The limit `deadline` stands for, for the timeout answer.
    timeout: Duration,
}

impl Exchange {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gw: Arc<Gateway>,
        cfg: Arc<LiveConfig>,
        principal: Principal,
        pending: Vec<PendingAudit>,
        deadline: Option<Instant>,
        session: SessionHeaders,
        permit: Option<OwnedSemaphorePermit>,
        initialize: bool,
    ) -> Self {
        let pending: HashMap<String, PendingAudit> =
            pending.into_iter().map(|p| (p.id.to_string(), p)).collect();
        // Requests other than tools/call are bounded by the upstream timeout.
        let (deadline, timeout) = match deadline {
            Some(d) => (Some(d), cfg.limits.call_timeout),
            None if !pending.is_empty() => (
                Some(Instant::now() + gw.upstream_timeout),
                gw.upstream_timeout,
            ),
            None => (None, gw.upstream_timeout),
        };
        Exchange {
            gw,
            cfg,
            principal,
            pending,
            deadline,
            session,
            permit,
            initialize,
            slot: None,
            timeout,
        }
    }

    /// Carries the slot reserved for the session this `initialize` opens.
    pub fn with_slot(mut self, slot: Option<SessionSlot>) -> Self {
        self.slot = slot;
        self
    }

    pub(super) fn pending_ids(&self) -> Vec<Value> {
        self.pending.values().map(|p| p.id.clone()).collect()
    }

    /// Ends every open record with `outcome`; answers for refusals are given by the caller.
    pub(super) fn finish_all(
        &mut self,
        outcome: Outcome,
        answer: impl Fn(&Value) -> Option<Value>,
    ) {
        for (_, p) in self.pending.drain() {
            let a = answer(&p.id);
            let bytes_out = a.as_ref().map_or(0, |a| a.to_string().len() as u64);
            p.finish(
                &self.gw.audit,
                &self.gw.metrics,
                outcome,
                bytes_out,
                a.as_ref(),
            );
        }
        self.permit = None;
    }

    /// Rewrites (tools/list results) and audits one message from upstream. Returns
    /// whether the message changed.
    pub(super) fn on_message(&mut self, msg: &mut Value, bytes: usize) -> bool {
        let kind = jsonrpc::kind(msg);
        if kind == Kind::Notification
            && jsonrpc::method(msg) == Some("notifications/tools/list_changed")
        {
            self.gw.definitions.clear();
        }
        if !matches!(kind, Kind::Response | Kind::Error) {
            return false;
        }
        let mut changed = false;
        let key = msg.get("id").map(Value::to_string).unwrap_or_default();
        let modern = self
            .pending
            .get(&key)
            .is_some_and(|p| p.era == Some(Era::Modern));
        if let Some(result) = msg.get_mut("result")
            && enforce::is_tools_list_result(result)
        {
            changed = enforce::rewrite_tools_list(
                result,
                &self.cfg,
                &self.principal,
                &self.gw.definitions,
            );
            changed |= enforce::mark_private(result, &self.cfg, modern);
        }
        if let Some(p) = self.pending.remove(&key) {
            let outcome = if kind == Kind::Error {
                Outcome::Error(None)
            } else {
                Outcome::Allowed
            };
            p.finish(
                &self.gw.audit,
                &self.gw.metrics,
                outcome,
                bytes as u64,
                Some(msg),
            );
            if self.pending.is_empty() {
                self.permit = None;
            }
        }
        changed
    }

    /// A `subscriptions/listen` is answered by an event stream that lives as long as the
    /// subscription (its closing result comes only when the server ends it): its record
    /// is written when the stream opens, and no deadline waits for its answer.
    pub(super) fn open_streams(&mut self) {
        let listens: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.method == era::SUBSCRIPTIONS_LISTEN)
            .map(|(k, _)| k.clone())
            .collect();
        for key in listens {
            if let Some(p) = self.pending.remove(&key) {
                p.finish(&self.gw.audit, &self.gw.metrics, Outcome::Allowed, 0, None);
            }
        }
        if self.pending.is_empty() {
            self.permit = None;
        }
    }

    /// The refusal answers for every open request under `rule`, ending their records.
    pub(super) fn refuse_pending(&mut self, refusal: &Refusal) -> Vec<Value> {
        let ids = self.pending_ids();
        let answers: Vec<Value> = ids
            .iter()
            .map(|id| refusal.to_jsonrpc(id.clone()))
            .collect();
        self.finish_all(Outcome::refused(refusal.rule), |id| {
            Some(refusal.to_jsonrpc(id.clone()))
        });
        answers
    }

    /// Times out every open request: cancels calls upstream, returns the answers.
    pub(super) fn time_out(&mut self) -> Vec<Value> {
        let calls: Vec<Value> = self
            .pending
            .values()
            .filter(|p| p.method == "tools/call")
            .map(|p| p.id.clone())
            .collect();
        for id in calls {
            super::session_calls::send_cancelled(&self.gw, &self.cfg, &self.session, id);
        }
        let message = if self.pending.values().any(|p| p.method == "tools/call") {
            format!(
                "the call took longer than the limit of {} ms and was cancelled",
                self.timeout.as_millis()
            )
        } else {
            format!(
                "the MCP server did not answer within the limit of {} ms",
                self.timeout.as_millis()
            )
        };
        let refusal = Refusal::new(Rule::Timeout, message);
        self.refuse_pending(&refusal)
    }

    pub(super) fn too_large(&mut self) -> Vec<Value> {
        let refusal = Refusal::new(
            Rule::TooLarge,
            format!(
                "the response is larger than the limit of {} bytes",
                self.cfg.limits.max_response_bytes
            ),
        );
        self.refuse_pending(&refusal)
    }

    /// The body answering the caller's one message (batches are refused on the way in).
    pub(super) fn body_of(&self, mut answers: Vec<Value>) -> Value {
        answers.pop().unwrap_or(Value::Null)
    }
}

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
    track_sessions(&mut ex, resp.headers(), status);
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

fn track_sessions(ex: &mut Exchange, headers: &HeaderMap, status: StatusCode) {
    if ex.initialize
        && status.is_success()
        && let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok())
    {
        ex.gw.metrics.session_opened(id);
        if let Some(slot) = ex.slot.take() {
            slot.open(id);
        }
    }
    if status == StatusCode::NOT_FOUND
        && let Some(id) = ex.session.session_id()
    {
        ex.gw.metrics.session_closed(id);
        // Reached only by the session's owner: the upstream no longer knows it.
        ex.gw.sessions.forget(id);
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
