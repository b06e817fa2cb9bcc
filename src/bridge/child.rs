//! One stdio MCP server process: spawning it, the single writer task to its stdin, its
//! stderr copied to the log (target `bridge::child`, never to clients), the handshake
//! that finds the child's protocol era, and reading its stdout line by line.
//!
//! The handshake is the official clients' `auto` negotiation: `server/discover` first (with
//! a complete `_meta` envelope), `initialize` when the child does not answer it with a
//! modern version (any error, a result listing no modern version, or no answer within
//! [`DISCOVER_TIMEOUT`]). Discover must come first: the Python SDK's dual stdio server
//! locks a connection to the era of its first request, so a modern-only child could never
//! be reached after an `initialize`. A dual child is therefore served in the modern era.
//! Some legacy servers exit on any request before `initialize`: when a child ends (or stays
//! silent) before answering `server/discover`, the next start of that command goes
//! straight to `initialize` ([`EraHint`]), and back to discovering when an `initialize` is
//! refused (a modern-only child that ended for another reason).
//!
//! The child is not trusted: stdout is read in lines of at most `--max-line-bytes`
//! ([`BoundedLines`]); a longer line, a line that is not UTF-8 or not JSON is a protocol
//! error of the child — logged by length only (never its content), counted in
//! [`ChildMetrics`], dropped — and the process keeps running. Stderr is read the same way
//! and decoded lossily, so no byte sequence stops the stderr reader (a child blocked on a
//! full stderr pipe would hang).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use super::eras::{ChildEra, modern_versions_of};
use super::error::BridgeError;
use super::lines::{BoundedLines, Line};
use super::metrics::{ChildMetrics, ProtocolError};
use crate::mcp_http::{era, jsonrpc};

/// How long a fresh process may take for the whole handshake.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the handshake waits for an answer to `server/discover` before it tries
/// `initialize` (a legacy server may ignore requests that come before `initialize`).
pub const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process may take to exit after its stdin closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Lines queued for the writer task.
const WRITE_QUEUE: usize = 4096;
/// The id of the bridge's own `server/discover`.
pub const DISCOVER_ID: u64 = 0;
/// The id of the bridge's own `initialize`; multiplexed ids start above it.
pub const INITIALIZE_ID: u64 = 1;
/// Default `--max-line-bytes`: the longest stdout line (one JSON-RPC message) taken.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;
/// Stderr lines are logged up to this many bytes (the rest of a line is cut).
const MAX_STDERR_LINE: usize = 16 * 1024;

/// The command line of the stdio server.
#[derive(Clone, Debug)]
pub struct ChildCommand {
    pub program: String,
    pub args: Vec<String>,
}

/// How to run and read a stdio server process.
#[derive(Clone, Debug)]
pub struct ChildConfig {
    pub command: ChildCommand,
    /// Longest stdout line taken (`--max-line-bytes`).
    pub max_line_bytes: usize,
    /// Counters shared by every process of this bridge.
    pub metrics: Arc<ChildMetrics>,
    /// What earlier handshakes of this command taught (shared by its processes).
    pub hint: Arc<EraHint>,
}

/// Whether the next handshake skips `server/discover` (set when a child ended or stayed
/// silent before answering it).
#[derive(Debug, Default)]
pub struct EraHint {
    skip_discover: std::sync::atomic::AtomicBool,
}

