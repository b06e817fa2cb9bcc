//! `mcp-operator probe`: argument parsing and the run function. Everything it does goes
//! through the library API ([`probe`]), so it behaves like the controller.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::call::{MAX_CALLS, ToolCall, call_tools};
use super::era::EraPreference;
use super::output::{self, OutputFormat};
use super::run::{ProbeOptions, probe};
use super::target::{Header, HttpTarget, ProbeTarget, StdioTarget, TlsOptions, TransportKind};
use crate::api::common::parse_duration;

/// Exit status when the probe ran and failed.
pub const EXIT_PROBE_FAILED: i32 = 2;

/// `--transport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TransportArg {
    /// `/sse` at the end of the path means SSE, anything else Streamable HTTP.
    #[default]
    Auto,
    /// Streamable HTTP.
    StreamableHttp,
    /// Legacy HTTP+SSE.
    Sse,
}

impl From<TransportArg> for TransportKind {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Auto => TransportKind::Auto,
            TransportArg::StreamableHttp => TransportKind::StreamableHttp,
            TransportArg::Sse => TransportKind::Sse,
        }
    }
}

/// `--era` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EraArg {
    /// `server/discover` first (MCP 2026-07-28), the `initialize` handshake when the
    /// server answers like a legacy one: what the official SDK clients do.
    #[default]
    Auto,
    /// Only the `initialize` handshake (2025-11-25 and older).
    Legacy,
    /// Only `server/discover` (2026-07-28); a legacy-only server fails the probe.
    Modern,
}

impl From<EraArg> for EraPreference {
    fn from(e: EraArg) -> Self {
        match e {
            EraArg::Auto => EraPreference::Auto,
            EraArg::Legacy => EraPreference::Legacy,
            EraArg::Modern => EraPreference::Modern,
        }
    }
}

/// Connect to an MCP server once, list what it offers, and print it.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  mcp-operator probe http://127.0.0.1:3001/mcp\n  \
    mcp-operator probe https://api.example.com/mcp -H 'Authorization=Bearer ...' -o yaml\n  \
    mcp-operator probe --pins http://127.0.0.1:3001/sse\n  \
    mcp-operator probe --era legacy http://127.0.0.1:3001/mcp\n  \
    mcp-operator probe -- npx -y @modelcontextprotocol/server-memory\n\n\
    Exit status: 0 when the probe succeeded; 2 when it failed, with `error: <Code>: <message>` \
    on stderr (codes: InvalidUrl, ConnectionFailed, Timeout, TlsError, AuthRequired, \
    NotMcpServer, ProtocolError, ServerError; with -o json|yaml the report also goes to stdout); \
    1 for a usage error. Only ConnectionFailed, Timeout and ServerError are retried."
)]
pub struct ProbeArgs {
    /// The MCP endpoint (http:// or https://). Leave out when a command follows `--`.
    #[arg(value_name = "URL")]
    pub url: Option<String>,

    /// Extra request header, repeatable. The value is treated as a secret.
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,

    /// HTTP transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Auto)]
    pub transport: TransportArg,

