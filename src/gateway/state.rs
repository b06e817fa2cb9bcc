//! What the MCP routes and their helpers share, in a leaf that imports none of them:
//! the gateway's state ([`Gateway`]: configuration, upstream, metrics, audit, rate
//! limiter, definition cache, TokenReview, session table), the caller's session headers
//! the gateway's own requests reuse ([`SessionHeaders`]), and the headers that cross the
//! gateway each way ([`upstream_request`], [`with_headers`]). The routes
//! ([`proxy`](super::proxy)), the answer's relays ([`respond`](super::respond),
//! [`sse_relay`](super::sse_relay)), the per-request [`Exchange`](super::exchange::Exchange),
//! the session rules ([`session_gate`](super::session_gate)) and the gateway's own
//! requests ([`session_calls`](super::session_calls)) import it; it imports none of them
//! back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::audit::AuditLog;
use super::auth::authenticate_any;
use super::enforce::ToolDefinitions;
use super::live::{ConfigHandle, LiveConfig};
use super::metrics::Metrics;
use super::principal::Principal;
use super::ratelimit::RateLimiter;
use super::refusal::{Refusal, json_response};
use super::token_review::TokenReviewer;
use super::upstream::Upstream;
use crate::mcp_http::jsonrpc::{self, code};
use crate::mcp_http::{LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID};

/// Request headers forwarded upstream. The caller's `Authorization` never is.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    SESSION_ID,
    PROTOCOL_VERSION,
    LAST_EVENT_ID,
];

/// Response headers relayed to the caller.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "retry-after",
    SESSION_ID,
    PROTOCOL_VERSION,
];

/// Everything the MCP routes share.
pub struct Gateway {
    pub config: Arc<ConfigHandle>,
    pub upstream: Arc<dyn Upstream>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditLog,
    pub limiter: RateLimiter,
    pub definitions: ToolDefinitions,
    /// Some when the gateway may check ServiceAccount tokens with TokenReview.
    pub reviewer: Option<Arc<TokenReviewer>>,
    /// Session owners, caps and idle expiry.
    pub sessions: Arc<super::sessions::Sessions>,
    /// Longest wait for the upstream's answer to a request that is not a `tools/call`
    /// (for streams: for its headers).
    pub upstream_timeout: std::time::Duration,
    own_ids: AtomicU64,
}

impl Gateway {
    pub fn new(
        config: Arc<ConfigHandle>,
        upstream: Arc<dyn Upstream>,
        metrics: Arc<Metrics>,
        audit: AuditLog,
    ) -> Self {
        Gateway {
            config,
            upstream,
            metrics,
            audit,
            limiter: RateLimiter::default(),
            definitions: ToolDefinitions::default(),
            reviewer: None,
            sessions: Arc::default(),
            upstream_timeout: super::upstream::DEFAULT_UPSTREAM_TIMEOUT,
            own_ids: AtomicU64::new(1),
        }
    }

    /// Session caps and idle expiry, and the upstream timeout (defaults otherwise).
    pub fn with_limits(
        mut self,
        sessions: super::sessions::SessionLimits,
        upstream_timeout: std::time::Duration,
    ) -> Self {
        self.sessions = Arc::new(super::sessions::Sessions::new(sessions));
        self.upstream_timeout = upstream_timeout;
        self
    }

    /// Accepts ServiceAccount tokens, checked by `reviewer`.
    pub fn with_token_review(mut self, reviewer: Arc<TokenReviewer>) -> Self {
        self.reviewer = Some(reviewer);
        self
    }

    pub(super) async fn authenticate(
        &self,
        headers: &HeaderMap,
        cfg: &LiveConfig,
    ) -> Result<Principal, Refusal> {
        let principal = authenticate_any(headers, cfg, self.reviewer.as_deref()).await;
        if principal.is_ok() {
            // The connection's unauthenticated idle limit no longer applies.
            super::connections::mark_authenticated();
        }
        principal
    }

    /// A JSON-RPC id for the gateway's own requests (never a number, so it cannot
    /// collide with a client's ids).
    pub fn own_id(&self) -> Value {
        json!(format!(
            "mcp-gateway-{}",
            self.own_ids.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

/// What the gateway's own requests on a caller's behalf (`notifications/cancelled`,
/// `tools/list` for pins) reuse of the caller's request: its session headers (legacy
/// era), or the `_meta` envelope of its modern request (stateless: each request carries
/// its protocol version and capabilities itself).
#[derive(Clone, Default)]
pub struct SessionHeaders {
    pub headers: HeaderMap,
    /// The envelope of a modern caller's request; None in the legacy era.
    pub envelope: Option<Value>,
}

impl SessionHeaders {
    pub(super) fn of(headers: &HeaderMap, msg: Option<&Value>) -> Self {
        let mut map = HeaderMap::new();
        for name in [SESSION_ID, PROTOCOL_VERSION] {
            if let Some(v) = headers.get(name) {
                map.insert(name, v.clone());
            }
        }
        SessionHeaders {
            headers: map,
            envelope: msg.and_then(super::routing::Routing::envelope),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        self.headers.get(SESSION_ID).and_then(|v| v.to_str().ok())
    }
}

/// An upstream request carrying the forwarded headers, the caller's trace context (when
/// valid), the configured upstream headers and `body`. A POST's routing headers are added
/// by [`proxy::post`](super::proxy::post) once checked.
pub fn upstream_request(
    method: Method,
    headers: &HeaderMap,
    config: &LiveConfig,
    body: Bytes,
) -> Request<Bytes> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = axum::http::Uri::from_static("/");
    let h = req.headers_mut();
    for name in FORWARDED_REQUEST_HEADERS {
        for v in headers.get_all(*name) {
            h.append(*name, v.clone());
        }
    }
    for (name, v) in &super::routing::trace_context(headers) {
        h.append(name, v.clone());
    }
    for (name, v) in &config.upstream_headers {
        h.insert(name, v.clone());
    }
    req
}

/// The upstream answer with only the relayed headers.
pub fn pass_through(resp: Response<Body>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    with_headers(parts.status, &parts.headers, body)
}

/// A response of `status` and `body` carrying only the relayed headers among
/// `upstream` (the upstream answer's headers).
pub fn with_headers(status: StatusCode, upstream: &HeaderMap, body: Body) -> Response<Body> {
    let mut out = Response::new(body);
    *out.status_mut() = status;
    for name in FORWARDED_RESPONSE_HEADERS {
        for v in upstream.get_all(*name) {
            out.headers_mut().append(*name, v.clone());
        }
    }
    out
}

/// 502 with a JSON-RPC error for the request's id (`ids` holds at most one; none: null).
pub fn upstream_unavailable(why: &str, ids: &[Value]) -> Response<Body> {
    let body = jsonrpc::error_response(
        ids.first().cloned().unwrap_or(Value::Null),
        code::UPSTREAM_UNAVAILABLE,
        format!("upstream MCP server unavailable: {why}"),
    );
    json_response(StatusCode::BAD_GATEWAY, &body)
}
