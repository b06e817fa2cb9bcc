//! `mcp-operator bridge`: command-line arguments and entry point.

use std::net::SocketAddr;
use std::time::Duration;

use super::backend::{PerSessionBackend, Process, SharedBackend, WarmPool};
use super::child::{ChildCommand, ChildConfig, DEFAULT_MAX_LINE_BYTES};
use super::server::{ServeOptions, serve};
use crate::mcp_http::streamable::StreamableConfig;
use crate::mcp_http::streamable::outbox::DEFAULT_SESSION_BACKLOG_BYTES;
use crate::telemetry::{LogFormat, init_logging};

/// How client sessions map onto processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionMode {
    /// Every session multiplexed onto one long-lived process.
    #[default]
    #[value(name = "Shared")]
    Shared,
    /// A process per session, taken from a warm pool.
    #[value(name = "PerSession")]
    PerSession,
}

/// Arguments of `mcp-operator bridge`.
#[derive(clap::Args, Debug)]
pub struct BridgeArgs {
    /// Address to serve Streamable HTTP on (keep it on loopback: the gateway is the door).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Shared: one process for all sessions; PerSession: one process per session.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SessionMode::Shared)]
    pub session_mode: SessionMode,
    /// PerSession: initialized processes kept ready for new sessions.
    #[arg(long, default_value_t = 1)]
    pub warm_pool: usize,
    /// HTTP path of the MCP endpoint.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// Sessions idle this many seconds (no request, no open stream) are closed.
    #[arg(long, default_value_t = 1800)]
    pub session_idle_seconds: u64,
    /// On SIGTERM, wait at most this many seconds for calls in flight.
    #[arg(long, default_value_t = 10)]
    pub drain_seconds: u64,
    /// Bytes of server messages one client session may hold while its client does not
    /// read them (GET backlog and open streams together); beyond, the oldest backlog
    /// messages are dropped, then the session's fullest stream is cut.
    #[arg(long, default_value_t = DEFAULT_SESSION_BACKLOG_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(65536..=1 << 32))]
    pub session_backlog_bytes: usize,
    /// Longest stdout line (one JSON-RPC message) taken from the process; a longer line is
    /// a protocol error of the process: logged by length, dropped, counted.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    pub max_line_bytes: usize,
    /// Log line format.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// The stdio MCP server command and its arguments (after `--`).
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Runs the bridge until SIGTERM.
pub fn run(args: &BridgeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("give the stdio server command after `--`"))?;
    let command = ChildConfig {
        max_line_bytes: args.max_line_bytes,
        ..ChildConfig::new(ChildCommand {
            program: program.clone(),
            args: rest.to_vec(),
        })
    };
    let options = ServeOptions {
        listen: args.listen,
        path: args.path.clone(),
        drain_timeout: Duration::from_secs(args.drain_seconds),
        streamable: StreamableConfig {
            idle_timeout: Duration::from_secs(args.session_idle_seconds),
            session_backlog_bytes: args.session_backlog_bytes,
            ..StreamableConfig::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.session_mode {
            SessionMode::Shared => {
                let process = Process::start(&command);
                serve(SharedBackend { process }, options).await
            }
            SessionMode::PerSession => {
                let pool = WarmPool::start(command, args.warm_pool);
                serve(PerSessionBackend { pool }, options).await
            }
        }
    })
}
