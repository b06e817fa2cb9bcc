//! One stdio MCP server process: spawning it, the single writer task to its stdin, its
//! stderr copied to the log (target `bridge::child`, never to clients), the `initialize`
//! handshake, and reading its stdout line by line.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use super::error::BridgeError;
use crate::mcp_http::{KNOWN_PROTOCOL_VERSIONS, jsonrpc};

/// How long a fresh process may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after its stdin closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Lines queued for the writer task.
const WRITE_QUEUE: usize = 4096;
/// The id of the bridge's own `initialize`; multiplexed ids start above it.
pub const INITIALIZE_ID: u64 = 0;

/// The command line of the stdio server.
#[derive(Clone, Debug)]
pub struct ChildCommand {
    pub program: String,
    pub args: Vec<String>,
}

/// Serialized JSON-RPC lines for the writer task.
pub type LineSender = mpsc::Sender<Vec<u8>>;

/// A running, initialized process.
pub struct RunningChild {
    process: Child,
    writer: Option<LineSender>,
    lines: Lines<BufReader<ChildStdout>>,
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
    pub async fn start(command: &ChildCommand) -> Result<Self, BridgeError> {
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
            lines: BufReader::with_capacity(64 * 1024, stdout).lines(),
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
            let line = self
                .lines
                .next_line()
                .await?
                .ok_or(BridgeError::EndedDuringInitialize)?;
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                tracing::debug!(target: "bridge::child", "ignoring a non-JSON stdout line");
                continue;
            };
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

    /// The next JSON message on stdout; `None` once stdout ends.
    pub async fn next_message(&mut self) -> Option<Value> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => match serde_json::from_str(&line) {
                    Ok(message) => return Some(message),
                    Err(_) => {
                        tracing::debug!(target: "bridge::child", "ignoring a non-JSON stdout line")
                    }
                },
                Ok(None) | Err(_) => return None,
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

async fn log_stderr(stderr: tokio::process::ChildStderr, pid: Option<u32>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "bridge::child", pid, "{line}");
    }
}
