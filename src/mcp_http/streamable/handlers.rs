//! The HTTP side of the Streamable HTTP server: POST (JSON-RPC in; JSON, SSE or 202 out),
//! GET (the session's stream of unrelated server messages) and DELETE (end the session).
//!
//! A POST with requests is answered as `application/json` when the first message routed
//! to it is its response (the common case, cheapest for clients), and switches to an SSE
//! stream only when a notification or server request for it arrives first.
//!
//! A session-less 2026-07-28 request (no `Mcp-Session-Id`, a `_meta` envelope or
//! `server/discover`) goes to `stateless` when the backend serves them; its JSON error
//! answers carry the HTTP status the SDKs' servers give them (400, 404 for -32601).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::outbox::{RegisteredRequest, StreamReceiver};
use super::{Backend, BackendSession, Session, StreamableServer};
use crate::mcp_http::era::{self, Era};
use crate::mcp_http::jsonrpc::{self, Kind, code};
use crate::mcp_http::{KNOWN_PROTOCOL_VERSIONS, PROTOCOL_VERSION, SESSION_ID};

type ServerState<B> = State<Arc<StreamableServer<B>>>;

/// POST: one JSON-RPC message (or a batch) from the client.
pub async fn post<B: Backend>(
    State(server): ServerState<B>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = check_origin(&server, &headers) {
        return refusal;
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                code::PARSE_ERROR,
                format!("body is not JSON: {e}"),
            );
        }
    };
    let is_batch = body.is_array();
    let mut messages = match body {
        Value::Array(items) => items,
        one => vec![one],
    };
    if messages.is_empty() || messages.iter().any(|m| jsonrpc::kind(m) == Kind::Invalid) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "not a JSON-RPC 2.0 message",
        );
    }
    let is_initialize =
        |m: &Value| jsonrpc::kind(m) == Kind::Request && jsonrpc::method(m) == Some("initialize");
    if messages.iter().any(is_initialize) {
        if messages.len() != 1 {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                "initialize must be sent alone",
            );
        }
        let init = messages.pop().unwrap_or_default();
        return initialize(&server, init).await;
    }
    if !is_batch && headers.get(SESSION_ID).is_none() && server.backend.serves_stateless() {
        let message = messages.pop().unwrap_or_default();
        match jsonrpc::kind(&message) {
            Kind::Request if era::is_modern_request(&message) => {
                return stateless(&server, &headers, message).await;
            }
            // The modern wire defines no client notifications (cancelling is closing the
            // answer stream): acknowledged and dropped.
            Kind::Notification if declares_modern_version(&headers) => {
                return StatusCode::ACCEPTED.into_response();
            }
            _ => messages.push(message),
        }
    }
    if let Some(refusal) = check_protocol_version(&headers) {
        return refusal;
    }
    let session = match find_session(&server, &headers) {
        Ok(s) => s,
        Err(refusal) => return refusal.into_response(),
    };
    let requests: Vec<RegisteredRequest> = messages
        .iter()
        .filter(|m| jsonrpc::kind(m) == Kind::Request)
        .map(|m| RegisteredRequest {
            id: jsonrpc::id(m).cloned().unwrap_or_default(),
            progress_token: jsonrpc::progress_token(m).map(jsonrpc::id_key),
        })
        .collect();
    if requests.is_empty() {
        for message in messages {
            if let Err(e) = session.backend.send(message).await {
                return rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::UPSTREAM_UNAVAILABLE,
                    e.to_string(),
                );
            }
        }
        return StatusCode::ACCEPTED.into_response();
    }
    let post = server.next_post.fetch_add(1, Ordering::Relaxed);
    let (stream, answers) = session.outbox.new_stream();
    if let Err(reason) = session.outbox.register(post, &requests, &stream) {
        return rpc_error(StatusCode::NOT_FOUND, code::INVALID_REQUEST, reason);
    }
    // Only the routes hold senders from here on: the channel closes once every request
    // of this POST is answered.
    drop(stream);
    let guard = PostGuard::new(&server, &session, post, requests, None);
    for message in messages {
        let id = (jsonrpc::kind(&message) == Kind::Request)
            .then(|| jsonrpc::id(&message).cloned())
            .flatten();
        if let Err(e) = session.backend.send(message).await
            && let Some(id) = id
        {
            session.outbox.deliver(jsonrpc::error_response(
                id,
                code::UPSTREAM_UNAVAILABLE,
                e.to_string(),
            ));
        }
    }
    answer(
        answers,
        guard,
        accepts_event_stream(&headers),
        is_batch,
        false,
    )
    .await
}

