//! One stdio MCP server process: spawning it, the single writer task to its stdin, its
//! stderr copied to the log (target `bridge::child`, never to clients), the `initialize`
//! handshake, and reading its stdout line by line.
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

use super::error::BridgeError;
use super::lines::{BoundedLines, Line};
use super::metrics::{ChildMetrics, ProtocolError};
use crate::mcp_http::{KNOWN_PROTOCOL_VERSIONS, jsonrpc};

/// How long a fresh process may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after its stdin closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Lines queued for the writer task.
const WRITE_QUEUE: usize = 4096;
/// The id of the bridge's own `initialize`; multiplexed ids start above it.
pub const INITIALIZE_ID: u64 = 0;
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
}

impl ChildConfig {
    /// `command` with the default line limit and fresh counters.
    pub fn new(command: ChildCommand) -> Self {
        Self {
            command,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            metrics: Arc::default(),
        }
    }
}

/// Serialized JSON-RPC lines for the writer task.
pub type LineSender = mpsc::Sender<Vec<u8>>;

/// A running, initialized process.
pub struct RunningChild {
    process: Child,
    writer: Option<LineSender>,
    stdout: BoundedLines<ChildStdout>,
    max_line_bytes: usize,
    metrics: Arc<ChildMetrics>,
    /// The `result` of the process's `initialize` answer.
    pub initialize_result: Value,
    /// Its process id (for logs and tests).
    pub pid: Option<u32>,
}

/// One JSON-RPC message as a line for the child's stdin.
pub fn encode_line(message: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

impl RunningChild {
    /// Starts the process and performs the `initialize` handshake (newest known version).
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
            initialize_result: Value::Null,
            pid,
        };
        child.initialize_result = tokio::time::timeout(INITIALIZE_TIMEOUT, child.handshake())
            .await
            .map_err(|_| BridgeError::InitializeTimeout(INITIALIZE_TIMEOUT))??;
        Ok(child)
    }

    async fn handshake(&mut self) -> Result<Value, BridgeError> {
        let newest = KNOWN_PROTOCOL_VERSIONS
            .last()
            .copied()
            .unwrap_or("2025-11-25");
        let initialize = json!({
            "jsonrpc": "2.0", "id": INITIALIZE_ID, "method": "initialize",
            "params": {
                "protocolVersion": newest,
                // Sessions behind the bridge may offer these; requests for them are routed
                // to the session that caused them, or refused.
                "capabilities": {
                    "roots": {"listChanged": true},
                    "sampling": {},
                    "elicitation": {"form": {}, "url": {}}
                },
                "clientInfo": {"name": "mcp-operator-bridge", "version": env!("CARGO_PKG_VERSION")}
            }
        });
        self.send(encode_line(&initialize)).await?;
        loop {
            let (message, _) = self
                .next_message()
                .await
                .ok_or(BridgeError::EndedDuringInitialize)?;
            if !jsonrpc::is_response(&message) || message["id"] != json!(INITIALIZE_ID) {
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(BridgeError::InitializeRejected(error.to_string()));
            }
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            self.send(encode_line(&initialized)).await?;
            return Ok(message["result"].clone());
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
