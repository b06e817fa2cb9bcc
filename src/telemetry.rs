//! Logging setup shared by every long-running subcommand (`run`, `gateway`, `bridge`):
//! plain or JSON lines on stderr, filtered by `RUST_LOG` (default `info`). Audit records
//! use the `audit` target and are written by the gateway's audit module.

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
