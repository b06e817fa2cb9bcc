//! The bridge's HTTP server: the Streamable HTTP routes at `--path`, `/livez`, `/readyz`
//! (200 only once the process answered `initialize`), `/metrics` (Prometheus text), TCP
//! no-delay on every connection, and shutdown on SIGTERM/SIGINT: stop taking sessions,
//! drain calls in flight (bounded), then stop the process(es).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use std::future::IntoFuture as _;

use super::backend::{PerSessionBackend, SharedBackend};
use super::metrics::{ChildMetrics, ProtocolError};
use crate::mcp_http::streamable::{self, Backend, StreamableConfig, StreamableServer};

/// What the bridge's backends add to `/metrics` and do at shutdown.
pub trait BridgeBackend: Backend {
    /// Appends backend counters in Prometheus text format.
    fn write_metrics(&self, out: &mut String);
    /// Stops every process.
    fn stop(&self) -> impl Future<Output = ()> + Send;
}

impl BridgeBackend for SharedBackend {
    fn write_metrics(&self, out: &mut String) {
        let mux = &self.process.mux;
        gauge(
            out,
            "mcp_bridge_child_up",
            "1 while the MCP server process is initialized",
            u64::from(mux.is_ready()),
        );
        child_counters(out, &self.process.metrics);
        gauge(
            out,
            "mcp_bridge_child_calls_in_flight",
            "calls sent to the process and not answered",
            mux.calls_in_flight() as u64,
        );
    }

    async fn stop(&self) {
        self.process.stop().await;
    }
}

impl BridgeBackend for PerSessionBackend {
    fn write_metrics(&self, out: &mut String) {
        gauge(
            out,
            "mcp_bridge_warm_pool_ready",
            "initialized processes waiting for a session",
            self.pool.ready_count() as u64,
        );
        counter(
            out,
            "mcp_bridge_warm_pool_taken_total",
            "processes handed to sessions",
            self.pool.taken.load(Ordering::Relaxed),
        );
        child_counters(out, self.pool.metrics());
    }

    async fn stop(&self) {
        self.pool.stop_all().await;
    }
}

/// How the bridge serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub path: String,
    pub drain_timeout: Duration,
    pub streamable: StreamableConfig,
}

/// All bridge routes for `server`.
pub fn router<B: BridgeBackend>(server: Arc<StreamableServer<B>>, path: &str) -> axum::Router {
    let ready = server.clone();
    let metrics = server.clone();
    streamable::router(server, path)
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.backend().is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "MCP server process not initialized",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = render_metrics(&metrics);
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                }
            }),
        )
}

fn render_metrics<B: BridgeBackend>(server: &StreamableServer<B>) -> String {
    let mut out = String::with_capacity(1024);
    gauge(
        &mut out,
        "mcp_bridge_sessions_active",
        "client sessions open",
        server.active_sessions() as u64,
    );
    counter(
        &mut out,
        "mcp_bridge_sessions_opened_total",
        "client sessions opened",
        server.metrics.sessions_opened.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "mcp_bridge_requests_in_flight",
        "client requests waiting for their response",
        server.requests_in_flight().max(0) as u64,
    );
    let dropped = &server.metrics.outbox;
    counter(
        &mut out,
        "mcp_bridge_session_messages_dropped_total",
        "server messages dropped from session backlogs (message or byte limit)",
        dropped.messages_dropped.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "mcp_bridge_session_streams_cut_total",
        "session streams cut because their client did not read them (byte limit)",
        dropped.streams_cut.load(Ordering::Relaxed),
    );
    server.backend().write_metrics(&mut out);
    out
}

/// Restarts and protocol errors of the bridge's process(es).
fn child_counters(out: &mut String, metrics: &ChildMetrics) {
    counter(
        out,
        "mcp_bridge_child_restarts_total",
        "MCP server process restarts (after an exit, or a failed start or initialize)",
        metrics.restarts(),
    );
    let name = "mcp_bridge_child_protocol_errors_total";
    let _ = writeln!(
        out,
        "# HELP {name} stdout lines of the MCP server process dropped as protocol errors\n# TYPE {name} counter"
    );
    for kind in ProtocolError::ALL {
        let _ = writeln!(
            out,
            "{name}{{kind=\"{}\"}} {}",
            kind.label(),
            metrics.protocol_errors(kind)
        );
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// Serves `backend` until SIGTERM/SIGINT, then drains and stops.
pub async fn serve<B: BridgeBackend>(backend: B, options: ServeOptions) -> anyhow::Result<()> {
    let server = StreamableServer::new(backend, options.streamable.clone());
    let app = router(server.clone(), &options.path);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", options.listen))?
        .tap_io(|tcp| {
            // Without it, small responses wait ~40 ms for delayed ACKs on loopback.
            let _ = tcp.set_nodelay(true);
        });
    tracing::info!(listen = %options.listen, path = %options.path, "bridge serving Streamable HTTP");
    let signalled = Arc::new(tokio::sync::Notify::new());
    let shutdown_server = server.clone();
    let on_signal = signalled.clone();
    let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining calls in flight");
        shutdown_server.begin_shutdown();
        on_signal.notify_one();
    });
    let mut serving = tokio::spawn(serving.into_future());
    let drain = options.drain_timeout;
    // Graceful shutdown waits for open connections (calls in flight); at most `drain`.
    let result = tokio::select! {
        result = &mut serving => result.map_err(anyhow::Error::from).and_then(|r| r.map_err(Into::into)),
        _ = async { signalled.notified().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(in_flight = server.requests_in_flight(), "calls still in flight after {drain:?}; stopping anyway");
            serving.abort();
            Ok(())
        }
    };
    server.close_all_sessions();
    server.backend().stop().await;
    tracing::info!("bridge stopped");
    result
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
