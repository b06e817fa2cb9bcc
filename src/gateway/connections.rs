//! Accepting and serving connections, with bounds an outsider cannot stretch: a cap on
//! open connections (checked at accept, before anything is read), a small reserve beyond
//! it that serves only `/livez`, `/readyz` and `/metrics` (one request per connection),
//! so the kubelet's probes and scrapes keep working while MCP connections are at the cap,
//! a header-read timeout (hyper's: a request head must arrive whole within it, which also
//! ends keep-alive connections idle for that long), and an idle limit for connections that
//! have not authenticated: a connection on which no request has passed authentication
//! within `unauthenticated_idle` is closed.
//!
//! Handlers mark their connection authenticated with [`mark_authenticated`] (a task-local
//! set around each request's future, so it needs no plumbing through the router).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

/// Default cap on open MCP connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Connections beyond the cap that may still reach the health routes.
pub const HEALTH_RESERVE: usize = 16;
/// Default header-read timeout.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle limit for connections that have not authenticated.
pub const DEFAULT_UNAUTHENTICATED_IDLE: Duration = Duration::from_secs(30);
/// File descriptors kept for everything but client connections (upstream pool, config
/// file, API client, logs).
const FD_MARGIN: u64 = 64;

/// The connection bounds.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub unauthenticated_idle: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            unauthenticated_idle: DEFAULT_UNAUTHENTICATED_IDLE,
        }
    }
}

impl ConnectionLimits {
    /// The cap lowered, when needed, so that every connection (and its upstream
    /// connection) fits below the soft file-descriptor limit `nofile`.
    pub fn fitted_to(mut self, nofile: Option<u64>) -> Self {
        if let Some(n) = nofile {
            let fits = (n.saturating_sub(FD_MARGIN + HEALTH_RESERVE as u64) / 2).max(1) as usize;
            if self.max_connections > fits {
                tracing::warn!(
                    requested = self.max_connections,
                    max_connections = fits,
                    nofile = n,
                    "--max-connections lowered to fit the file-descriptor limit (each client connection may hold an upstream one)"
                );
                self.max_connections = fits;
            }
        }
        self
    }
}

/// The soft `RLIMIT_NOFILE` of this process (Linux: from /proc/self/limits).
pub fn nofile_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Connection counters for `/metrics`.
#[derive(Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    open_health: AtomicU64,
    refused: AtomicU64,
    closed_unauthenticated: AtomicU64,
    /// Upstream requests that ran out of time (counted by the upstream wrapper).
    pub upstream_timeouts: Arc<AtomicU64>,
}

impl ConnectionStats {
    /// Prometheus text of the connection metrics.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_open_connections Client connections open, by kind (mcp: counted against --max-connections; health: the reserve for health routes).\n# TYPE mcp_gateway_open_connections gauge\n\
             mcp_gateway_open_connections{{kind=\"mcp\"}} {}\nmcp_gateway_open_connections{{kind=\"health\"}} {}\n\
             # HELP mcp_gateway_connections_refused_total Connections closed at accept: the cap and the health reserve were full.\n# TYPE mcp_gateway_connections_refused_total counter\nmcp_gateway_connections_refused_total {}\n\
             # HELP mcp_gateway_connections_closed_unauthenticated_total Connections closed because no request on them authenticated in time.\n# TYPE mcp_gateway_connections_closed_unauthenticated_total counter\nmcp_gateway_connections_closed_unauthenticated_total {}\n\
             # HELP mcp_gateway_upstream_timeouts_total Upstream requests that did not answer within their timeout.\n# TYPE mcp_gateway_upstream_timeouts_total counter\nmcp_gateway_upstream_timeouts_total {}",
            load(&self.open),
            load(&self.open_health),
            load(&self.refused),
            load(&self.closed_unauthenticated),
            load(&self.upstream_timeouts),
        );
    }
}

/// Per-connection state visible to handlers.
#[derive(Default)]
struct ConnectionState {
    authenticated: AtomicBool,
}

tokio::task_local! {
    static CONNECTION: Arc<ConnectionState>;
}

/// Marks the current request's connection as authenticated (no-op outside [`serve`]).
pub fn mark_authenticated() {
    let _ = CONNECTION.try_with(|c| c.authenticated.store(true, Ordering::Relaxed));
}

/// Serves `app` (and `health`, on reserve connections) until `shutdown` completes, then
/// lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    health: Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mcp_slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let health_slots = Arc::new(Semaphore::new(HEALTH_RESERVE));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    on_accept_error(e).await;
                    continue;
                }
            },
        };
        let (permit, router, health_only) = match mcp_slots.clone().try_acquire_owned() {
            Ok(p) => (p, app.clone(), false),
            Err(_) => match health_slots.clone().try_acquire_owned() {
                Ok(p) => (p, health.clone(), true),
                Err(_) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(tcp);
                    continue;
                }
            },
        };
        let conn = Connection {
            tcp,
            router,
            health_only,
            limits,
            stats: stats.clone(),
            stop: stop_rx.clone(),
            _permit: permit,
            _done: done_rx.clone(),
        };
        tokio::spawn(conn.run());
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Errors of one connection are its own; running out of descriptors (or memory) is
/// waited out briefly rather than spun on.
async fn on_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

struct Connection {
    tcp: TcpStream,
    router: Router,
    health_only: bool,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    _done: watch::Receiver<()>,
}

impl Connection {
    async fn run(mut self) {
        if let Err(e) = self.tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let gauge = if self.health_only {
            &self.stats.open_health
        } else {
            &self.stats.open
        };
        gauge.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnectionState::default());
        let service = {
            let state = state.clone();
            let router = self.router.clone();
            tower::service_fn(move |req: Request<Incoming>| {
                CONNECTION.scope(state.clone(), router.clone().oneshot(req.map(Body::new)))
            })
        };
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(!self.health_only);
        builder.http2().timer(TokioTimer::new());
        let io = TokioIo::new(self.tcp);
        let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        tokio::pin!(conn);
        let idle = tokio::time::sleep(self.limits.unauthenticated_idle);
        tokio::pin!(idle);
        let mut idle_checked = false;
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = &mut idle, if !idle_checked => {
                    idle_checked = true;
                    if !state.authenticated.load(Ordering::Relaxed) {
                        self.stats.closed_unauthenticated.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                changed = self.stop.changed(), if !stopping => {
                    if changed.is_err() || *self.stop.borrow() {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        gauge.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_descriptor_limit() {
        let l = ConnectionLimits::default();
        assert_eq!(l.fitted_to(None).max_connections, 1024);
        assert_eq!(l.fitted_to(Some(1_048_576)).max_connections, 1024);
        let fitted = l.fitted_to(Some(1024)).max_connections;
        assert!(
            fitted * 2 + HEALTH_RESERVE + FD_MARGIN as usize <= 1024,
            "{fitted}"
        );
        assert!(fitted > 400);
    }

    #[test]
    fn reads_the_nofile_limit_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(nofile_limit().is_some_and(|n| n > 0));
        }
    }
}
