//! `mcp-operator gateway`: command-line arguments, the runtime, start-up (config,
//! upstream, audit writer, reload watcher, the optional Kubernetes API access for Events
//! and TokenReview) and shutdown on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::audit::AuditLog;
use super::connections::{ConnectionLimits, ConnectionStats};
use super::kube_api::KubeApiMode;
use super::live::ConfigHandle;
use super::metrics::Metrics;
use super::origin::AllowedFromFlags;
use super::reload::ConfigWatcher;
use super::sessions::SessionLimits;
use super::state::Gateway;
use super::token_review::TokenReviewer;
use super::upstream::{HttpUpstream, InProcessUpstream, TimedUpstream, Upstream, http_client};
use crate::prober::target::TlsOptions;
use crate::telemetry::{LogFormat, init_logging};

/// How the upstream server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamTransport {
    #[value(name = "StreamableHttp", alias = "streamable-http")]
    StreamableHttp,
    /// Legacy HTTP+SSE (2024-11-05), translated in-process.
    #[value(name = "Sse", alias = "sse")]
    Sse,
}

/// Arguments of `mcp-operator gateway`.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// The configuration file the operator renders (JSON or YAML); re-read when it changes.
    #[arg(long, env = "MCP_GATEWAY_CONFIG")]
    pub config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The MCP server's URL, e.g. http://127.0.0.1:3000/mcp.
    #[arg(long)]
    pub upstream: url::Url,
    /// How the upstream speaks (default: Sse when the URL path ends in /sse).
    #[arg(long)]
    pub upstream_transport: Option<UpstreamTransport>,
    /// The MCP path clients use.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// Log line format (audit records are JSON lines on stdout regardless).
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Seconds to let open requests and streams finish after SIGTERM.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// Use the Kubernetes API (Events about the server, TokenReview for ServiceAccount
    /// tokens): auto = with --kubeconfig, or in a pod; off = never.
    #[arg(long, value_enum, default_value_t = KubeApiMode::Auto)]
    pub kube_api: KubeApiMode,
    /// Kubeconfig for the Kubernetes API (default: the in-cluster configuration).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds over which refusals are aggregated into one Event per reason.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub events_window_seconds: u64,
    /// The Events' reporting instance (default: HOSTNAME, which is the pod name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Open client connections at most (lowered to fit the file-descriptor limit); beyond
    /// it a small reserve serves only the health routes, and then connections are closed
    /// at once.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers (also ends keep-alive connections
    /// idle that long).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_seconds: u64,
    /// Seconds after which a connection on which no request has authenticated is closed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub unauthenticated_idle_seconds: u64,
    /// Seconds the upstream has to answer a request other than tools/call (whose limit is
    /// the policy's callTimeout), and to send a stream's headers.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub upstream_timeout_seconds: u64,
    /// Live MCP sessions per caller (binding, probe, anonymous); one more initialize gets
    /// HTTP 429.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sessions_per_principal: u32,
    /// Live MCP sessions in all; one more initialize gets HTTP 503.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sessions: u32,
    /// Seconds without a request (and no open stream) after which a session expires and
    /// the gateway ends it upstream.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub session_idle_seconds: u64,
    /// A host name clients may address the gateway by (Host header), besides localhost,
    /// IP literals and the config's allowedHosts; repeatable; `*` allows any.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// A browser origin (`scheme://host[:port]`) allowed besides loopback origins and
    /// origins on an allowed host; repeatable; `*` allows any.
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
}

