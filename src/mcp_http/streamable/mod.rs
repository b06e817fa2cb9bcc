//! A Streamable HTTP server (MCP 2025-11-25 transport) over a message-level [`Backend`]:
//! sessions (`Mcp-Session-Id` assigned on `initialize`), POST → JSON or SSE answers, 202 for
//! notifications and responses, GET → the session's SSE stream of unrelated server
//! messages, DELETE ends the session. The backend sees one session at a time in the
//! client's own id space; it never handles HTTP.
//!
//! A backend that serves the 2026-07-28 era too ([`Backend::open_stateless`]) also gets
//! session-less modern requests: each is checked here (routing headers → -32020, envelope
//! → -32602; see [`crate::mcp_http::era`]) and then sent on a session of its own that ends
//! with the request's answer; a session-less modern notification is acknowledged (202) and
//! dropped, as the SDKs' servers do.
//!
//! The bridge puts stdio processes behind it ([`crate::bridge`]), and
//! [`super::sse_upstream`] a legacy SSE server. Layout: [`outbox`] per-session routing of
//! server messages to HTTP streams · [`queue`] one stream's queue, bounded with its
//! session's bytes · [`handlers`] the HTTP side · this file: the backend
//! contract, configuration and the session table.

pub mod handlers;
pub mod outbox;
pub mod queue;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use outbox::{Outbox, OutboxCounters, OutboxLimits};

/// Why a backend could not open a session or take a message.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The server behind the backend cannot take messages now (starting, restarting).
    #[error("{0}")]
    Unavailable(String),
    /// The server answered in a way the backend cannot use.
    #[error("{0}")]
    Protocol(String),
    /// The session is gone on the backend's side.
    #[error("session closed: {0}")]
    SessionClosed(String),
}

/// The server side of sessions: opens one per client `initialize`.
pub trait Backend: Send + Sync + 'static {
    /// One open session.
    type Session: BackendSession;

    /// Opens a session for a client's `initialize` request. Returns the session and the
    /// `initialize` response (with the client's id). Server messages for the session go
    /// to `outbox`.
    fn open(
        &self,
        initialize: Value,
        outbox: Arc<Outbox>,
    ) -> impl Future<Output = Result<(Self::Session, Value), BackendError>> + Send;

    /// Whether the backend serves session-less 2026-07-28 requests
    /// ([`Backend::open_stateless`]); when not, they are refused like any request without
    /// a session.
    fn serves_stateless(&self) -> bool {
        false
    }

    /// Opens a session for one session-less 2026-07-28 request, closed once it is
    /// answered (or its client goes away).
    fn open_stateless(
        &self,
        outbox: Arc<Outbox>,
    ) -> impl Future<Output = Result<Self::Session, BackendError>> + Send {
        let _ = outbox;
        async {
            Err(BackendError::Unavailable(
                "this server takes no session-less requests".into(),
            ))
        }
    }

    /// Whether new sessions can be opened (drives `/readyz` of the servers using it).
    fn is_ready(&self) -> bool {
        true
    }
}

/// One backend session: takes client messages (ids as the client sent them).
pub trait BackendSession: Send + Sync + 'static {
    /// Sends one client message (request, notification or response) to the server.
    fn send(&self, message: Value) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Ends the session on the backend's side (client DELETE, idle, shutdown).
    fn close(&self);
}

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct StreamableConfig {
    /// Sessions with no request, no open GET stream and nothing in flight for this long
    /// are closed.
    pub idle_timeout: Duration,
    /// Refuse requests whose `Origin` is not a loopback origin (DNS-rebinding defence for
    /// servers on 127.0.0.1). Off behind a gateway that checks on its own.
    pub loopback_origins_only: bool,
    /// Server messages kept per session while no GET stream is open.
    pub get_backlog_limit: usize,
    /// Bytes of server messages a session may hold for its client (GET backlog and
    /// stream queues together); see [`outbox`] for what happens beyond.
    pub session_backlog_bytes: usize,
}

impl Default for StreamableConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            loopback_origins_only: true,
            get_backlog_limit: 1024,
            session_backlog_bytes: outbox::DEFAULT_SESSION_BACKLOG_BYTES,
        }
    }
}