impl EraHint {
    fn skip_discover(&self) -> bool {
        self.skip_discover
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_skip_discover(&self, skip: bool) {
        self.skip_discover
            .store(skip, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ChildConfig {
    /// `command` with the default line limit and fresh counters.
    pub fn new(command: ChildCommand) -> Self {
        Self {
            command,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            metrics: Arc::default(),
            hint: Arc::default(),
        }
    }
}

/// Serialized JSON-RPC lines for the writer task.
pub type LineSender = mpsc::Sender<Vec<u8>>;

/// A running process whose handshake succeeded.
pub struct RunningChild {
    process: Child,
    writer: Option<LineSender>,
    stdout: BoundedLines<ChildStdout>,
    max_line_bytes: usize,
    metrics: Arc<ChildMetrics>,
    hint: Arc<EraHint>,
    /// What the handshake found: the child's era and its `initialize` or discover result.
    pub era: ChildEra,
    /// Its process id (for logs and tests).
    pub pid: Option<u32>,
}

/// The modern era a `server/discover` answer shows: a result listing a modern version the
/// bridge knows (the newest is used).
fn modern_era(answer: &Value) -> Option<ChildEra> {
    let result = answer.get("result").filter(|r| r.is_object())?;
    let version = modern_versions_of(result).pop()?;
    Some(ChildEra::Modern {
        discover: result.clone(),
        version,
    })
}

/// The bridge's `clientInfo` in its handshake.
fn bridge_info() -> Value {
    json!({"name": "mcp-operator-bridge", "version": env!("CARGO_PKG_VERSION")})
}

/// One JSON-RPC message as a line for the child's stdin.
pub fn encode_line(message: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

impl RunningChild {
    /// Starts the process and performs the handshake (see the module).
    pub async fn start(config: &ChildConfig) -> Result<Self, BridgeError> {
        let command = &config.command;
        let mut process = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BridgeError::Spawn {
                program: command.program.clone(),
                source,
            })?;
        let pid = process.id();
        let stdin = process
            .stdin
            .take()
            .ok_or(BridgeError::EndedDuringInitialize)?;
        let stdout = process
            .stdout
            .take()
            .ok_or(BridgeError::EndedDuringInitialize)?;
        if let Some(stderr) = process.stderr.take() {
            tokio::spawn(log_stderr(stderr, pid));
        }
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_lines(stdin, queue));
        let mut child = RunningChild {
            process,
            writer: Some(writer),
            stdout: BoundedLines::new(stdout, config.max_line_bytes),
            max_line_bytes: config.max_line_bytes,
            metrics: config.metrics.clone(),
            hint: config.hint.clone(),
            era: ChildEra::Legacy {
                initialize: Value::Null,
            },
            pid,
        };
        child.era = tokio::time::timeout(INITIALIZE_TIMEOUT, child.handshake())
            .await
            .map_err(|_| BridgeError::InitializeTimeout(INITIALIZE_TIMEOUT))??;
        Ok(child)
    }

    async fn handshake(&mut self) -> Result<ChildEra, BridgeError> {
        // Discover still unanswered when initialize goes out (it timed out).
        let mut probing = false;
        if !self.hint.skip_discover() {
            match self.discover().await {
                Ok(Some(answer)) => {
                    if let Some(era) = modern_era(&answer) {
                        return Ok(era);
                    }
                }
                Ok(None) => probing = true,
                Err(e) => {
                    // Ended before answering: perhaps a server that exits on an unknown
                    // request before initialize.
                    self.hint.set_skip_discover(true);
                    return Err(e);
                }
            }
        }
        let initialize = json!({
            "jsonrpc": "2.0", "id": INITIALIZE_ID, "method": "initialize",
            "params": {
                "protocolVersion": era::LATEST_LEGACY,
                // Sessions behind the bridge may offer these; requests for them are routed
                // to the session that caused them, or refused.
                "capabilities": {
                    "roots": {"listChanged": true},
                    "sampling": {},
                    "elicitation": {"form": {}, "url": {}}
                },
                "clientInfo": bridge_info()
            }
        });
        self.send(encode_line(&initialize)).await?;
        // A late discover answer (a slow start) is kept: when initialize is then refused,
        // the child locked itself to the modern era and that answer is the handshake.
        let mut late_discover = None;
        let message = loop {
            let message = self.answer_to(&[INITIALIZE_ID, DISCOVER_ID]).await?;
            if message["id"] == json!(INITIALIZE_ID) {
                break message;
            }
            late_discover = modern_era(&message);
            probing = false;
        };
        if let Some(error) = message.get("error") {
            if let Some(era) = late_discover {
                return Ok(era);
            }
            // A refused handshake: discover again next time.
            self.hint.set_skip_discover(false);
            return Err(BridgeError::InitializeRejected(error.to_string()));
        }
        if probing {
            // Silent to discover, answering initialize: a legacy server that ignores
            // requests before initialize. Do not make the next start wait for discover.
            self.hint.set_skip_discover(true);
        }
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.send(encode_line(&initialized)).await?;
        Ok(ChildEra::Legacy {
            initialize: message["result"].clone(),
        })
    }

    /// Sends `server/discover` at the newest modern version; its answer, or `None` when
    /// none came within [`DISCOVER_TIMEOUT`].
    async fn discover(&mut self) -> Result<Option<Value>, BridgeError> {
        let mut discover = json!({"jsonrpc": "2.0", "id": DISCOVER_ID, "method": era::DISCOVER});
        era::stamp_envelope(
            &mut discover,
            &era::request_envelope(era::LATEST_MODERN, json!({}), bridge_info()),
        );
        self.send(encode_line(&discover)).await?;
        match tokio::time::timeout(DISCOVER_TIMEOUT, self.answer_to(&[DISCOVER_ID])).await {
            Ok(answer) => answer.map(Some),
            Err(_) => {
                tracing::info!(
                    pid = self.pid,
                    "no answer to server/discover yet; trying initialize"
                );
                Ok(None)
            }
        }
    }

    /// The child's response to one of the handshake requests `ids` (other messages are
    /// skipped).
    async fn answer_to(&mut self, ids: &[u64]) -> Result<Value, BridgeError> {
        loop {
            let (message, _) = self
                .next_message()
                .await
                .ok_or(BridgeError::EndedDuringInitialize)?;
            if jsonrpc::is_response(&message)
                && message["id"].as_u64().is_some_and(|id| ids.contains(&id))
            {
                return Ok(message);
            }
        }
    }

    async fn send(&self, line: Vec<u8>) -> Result<(), BridgeError> {
        let writer = self
            .writer
            .as_ref()
            .ok_or(BridgeError::EndedDuringInitialize)?;
        writer
            .send(line)
            .await
            .map_err(|_| BridgeError::EndedDuringInitialize)
    }

    /// A sender to the writer task.
    pub fn writer(&self) -> Option<LineSender> {
        self.writer.clone()
    }

    /// The next JSON message on stdout and the length of its line; `None` once stdout
    /// ends. Lines that are too long, not UTF-8 or not JSON are dropped (see the module).
    pub async fn next_message(&mut self) -> Option<(Value, usize)> {
        loop {
            match self.stdout.next_line().await {
                Ok(Some(line)) => {
                    if let Some(message) = self.decode(line) {
                        return Some(message);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// One stdout line as a message, or `None` (counted and logged) when it is not one.
    fn decode(&self, line: Line) -> Option<(Value, usize)> {
        let pid = self.pid;
        let bytes = match line {
            Line::Whole(bytes) => bytes,
            Line::TooLong { len, .. } => {
                tracing::warn!(target: "bridge::child", pid, len, limit = self.max_line_bytes,
                    "dropping a stdout line longer than --max-line-bytes (protocol error of the MCP server)");
                self.metrics.protocol_error(ProtocolError::LineTooLong);
                return None;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if let Err(e) = std::str::from_utf8(&bytes) {
            tracing::warn!(target: "bridge::child", pid, len = bytes.len(), valid_up_to = e.valid_up_to(),
                "dropping a stdout line that is not UTF-8 (protocol error of the MCP server)");
            self.metrics.protocol_error(ProtocolError::InvalidUtf8);
            return None;
        }
        match serde_json::from_slice(&bytes) {
            Ok(message) => Some((message, bytes.len())),
            Err(e) => {
                tracing::debug!(target: "bridge::child", pid, len = bytes.len(), error = %e,
                    "dropping a stdout line that is not JSON");
                self.metrics.protocol_error(ProtocolError::NotJson);
                None
            }
        }
    }

    /// Stops the process (or reaps one that already ended) and says how it ended: closes
    /// stdin (the MCP way to ask a stdio server to exit), then kills it if it has not
    /// exited after a grace period.
    pub async fn stop(mut self) -> String {
        self.writer = None;
        match tokio::time::timeout(EXIT_GRACE, self.process.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => {
                let _ = self.process.kill().await;
                "killed".to_owned()
            }
        }
    }
}

/// The one task writing to the child's stdin: batches whatever is queued into one flush.
async fn write_lines(mut stdin: ChildStdin, mut queue: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(line) = queue.recv().await {
        batch.clear();
        batch.extend_from_slice(&line);
        while batch.len() < 1 << 20 {
            match queue.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if stdin.write_all(&batch).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Copies the child's stderr to the log until it closes: lines cut to
/// [`MAX_STDERR_LINE`], decoded lossily, so no byte sequence ends the copy.
async fn log_stderr(stderr: tokio::process::ChildStderr, pid: Option<u32>) {
    let mut lines = BoundedLines::new(stderr, MAX_STDERR_LINE);
    while let Ok(Some(line)) = lines.next_line().await {
        match line {
            Line::Whole(bytes) => {
                tracing::info!(target: "bridge::child", pid, "{}", String::from_utf8_lossy(&bytes));
            }
            Line::TooLong { head, len } => {
                tracing::info!(target: "bridge::child", pid, len, "{} [cut]", String::from_utf8_lossy(&head));
            }
        }
    }
}