    /// Protocol era: auto (server/discover, falling back to initialize), legacy
    /// (initialize only) or modern (server/discover only).
    #[arg(long, value_enum, default_value_t = EraArg::Auto)]
    pub era: EraArg,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Time for one attempt: connect + initialize + lists (Go-style: 10s, 1m30s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Extra attempts after a transient failure (ConnectionFailed, Timeout, ServerError).
    #[arg(long, default_value_t = 1)]
    pub retries: u32,

    /// Pause between attempts.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub retry_delay: Duration,

    /// PEM file with CA certificates to trust in addition to the system roots.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the server certificate (development only).
    #[arg(long)]
    pub insecure_skip_verify: bool,

    /// Print `pinnedTools:` YAML (name + sha256 per tool) instead of the report.
    #[arg(long)]
    pub pins: bool,

    /// After the probe, call this tool once (repeatable, at most 32), with JSON object
    /// arguments after `=`; the results are added to the report. Input requests of a
    /// multi round-trip call are answered as a client without a user would (declined).
    #[arg(long = "call", value_name = "TOOL[=JSON]", conflicts_with = "pins")]
    pub calls: Vec<String>,

    /// A stdio server to start and probe: `-- CMD ARGS…`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl ProbeArgs {
    /// The target these arguments describe.
    pub fn target(&self) -> anyhow::Result<ProbeTarget> {
        match (&self.url, self.command.split_first()) {
            (Some(_), Some(_)) => bail!("give either a URL or `-- CMD ARGS…`, not both"),
            (None, None) => bail!("give a URL to probe, or a stdio server as `-- CMD ARGS…`"),
            (None, Some((cmd, args))) => {
                if !self.headers.is_empty() || self.ca_file.is_some() || self.insecure_skip_verify {
                    bail!("--header, --ca-file and --insecure-skip-verify apply to URLs only");
                }
                let mut t = StdioTarget::new(cmd.clone(), args.iter().cloned());
                t.era = self.era.into();
                Ok(ProbeTarget::Stdio(t))
            }
            (Some(url), None) => {
                let mut t = HttpTarget::new(url.clone());
                t.transport = self.transport.into();
                t.era = self.era.into();
                t.headers = self
                    .headers
                    .iter()
                    .map(|h| parse_header(h))
                    .collect::<anyhow::Result<_>>()?;
                t.tls = TlsOptions {
                    ca_pem: match &self.ca_file {
                        Some(p) => Some(
                            std::fs::read(p)
                                .with_context(|| format!("reading --ca-file {}", p.display()))?,
                        ),
                        None => None,
                    },
                    insecure_skip_verify: self.insecure_skip_verify,
                };
                Ok(ProbeTarget::Http(t))
            }
        }
    }

    /// Timeout, retries and delay.
    pub fn options(&self) -> ProbeOptions {
        ProbeOptions {
            timeout: self.timeout,
            retries: self.retries,
            retry_delay: self.retry_delay,
        }
    }
}

/// `NAME=VALUE` (also accepts `NAME: VALUE`). Errors never quote the value.
fn parse_header(raw: &str) -> anyhow::Result<Header> {
    let (name, value) = raw
        .split_once('=')
        .or_else(|| raw.split_once(':'))
        .with_context(|| {
            let name: String = raw.chars().take_while(|c| *c != ' ').take(40).collect();
            format!("--header {name:?}…: expected NAME=VALUE")
        })?;
    let name = name.trim();
    if name.is_empty() {
        bail!("--header: the name before `=` is empty");
    }
    Ok(Header::new(name, value.trim_start()))
}

/// Runs the `probe` subcommand. A failed probe prints `error: <Code>: <message>` on stderr
/// and exits with status 2; usage errors are returned (status 1 from `main`).
pub fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    let target = args.target()?;
    let opts = args.options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let calls = args
        .calls
        .iter()
        .map(|c| ToolCall::parse(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if calls.len() > MAX_CALLS {
        bail!("at most {MAX_CALLS} --call");
    }
    let report = runtime.block_on(probe(&target, &opts));
    let outcomes = match (report.error(), calls.is_empty()) {
        (None, false) => Some(runtime.block_on(call_tools(&target, opts.timeout, &calls))),
        _ => None,
    };
    let mut stdout = std::io::stdout().lock();
    match (report.inventory(), args.pins) {
        (Some(inv), true) => {
            if inv.tools_truncated {
                eprintln!(
                    "warning: the server lists {} tools; pins cover the first 128",
                    inv.tool_count
                );
            }
            stdout.write_all(output::pins(inv).as_bytes())?;
        }
        (None, _) if args.output == OutputFormat::Table || args.pins => {}
        _ => {
            let outcomes = outcomes.as_ref().and_then(|o| o.as_ref().ok());
            let text = output::render_with_calls(&report, outcomes.map(Vec::as_slice), args.output)
                .map_err(anyhow::Error::msg)?;
            stdout.write_all(text.as_bytes())?;
        }
    }
    stdout.flush()?;
    drop(stdout);
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(error) = report.error() {
        eprintln!("error: {error}");
        std::process::exit(EXIT_PROBE_FAILED);
    }
    let failed_call = match &outcomes {
        Some(Err(e)) => Some(e.clone()),
        Some(Ok(o)) => o.iter().find_map(|c| c.error.clone()),
        None => None,
    };
    if let Some(error) = failed_call {
        eprintln!("error: {error}");
        std::process::exit(EXIT_PROBE_FAILED);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProbeArgs,
    }

    fn parse(argv: &[&str]) -> ProbeArgs {
        Cli::try_parse_from(std::iter::once("probe").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn url_with_headers_and_durations() {
        let a = parse(&[
            "http://h/sse",
            "-H",
            "Authorization=Bearer s3cr3t",
            "--header",
            "X-A: 1",
            "--timeout",
            "1m30s",
            "--retries",
            "0",
        ]);
        assert_eq!(a.timeout, Duration::from_secs(90));
        let ProbeTarget::Http(t) = a.target().unwrap() else {
            panic!()
        };
        assert_eq!(t.headers[0].name(), "Authorization");
        assert_eq!(t.headers[0].value(), "Bearer s3cr3t");
        assert_eq!(t.headers[1].value(), "1");
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn stdio_after_double_dash() {
        let a = parse(&["-o", "json", "--", "node", "server.js", "--flag"]);
        let ProbeTarget::Stdio(t) = a.target().unwrap() else {
            panic!()
        };
        assert_eq!((t.command.as_str(), t.args.len()), ("node", 2));
        assert!(parse(&[]).target().is_err());
        assert!(parse(&["http://h", "--", "x"]).target().is_err());
    }

    #[test]
    fn bad_header_errors_do_not_leak_the_value() {
        let err = parse_header("Authorization Bearer-s3cr3t")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