/// A session as the server holds it.
pub struct Session<S> {
    pub(crate) backend: S,
    pub(crate) outbox: Arc<Outbox>,
    last_active_ms: AtomicU64,
}

/// Counters for `/metrics`.
#[derive(Default, Debug)]
pub struct StreamableMetrics {
    /// JSON-RPC requests waiting for their response.
    pub requests_in_flight: AtomicI64,
    /// Sessions opened since start.
    pub sessions_opened: AtomicU64,
    /// What the sessions' backlog limits dropped.
    pub outbox: Arc<OutboxCounters>,
}

/// The Streamable HTTP server state: backend, sessions, counters.
pub struct StreamableServer<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: StreamableConfig,
    sessions: Mutex<HashMap<String, Arc<Session<B::Session>>>>,
    started: Instant,
    pub(crate) next_post: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    reaper_started: AtomicBool,
    /// Counters for `/metrics`.
    pub metrics: StreamableMetrics,
}

impl<B: Backend> StreamableServer<B> {
    /// A server with no sessions yet.
    pub fn new(backend: B, config: StreamableConfig) -> Arc<Self> {
        Arc::new(Self {
            backend,
            config,
            sessions: Mutex::new(HashMap::new()),
            started: Instant::now(),
            next_post: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            reaper_started: AtomicBool::new(false),
            metrics: StreamableMetrics::default(),
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session<B::Session>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sessions currently open.
    pub fn active_sessions(&self) -> usize {
        self.table().len()
    }

    /// JSON-RPC requests waiting for their response.
    pub fn requests_in_flight(&self) -> i64 {
        self.metrics.requests_in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn insert_session(
        self: &Arc<Self>,
        backend: B::Session,
        outbox: Arc<Outbox>,
    ) -> String {
        self.start_reaper();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let session = Arc::new(Session {
            backend,
            outbox,
            last_active_ms: AtomicU64::new(self.now_ms()),
        });
        self.table().insert(id.clone(), session);
        self.metrics.sessions_opened.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// The live session `id`, marked active. A session its backend closed is removed.
    pub(crate) fn session(&self, id: &str) -> Option<Arc<Session<B::Session>>> {
        let session = self.table().get(id).cloned()?;
        if session.outbox.closed_reason().is_some() {
            self.remove_session(id);
            return None;
        }
        session
            .last_active_ms
            .store(self.now_ms(), Ordering::Relaxed);
        Some(session)
    }

    /// Removes and closes session `id`; false when there was none.
    pub(crate) fn remove_session(&self, id: &str) -> bool {
        let removed = self.table().remove(id);
        match removed {
            Some(session) => {
                session.backend.close();
                session.outbox.close("session ended");
                true
            }
            None => false,
        }
    }

    /// Starts shutting down: new sessions are refused and GET streams end, so HTTP
    /// connections can drain. Requests in flight continue.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for session in self.table().values() {
            session.outbox.end_get_stream();
        }
    }

    /// Waits (at most `limit`) until no request is in flight.
    pub async fn drain(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.requests_in_flight() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Closes every session.
    pub fn close_all_sessions(&self) {
        let sessions: Vec<_> = self.table().drain().collect();
        for (_, session) in sessions {
            session.backend.close();
            session.outbox.close("server shutting down");
        }
    }

    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        let period = (self.config.idle_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(reap_idle_sessions(weak, period));
    }

    fn close_idle_sessions(&self) {
        let now = self.now_ms();
        let idle_ms = self.config.idle_timeout.as_millis() as u64;
        let idle: Vec<String> = self
            .table()
            .iter()
            .filter(|(_, s)| {
                now.saturating_sub(s.last_active_ms.load(Ordering::Relaxed)) >= idle_ms
                    && s.outbox.pending_requests() == 0
                    && !s.outbox.has_live_get_stream()
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            tracing::debug!("closing idle session");
            self.remove_session(&id);
        }
    }
}

async fn reap_idle_sessions<B: Backend>(server: Weak<StreamableServer<B>>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        server.close_idle_sessions();
    }
}

/// The Streamable HTTP routes (POST, GET, DELETE) at `path`.
pub fn router<B: Backend>(server: Arc<StreamableServer<B>>, path: &str) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route(
            path,
            post(handlers::post::<B>)
                .get(handlers::get::<B>)
                .delete(handlers::delete::<B>),
        )
        .with_state(server)
}