/// Whether `MCP-Protocol-Version` names a modern-era version.
fn declares_modern_version(headers: &HeaderMap) -> bool {
    headers
        .get(PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| Era::of_version(v) == Era::Modern)
}

/// The value of header `name` when it is present exactly once (a repeated routing header
/// is never trusted).
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// One session-less 2026-07-28 request: the envelope must be complete (-32602) and the
/// routing headers must mirror the body (-32020), in that order as the SDKs check them;
/// then it runs on a session of its own that ends with its answer.
async fn stateless<B: Backend>(
    server: &Arc<StreamableServer<B>>,
    headers: &HeaderMap,
    message: Value,
) -> Response {
    let id = jsonrpc::id(&message).cloned().unwrap_or_default();
    if server.shutting_down.load(Ordering::SeqCst) {
        return rpc_error_for(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            code::UPSTREAM_UNAVAILABLE,
            "server is shutting down",
        );
    }
    let meta = era::request_meta(&message);
    let complete = meta.is_some_and(|m| {
        m.get(era::META_PROTOCOL_VERSION)
            .is_some_and(Value::is_string)
            && m.contains_key(era::META_CLIENT_CAPABILITIES)
    });
    if !complete {
        return rpc_error_for(
            StatusCode::BAD_REQUEST,
            id,
            code::INVALID_PARAMS,
            format!(
                "params._meta must carry {:?} (a string) and {:?} on a request without a session",
                era::META_PROTOCOL_VERSION,
                era::META_CLIENT_CAPABILITIES
            ),
        );
    }
    if let Err(mismatch) = era::check_routing_headers(&message, |name| single_header(headers, name))
    {
        return rpc_error_for(
            StatusCode::BAD_REQUEST,
            id,
            era::code::HEADER_MISMATCH,
            mismatch.to_string(),
        );
    }
    let limits = super::OutboxLimits {
        backlog_messages: server.config.get_backlog_limit,
        bytes: server.config.session_backlog_bytes,
    };
    let outbox = Arc::new(super::Outbox::with_limits(
        limits,
        server.metrics.outbox.clone(),
    ));
    let backend = match server.backend.open_stateless(outbox.clone()).await {
        Ok(backend) => backend,
        Err(e) => {
            return rpc_error_for(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                code::UPSTREAM_UNAVAILABLE,
                e.to_string(),
            );
        }
    };
    let session = Arc::new(Session {
        backend,
        outbox,
        last_active_ms: std::sync::atomic::AtomicU64::new(0),
    });
    let requests = vec![RegisteredRequest {
        id: id.clone(),
        progress_token: jsonrpc::progress_token(&message).map(jsonrpc::id_key),
    }];
    let post = server.next_post.fetch_add(1, Ordering::Relaxed);
    let (stream, answers) = session.outbox.new_stream();
    if let Err(reason) = session.outbox.register(post, &requests, &stream) {
        session.close_ephemeral();
        return rpc_error_for(StatusCode::BAD_REQUEST, id, code::INVALID_REQUEST, reason);
    }
    drop(stream);
    let ephemeral: Arc<dyn Ephemeral> = session.clone();
    let guard = PostGuard::new(server, &session, post, requests, Some(ephemeral));
    if let Err(e) = session.backend.send(message).await {
        session.outbox.deliver(jsonrpc::error_response(
            id,
            code::UPSTREAM_UNAVAILABLE,
            e.to_string(),
        ));
    }
    answer(answers, guard, accepts_event_stream(headers), false, true).await
}