/// Runs the gateway until SIGTERM.
pub fn run(args: &GatewayArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    anyhow::ensure!(
        args.path.starts_with('/'),
        "--path must start with /, got {:?}",
        args.path
    );
    anyhow::ensure!(
        matches!(args.upstream.scheme(), "http" | "https"),
        "--upstream must be an http(s) URL"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway")
        .build()
        .context("starting the tokio runtime")?;
    let (audit, audit_thread) = AuditLog::stdout();
    let result = runtime.block_on(serve(args, audit));
    runtime.shutdown_timeout(Duration::from_secs(1));
    let _ = audit_thread.join();
    result
}

async fn serve(args: &GatewayArgs, audit: AuditLog) -> anyhow::Result<()> {
    let handle = Arc::new(ConfigHandle::default());
    let metrics = Arc::new(Metrics::default());
    let mut watcher = ConfigWatcher::new(&args.config, handle.clone(), metrics.clone());
    watcher.check();
    let stats = Arc::new(ConnectionStats::default());
    let upstream_timeout = Duration::from_secs(args.upstream_timeout_seconds);
    let upstream: Arc<dyn Upstream> = Arc::new(TimedUpstream::new(
        build_upstream(args, &handle)?,
        upstream_timeout,
        stats.upstream_timeouts.clone(),
    ));
    let mut audit = audit;
    let mut reviewer = None;
    if let Some(client) = super::kube_api::connect(args.kube_api, args.kubeconfig.as_ref()).await {
        let instance = super::kube_events::instance_name(args.pod_name.as_deref());
        let window = Duration::from_secs(args.events_window_seconds);
        tracing::info!(%instance, window_seconds = args.events_window_seconds, "Kubernetes API configured: refusals are reported as Events, ServiceAccount tokens are checked with TokenReview");
        audit = audit.with_events(super::kube_events::start(
            client.clone(),
            handle.clone(),
            metrics.clone(),
            window,
            instance,
        ));
        reviewer = Some(Arc::new(TokenReviewer::new(client, metrics.clone())));
    }
    let sessions = SessionLimits {
        per_principal: args.max_sessions_per_principal as usize,
        total: args.max_sessions as usize,
        idle: Duration::from_secs(args.session_idle_seconds),
    };
    let mut gw =
        Gateway::new(handle, upstream, metrics, audit).with_limits(sessions, upstream_timeout);
    if let Some(reviewer) = reviewer {
        gw = gw.with_token_review(reviewer);
    }
    let gw = Arc::new(gw);
    let allowed = AllowedFromFlags {
        hosts: args.allowed_hosts.clone(),
        origins: args.allowed_origins.clone(),
    };
    let app = super::server::router(gw.clone(), &args.path, allowed, stats.clone());
    let reserve = super::server::reserve_router(gw.clone(), stats.clone());
    let limits = ConnectionLimits {
        max_connections: args.max_connections as usize,
        header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
        unauthenticated_idle: Duration::from_secs(args.unauthenticated_idle_seconds),
    }
    .fitted_to(super::connections::nofile_limit());
    let expiry = super::session_gate::spawn_expiry(gw);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let bound = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(listen = %bound, path = %args.path, upstream = %redacted_url(&args.upstream), "gateway listening");
    let watch = tokio::spawn(watcher.run());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::connections::serve(
        listener,
        app,
        reserve,
        limits,
        stats,
        async move {
            let _ = stop_rx.await;
        },
    ));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    watch.abort();
    expiry.abort();
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("serving"),
        Ok(Err(e)) => return Err(e).context("server task"),
        Err(_) => tracing::warn!("open streams did not finish within the grace period"),
    }
    Ok(())
}

fn build_upstream(args: &GatewayArgs, handle: &ConfigHandle) -> anyhow::Result<Arc<dyn Upstream>> {
    let initial = handle.current();
    let tls = match initial.as_ref().map(|c| &c.file.upstream) {
        Some(u) => TlsOptions {
            ca_pem: match &u.ca_file {
                Some(f) => Some(std::fs::read(f).with_context(|| format!("reading {f}"))?),
                None => None,
            },
            insecure_skip_verify: u.insecure_skip_verify,
        },
        None => TlsOptions::default(),
    };
    let tls = crate::prober::tls::client_config(&tls).context("TLS for the upstream")?;
    let client = http_client(tls)?;
    let http = HttpUpstream::new(client.clone(), args.upstream.clone());
    let sse = match args.upstream_transport {
        Some(t) => t == UpstreamTransport::Sse,
        None => args.upstream.path().trim_end_matches('/').ends_with("/sse"),
    };
    if !sse {
        return Ok(Arc::new(http));
    }
    let headers = initial
        .map(|c| c.upstream_headers.clone())
        .unwrap_or_default();
    let router = crate::mcp_http::sse_upstream::router(args.upstream.clone(), client, headers);
    Ok(Arc::new(InProcessUpstream::new(router, "/mcp", http)))
}

/// The URL without user info or query (they may hold credentials).
fn redacted_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
