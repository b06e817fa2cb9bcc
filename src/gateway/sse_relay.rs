//! Relaying an upstream event stream (a POST's SSE answer or the GET stream): events are
//! framed as they arrive and forwarded exactly as upstream wrote them unless their message
//! needs a rewrite (`tools/list` results), an audit record (answers to the caller's
//! requests), or replacing (too large, timed out).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use axum::body::{Body, BodyDataStream};
use axum::http::Response;
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;

use super::audit::Outcome;
use super::enforce;
use super::exchange::Exchange;
use super::principal::Principal;
use super::refusal::{Refusal, Rule};
use super::sse::{SseEvent, SseFramer};
use super::state::with_headers;
use crate::mcp_http::jsonrpc::{self, Kind};

/// State of one relayed event stream.
struct SseRelay {
    ex: Exchange,
    upstream: BodyDataStream,
    framer: SseFramer,
    out: VecDeque<Bytes>,
    done: bool,
}

pub fn relay(ex: Exchange, resp: Response<Body>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let relay = SseRelay {
        ex,
        upstream: body.into_data_stream(),
        framer: SseFramer::default(),
        out: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(relay, |mut r| async move {
        loop {
            if let Some(b) = r.out.pop_front() {
                return Some((Ok::<Bytes, std::io::Error>(b), r));
            }
            if r.done {
                return None;
            }
            r.step().await;
        }
    });
    with_headers(parts.status, &parts.headers, Body::from_stream(stream))
}

impl SseRelay {
    /// Reads one upstream chunk (or times out) and queues what to send.
    async fn step(&mut self) {
        let deadline = self.ex.deadline.filter(|_| !self.ex.pending.is_empty());
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, self.upstream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let answers = self.ex.time_out();
                    self.emit_answers(answers);
                    self.done = true;
                    return;
                }
            },
            None => self.upstream.next().await,
        };
        match next {
            Some(Ok(chunk)) => {
                self.framer.push(&chunk);
                while let Some(raw) = self.framer.next_event() {
                    let event = self.on_event(raw);
                    self.out.push_back(event);
                }
                let limit = self.ex.cfg.limits.max_response_bytes;
                if self.framer.buffered() as u64 > limit.saturating_add(64 * 1024) {
                    let answers = self.ex.too_large();
                    self.emit_answers(answers);
                    self.done = true;
                }
            }
            Some(Err(e)) => {
                self.ex
                    .gw
                    .metrics
                    .upstream_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "upstream event stream failed");
                self.ex.finish_all(Outcome::Error(None), |_| None);
                self.done = true;
            }
            None => {
                let rest = self.framer.take_rest();
                if !rest.is_empty() {
                    let event = self.on_event(rest);
                    self.out.push_back(event);
                }
                self.ex.finish_all(Outcome::Error(None), |_| None);
                self.done = true;
            }
        }
    }

    /// One event: forwarded as is unless its message needs rewriting or replacing.
    fn on_event(&mut self, raw: Bytes) -> Bytes {
        let probe_only = self.ex.pending.is_empty()
            && matches!(self.ex.principal, Principal::Probe)
            && !enforce::needs_hashes(&self.ex.cfg);
        if probe_only {
            return raw;
        }
        let mut event = SseEvent::parse(&raw);
        let Some(data) = event.data.take() else {
            return raw;
        };
        let interesting = !self.ex.pending.is_empty()
            || data.contains("\"tools\"")
            || data.contains("list_changed");
        if !interesting {
            return raw;
        }
        let Ok(mut msg) = serde_json::from_str::<Value>(&data) else {
            return raw;
        };
        let limit = self.ex.cfg.limits.max_response_bytes;
        let key = msg.get("id").map(Value::to_string).unwrap_or_default();
        if data.len() as u64 > limit
            && matches!(jsonrpc::kind(&msg), Kind::Response | Kind::Error)
            && let Some(p) = self.ex.pending.remove(&key)
        {
            let refusal = Refusal::new(
                Rule::TooLarge,
                format!("the response is larger than the limit of {limit} bytes"),
            );
            let answer = refusal.to_jsonrpc(p.id.clone());
            let text = answer.to_string();
            p.finish(
                &self.ex.gw.audit,
                &self.ex.gw.metrics,
                Outcome::Denied(Rule::TooLarge),
                text.len() as u64,
                Some(&answer),
            );
            if self.ex.pending.is_empty() {
                self.ex.permit = None;
            }
            event.data = Some(text);
            return event.render();
        }
        if self.ex.on_message(&mut msg, data.len()) {
            event.data = Some(msg.to_string());
            return event.render();
        }
        raw
    }

    fn emit_answers(&mut self, answers: Vec<Value>) {
        for a in answers {
            let event = SseEvent {
                event: Some("message".into()),
                data: Some(a.to_string()),
                ..Default::default()
            };
            self.out.push_back(event.render());
        }
    }
}
