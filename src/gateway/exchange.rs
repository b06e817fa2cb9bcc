//! One caller request on its way through the gateway ([`Exchange`]): who asked, the
//! audit records awaiting an answer, their deadline, the `tools/call` permit and the
//! session an `initialize` opens. The routes build one per request
//! ([`Exchange::for_post`], [`Exchange::for_get`]); the relays
//! ([`respond`](super::respond) for JSON, [`sse_relay`](super::sse_relay) for event
//! streams) feed it the upstream's messages. It imports neither the routes nor the
//! relays; a timed-out `tools/call` is cancelled upstream through
//! [`session_calls`](super::session_calls).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::audit::{Outcome, PendingAudit};
use super::enforce;
use super::live::LiveConfig;
use super::principal::Principal;
use super::refusal::{Refusal, Rule};
use super::sessions::SessionSlot;
use super::state::{Gateway, SessionHeaders};
use crate::mcp_http::SESSION_ID;
use crate::mcp_http::era::{self, Era};
use crate::mcp_http::jsonrpc::{self, Kind};

/// What a POST's one message leaves awaiting its answer (see [`Exchange::for_post`]).
pub struct PostMessage {
    /// The message's audit record when it is a request (its answer ends it); None for a
    /// forwarded notification or response.
    pub record: Option<PendingAudit>,
    /// The concurrency permit of a `tools/call`, released when its answer is in; the
    /// call's answer is awaited at most `callTimeout`.
    pub call_permit: Option<OwnedSemaphorePermit>,
    /// Whether the message is an `initialize` (its answer may name a new session).
    pub initialize: bool,
    /// The place reserved for the session an `initialize` without one opens.
    pub session_slot: Option<SessionSlot>,
}

/// One caller request on its way: who asked, what is awaiting an answer.
pub struct Exchange {
    pub(super) gw: Arc<Gateway>,
    pub(super) cfg: Arc<LiveConfig>,
    pub(super) principal: Principal,
    /// Audit records awaiting their response, by the JSON text of their id.
    pub(super) pending: HashMap<String, PendingAudit>,
    /// When the unanswered request times out (`callTimeout` for a `tools/call`, the
    /// upstream timeout for another request).
    pub(super) deadline: Option<Instant>,
    pub(super) session: SessionHeaders,
    /// The concurrency permit of a `tools/call`; released when its answer is in.
    pub(super) permit: Option<OwnedSemaphorePermit>,
    initialize: bool,
    /// The place reserved for the session an `initialize` opens.
    slot: Option<SessionSlot>,
    /// The limit `deadline` stands for, for the timeout answer.
    timeout: Duration,
}

impl Exchange {
    /// `GET <path>`: the server's event stream. No request of the caller awaits an
    /// answer, so nothing times out and nothing is audited when the stream ends.
    pub fn for_get(
        gw: Arc<Gateway>,
        cfg: Arc<LiveConfig>,
        principal: Principal,
        session: SessionHeaders,
    ) -> Self {
        let timeout = gw.upstream_timeout;
        Exchange {
            gw,
            cfg,
            principal,
            pending: HashMap::new(),
            deadline: None,
            session,
            permit: None,
            initialize: false,
            slot: None,
            timeout,
        }
    }

    /// `POST <path>`: one message. A request awaits its answer until its deadline: the
    /// call timeout for a `tools/call` (which holds a concurrency permit), the upstream
    /// timeout for any other request; a forwarded notification or response awaits nothing.
    pub fn for_post(
        gw: Arc<Gateway>,
        cfg: Arc<LiveConfig>,
        principal: Principal,
        session: SessionHeaders,
        message: PostMessage,
    ) -> Self {
        let PostMessage {
            record,
            call_permit,
            initialize,
            session_slot,
        } = message;
        let (deadline, timeout) = match (&record, &call_permit) {
            (_, Some(_)) => (
                Some(Instant::now() + cfg.limits.call_timeout),
                cfg.limits.call_timeout,
            ),
            (Some(_), None) => (
                Some(Instant::now() + gw.upstream_timeout),
                gw.upstream_timeout,
            ),
            (None, None) => (None, gw.upstream_timeout),
        };
        let pending: HashMap<String, PendingAudit> =
            record.into_iter().map(|p| (p.id.to_string(), p)).collect();
        Exchange {
            gw,
            cfg,
            principal,
            pending,
            deadline,
            session,
            permit: call_permit,
            initialize,
            slot: session_slot,
            timeout,
        }
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

    /// Records the session an `initialize` answer opens, and forgets one the upstream no
    /// longer knows (404 in it).
    pub(super) fn track_sessions(&mut self, headers: &HeaderMap, status: StatusCode) {
        if self.initialize
            && status.is_success()
            && let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok())
        {
            self.gw.metrics.session_opened(id);
            if let Some(slot) = self.slot.take() {
                slot.open(id);
            }
        }
        if status == StatusCode::NOT_FOUND
            && let Some(id) = self.session.session_id()
        {
            self.gw.metrics.session_closed(id);
            // Reached only by the session's owner: the upstream no longer knows it.
            self.gw.sessions.forget(id);
        }
    }
}
