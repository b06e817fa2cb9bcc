//! The session rules applied to requests, over the table in [`sessions`](super::sessions):
//! who owns a session ([`owner`]: a binding, the ServiceAccount whose token
//! authenticated, the probe, or anonymous), the rule for a POST ([`gate_post`]: a named
//! session must be the caller's, an `initialize` needs a free slot) and for a GET or
//! DELETE ([`gate`]), keeping a session in use while its event stream is open
//! ([`hold_while_streaming`]), and the task that expires idle sessions and ends them
//! upstream ([`spawn_expiry`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, header};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::time::Instant;

use super::config::{BindingConfig, token_sha256};
use super::live::LiveConfig;
use super::principal::Principal;
use super::refusal::Refusal;
use super::sessions::{Owner, SessionSlot, session_id};
use super::state::{Gateway, upstream_request};
use crate::mcp_http::{LAST_EVENT_ID, SESSION_ID};

/// The owner for an authenticated request. A binding principal authenticated by a
/// ServiceAccount token is that ServiceAccount (its TokenReview answer is cached, so
/// this asks the API server nothing new).
pub async fn owner(gw: &Gateway, principal: &Principal, headers: &HeaderMap) -> Owner {
    match principal {
        Principal::Binding(b) => match service_account_of(gw, b, headers).await {
            Some(user) => Owner::ServiceAccount(user),
            None => Owner::Binding(b.name.clone()),
        },
        Principal::Probe => Owner::Probe,
        Principal::Anonymous => Owner::Anonymous,
    }
}

/// The ServiceAccount whose token authenticated a request for `binding`, if one did.
async fn service_account_of(
    gw: &Gateway,
    binding: &BindingConfig,
    headers: &HeaderMap,
) -> Option<String> {
    if binding.service_accounts.is_empty() {
        return None;
    }
    let reviewer = gw.reviewer.as_ref()?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::auth::bearer_token)?;
    let hash = token_sha256(token);
    if binding
        .token_sha256
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&hash))
    {
        return None;
    }
    reviewer.review(token).await.map(|user| user.to_string())
}

/// The session rule for a POST: a named session must be the caller's; an `initialize`
/// without one needs a free slot (kept until the answer names the new session).
pub async fn gate_post(
    gw: &Gateway,
    principal: &Principal,
    headers: &HeaderMap,
    initialize: bool,
) -> Result<Option<SessionSlot>, Refusal> {
    let owner = owner(gw, principal, headers).await;
    match session_id(headers) {
        Some(id) => gw.sessions.check(id, &owner).map(|()| None),
        None if initialize => gw.sessions.reserve(&owner).map(Some),
        None => Ok(None),
    }
}

/// The session rule for a GET or DELETE: a named session must be the caller's, and a
/// replay (`Last-Event-ID`) must name one: events are the session's, and an upstream
/// whose event store answered replays without a session would serve anyone's.
pub async fn gate(gw: &Gateway, principal: &Principal, headers: &HeaderMap) -> Result<(), Refusal> {
    match session_id(headers) {
        Some(id) => gw.sessions.check(id, &owner(gw, principal, headers).await),
        None if headers.contains_key(LAST_EVENT_ID) => Err(gw.sessions.refuse_unknown()),
        None => Ok(()),
    }
}

/// Keeps the caller's session in use while `resp`'s event stream is open (a GET stream,
/// an SSE answer), so an open stream never counts as idle. JSON answers pass untouched.
pub fn hold_while_streaming(
    gw: &Gateway,
    headers: &HeaderMap,
    resp: Response<Body>,
) -> Response<Body> {
    let streaming = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !streaming {
        return resp; // a JSON answer is complete: nothing to hold
    }
    let Some(guard) = session_id(headers).and_then(|id| gw.sessions.hold(id)) else {
        return resp;
    };
    let (parts, body) = resp.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Every `min(idle / 4, 30 s)`, expires idle sessions and ends each upstream with a
/// DELETE (in the background, bounded by the upstream timeout).
pub fn spawn_expiry(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    let every =
        (gw.sessions.limits().idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let gone = gw.sessions.expire(Instant::now());
            if gone.is_empty() {
                continue;
            }
            let Some(cfg) = gw.config.current() else {
                continue;
            };
            for (id, owner) in gone {
                gw.metrics.session_closed(&id);
                tracing::info!(
                    ?owner,
                    "session expired after the idle limit; ending it upstream"
                );
                end_upstream(&gw, &cfg, &id).await;
            }
        }
    })
}

async fn end_upstream(gw: &Gateway, cfg: &LiveConfig, id: &str) {
    let Ok(value) = HeaderValue::from_str(id) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(SESSION_ID, value);
    let req = upstream_request(Method::DELETE, &headers, cfg, Bytes::new());
    match gw.upstream.send(req).await {
        Ok(resp) => {
            let _ = axum::body::to_bytes(resp.into_body(), 64 * 1024).await;
        }
        Err(e) => tracing::debug!(error = %e, "DELETE of an expired session failed upstream"),
    }
}