/// A session that lives for one request ([`stateless`]).
trait Ephemeral: Send + Sync {
    fn close_ephemeral(&self);
}

impl<S: BackendSession> Ephemeral for Session<S> {
    fn close_ephemeral(&self) {
        self.backend.close();
        self.outbox.close("request answered");
    }
}

/// The HTTP status of a JSON error answer to a session-less modern request, as the SDKs'
/// servers give it; 200 for other codes.
fn status_of_error(response: &Value) -> StatusCode {
    match response
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
    {
        Some(
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | era::code::HEADER_MISMATCH
            | era::code::MISSING_REQUIRED_CLIENT_CAPABILITY
            | era::code::UNSUPPORTED_PROTOCOL_VERSION,
        ) => StatusCode::BAD_REQUEST,
        Some(code::METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

async fn initialize<B: Backend>(server: &Arc<StreamableServer<B>>, init: Value) -> Response {
    let id = jsonrpc::id(&init).cloned().unwrap_or_default();
    if server.shutting_down.load(Ordering::SeqCst) {
        return rpc_error_for(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            code::UPSTREAM_UNAVAILABLE,
            "server is shutting down",
        );
    }
    let limits = super::OutboxLimits {
        backlog_messages: server.config.get_backlog_limit,
        bytes: server.config.session_backlog_bytes,
    };
    let outbox = Arc::new(super::Outbox::with_limits(
        limits,
        server.metrics.outbox.clone(),
    ));
    match server.backend.open(init, outbox.clone()).await {
        Ok((session, response)) => {
            let session_id = server.insert_session(session, outbox);
            let mut reply = json_response(StatusCode::OK, &response);
            if let Ok(value) = HeaderValue::from_str(&session_id) {
                reply.headers_mut().insert(SESSION_ID, value);
            }
            reply
        }
        Err(e) => rpc_error_for(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            code::UPSTREAM_UNAVAILABLE,
            e.to_string(),
        ),
    }
}

/// Turns the messages routed to one POST into its HTTP answer; `error_status`: a JSON
/// error answer gets the status [`status_of_error`] gives it.
async fn answer(
    mut answers: StreamReceiver,
    guard: PostGuard,
    accepts_sse: bool,
    is_batch: bool,
    error_status: bool,
) -> Response {
    let status = |body: &Value| {
        if error_status {
            status_of_error(body)
        } else {
            StatusCode::OK
        }
    };
    if !accepts_sse {
        let mut responses = Vec::new();
        while let Some(m) = answers.recv().await {
            if jsonrpc::is_response(&m) {
                responses.push(m);
            }
        }
        drop(guard);
        let body = if is_batch {
            Value::Array(responses)
        } else {
            responses.pop().unwrap_or_default()
        };
        return json_response(status(&body), &body);
    }
    let Some(first) = answers.recv().await else {
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            "the request was dropped without an answer",
        );
    };
    if !is_batch && jsonrpc::is_response(&first) {
        drop(guard);
        return json_response(status(&first), &first);
    }
    let events = futures::stream::unfold(
        (Some(first), answers, guard),
        |(mut first, mut answers, guard)| async move {
            let next = match first.take() {
                Some(m) => m,
                None => answers.recv().await?,
            };
            Some((
                Ok::<_, Infallible>(sse_event(&next)),
                (None, answers, guard),
            ))
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// GET: the session's stream of server messages not tied to a request.
pub async fn get<B: Backend>(State(server): ServerState<B>, headers: HeaderMap) -> Response {
    if let Some(refusal) = check_origin(&server, &headers) {
        return refusal;
    }
    if !accepts_event_stream(&headers) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "GET needs Accept: text/event-stream",
        );
    }
    if server.shutting_down.load(Ordering::SeqCst) {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UPSTREAM_UNAVAILABLE,
            "server is shutting down",
        );
    }
    let session = match find_session(&server, &headers) {
        Ok(s) => s,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(messages) = session.outbox.open_get_stream() else {
        return session_not_found();
    };
    let events = futures::stream::unfold(messages, |mut messages| async move {
        let next = messages.recv().await?;
        Some((Ok::<_, Infallible>(sse_event(&next)), messages))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// DELETE: the client ends its session.
pub async fn delete<B: Backend>(State(server): ServerState<B>, headers: HeaderMap) -> Response {
    if let Some(refusal) = check_origin(&server, &headers) {
        return refusal;
    }
    let Some(id) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return missing_session_header();
    };
    if server.remove_session(id) {
        StatusCode::OK.into_response()
    } else {
        session_not_found()
    }
}

/// Unregisters a POST's unanswered requests and counts them out of "in flight" when its
/// response (JSON or stream) is finished or dropped.
struct PostGuard {
    server_metrics: Arc<dyn InFlightCounter>,
    outbox: Arc<super::Outbox>,
    post: u64,
    ids: Vec<Value>,
    /// The one-request session of a session-less request, closed with its answer.
    ephemeral: Option<Arc<dyn Ephemeral>>,
}

trait InFlightCounter: Send + Sync {
    fn add(&self, n: i64);
}

impl<B: Backend> InFlightCounter for StreamableServer<B> {
    fn add(&self, n: i64) {
        self.metrics
            .requests_in_flight
            .fetch_add(n, Ordering::Relaxed);
    }
}

impl PostGuard {
    fn new<B: Backend>(
        server: &Arc<StreamableServer<B>>,
        session: &Session<B::Session>,
        post: u64,
        requests: Vec<RegisteredRequest>,
        ephemeral: Option<Arc<dyn Ephemeral>>,
    ) -> Self {
        server.add(requests.len() as i64);
        Self {
            server_metrics: server.clone(),
            outbox: session.outbox.clone(),
            post,
            ids: requests.into_iter().map(|r| r.id).collect(),
            ephemeral,
        }
    }
}

impl Drop for PostGuard {
    fn drop(&mut self) {
        self.outbox.unregister(self.post, &self.ids);
        self.server_metrics.add(-(self.ids.len() as i64));
        if let Some(session) = self.ephemeral.take() {
            session.close_ephemeral();
        }
    }
}

fn sse_event(message: &Value) -> Event {
    Event::default()
        .event("message")
        .data(serde_json::to_string(message).unwrap_or_default())
}

/// Why a request names no usable session.
enum NoSession {
    MissingHeader,
    NotFound,
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::MissingHeader => missing_session_header(),
            NoSession::NotFound => session_not_found(),
        }
    }
}

fn find_session<B: Backend>(
    server: &StreamableServer<B>,
    headers: &HeaderMap,
) -> Result<Arc<Session<B::Session>>, NoSession> {
    let id = headers
        .get(SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .ok_or(NoSession::MissingHeader)?;
    server.session(id).ok_or(NoSession::NotFound)
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream") || v.contains("*/*"))
}

fn check_protocol_version(headers: &HeaderMap) -> Option<Response> {
    let version = headers.get(PROTOCOL_VERSION)?.to_str().unwrap_or("");
    if KNOWN_PROTOCOL_VERSIONS.contains(&version) {
        return None;
    }
    Some(rpc_error(
        StatusCode::BAD_REQUEST,
        code::INVALID_REQUEST,
        format!("unsupported MCP-Protocol-Version {version:?}"),
    ))
}

fn check_origin<B: Backend>(server: &StreamableServer<B>, headers: &HeaderMap) -> Option<Response> {
    if !server.config.loopback_origins_only {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let host = url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    let loopback = matches!(
        host.as_deref(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    (!loopback).then(|| {
        rpc_error(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "requests from this Origin are not accepted",
        )
    })
}

fn missing_session_header() -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        code::INVALID_REQUEST,
        "Mcp-Session-Id header is required (send initialize first)",
    )
}

fn session_not_found() -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        code::INVALID_REQUEST,
        "session not found (it ended or expired): initialize again",
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

fn rpc_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    rpc_error_for(status, Value::Null, code, message)
}

fn rpc_error_for(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Response {
    json_response(status, &jsonrpc::error_response(id, code, message))
}
