//! Hardening tests for the stdio bridge (issue 13, item 7): a hostile child process cannot
//! make the bridge grow without bound, stop reading its stderr, or kill itself with bytes
//! that are not UTF-8, and a child that dies before `initialize` shows in the restart
//! metric. The children are small raw JSON-RPC servers in Python, written by each test into
//! a temporary directory, so every byte they write is under the test's control.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::bridge::Bridge;
use crate::bridge::client::{McpClient, http_client};
use crate::support;

const MIB: u64 = 1 << 20;

/// A stdio MCP server speaking raw JSON-RPC, with tools that misbehave on request:
/// `long_line` (writes `mib` MiB without a newline, then ends the line), `bad_utf8` (a
/// stdout line and a stderr line that are not UTF-8), `stderr` (writes `line` to stderr),
/// `flood` (`count` notifications of `bytes` bytes each). Every tool then answers normally
/// with its pid. Mode `die_before_init STATE N`: the first N runs exit after reading
/// `initialize`, without answering (counted in the file STATE).
const HOSTILE_CHILD: &str = r#"
import json, os, sys

out, err = sys.stdout.buffer, sys.stderr.buffer

def send(message):
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()

if len(sys.argv) > 1 and sys.argv[1] == "die_before_init":
    state, deaths = sys.argv[2], int(sys.argv[3])
    died = int(open(state).read()) if os.path.exists(state) else 0
    if died < deaths:
        open(state, "w").write(str(died + 1))
        sys.stdin.buffer.readline()
        sys.exit(7)

for raw in sys.stdin.buffer:
    message = json.loads(raw)
    method, id_ = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": id_, "result": {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}, "logging": {}},
            "serverInfo": {"name": "hostile", "version": "1"}}})
    elif method == "tools/call":
        name = message["params"]["name"]
        args = message["params"].get("arguments") or {}
        if name == "long_line":
            chunk = b"x" * (1 << 20)
            for _ in range(args["mib"]):
                out.write(chunk)
            out.write(b"\n")
            out.flush()
        elif name == "bad_utf8":
            out.write(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"\xff\xfe"}}\n')
            out.write(b"\xc3\x28\x80 not even json\n")
            out.flush()
            err.write(b"stderr with bad bytes \xff\xfe\x80 here\n")
            err.flush()
        elif name == "stderr":
            err.write(args["line"].encode() + b"\n")
            err.flush()
        elif name == "flood":
            payload = "y" * args["bytes"]
            for _ in range(args["count"]):
                send({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": payload}})
        send({"jsonrpc": "2.0", "id": id_, "result": {
            "content": [{"type": "text", "text": name}],
            "structuredContent": {"pid": os.getpid()}}})
    elif id_ is not None and method is not None:
        send({"jsonrpc": "2.0", "id": id_, "result": {}})
"#;

/// The hostile child's command line (the script written into `dir`).
fn hostile_cmd(dir: &Path, args: &[&str]) -> Vec<String> {
    let script = dir.join("hostile_child.py");
    std::fs::write(&script, HOSTILE_CHILD).expect("writing the hostile child");
    let mut cmd = vec![
        support::python().to_string_lossy().into_owned(),
        script.to_string_lossy().into_owned(),
    ];
    cmd.extend(args.iter().map(|a| (*a).to_owned()));
    cmd
}

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
fn proc_memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"))
}

/// How far the bridge's peak resident memory rose above `rss_before`.
fn peak_growth(bridge: &Bridge, rss_before: u64) -> u64 {
    proc_memory(bridge.peer.pid(), "VmHWM").saturating_sub(rss_before)
}

async fn call(client: &McpClient, id: u64, name: &str, args: Value) -> Value {
    client.call_tool(json!(id), name, args).await["structuredContent"]["pid"].clone()
}

/// Waits until the bridge's log contains `needle` (at most 20 s).
fn wait_log(bridge: &mut Bridge, needle: &str) {
    crate::support::eventually::eventually_blocking(
        &format!("{needle:?} in the bridge log"),
        Duration::from_secs(20),
        || {
            let output = bridge.peer.output();
            if output.contains(needle) {
                Ok(())
            } else {
                Err(output)
            }
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_stdout_line_is_dropped_in_bounded_memory_and_the_child_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut bridge = Bridge::start(
        &["--max-line-bytes", "1048576"],
        &hostile_cmd(dir.path(), &[]),
        &[],
    );
    let mut client = McpClient::new(&bridge.mcp_url());
    client.initialize().await;
    let pid = call(&client, 1, "stderr", json!({"line": "warm-up"})).await;
    let rss_before = proc_memory(bridge.peer.pid(), "VmRSS");

    // 20 MiB on one line, then the valid response to this very call.
    let answered = call(&client, 2, "long_line", json!({"mib": 20})).await;
    assert_eq!(answered, pid, "the same process answered");
    let growth = peak_growth(&bridge, rss_before);
    eprintln!(
        "peak RSS growth reading a 20 MiB line: {} KiB",
        growth / 1024
    );
    assert!(
        growth < 8 * MIB,
        "the bridge's peak memory rose by {} MiB reading one 20 MiB line with a 1 MiB limit",
        growth / MIB
    );
    let errors = r#"mcp_bridge_child_protocol_errors_total{kind="line_too_long"}"#;
    assert_eq!(bridge.wait_metric(errors, |n| n >= 1).await, 1);
    assert_eq!(bridge.metric("mcp_bridge_child_restarts_total").await, 0);
    // Logged by length only: none of the line's content reaches the log.
    wait_log(&mut bridge, "20971520");
    assert!(
        !bridge.peer.output().contains("xxxxxxxx"),
        "line content logged"
    );
    assert_eq!(
        call(&client, 3, "stderr", json!({"line": "after"})).await,
        pid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_on_stdout_and_stderr_neither_kills_the_child_nor_stops_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut bridge = Bridge::start(&[], &hostile_cmd(dir.path(), &[]), &[]);
    let mut client = McpClient::new(&bridge.mcp_url());
    client.initialize().await;
    let pid = call(&client, 1, "stderr", json!({"line": "before-bad-bytes"})).await;
    wait_log(&mut bridge, "before-bad-bytes");

    assert_eq!(call(&client, 2, "bad_utf8", json!({})).await, pid);
    // A later call still reaches the same process, and its stderr still reaches the log.
    assert_eq!(
        call(&client, 3, "stderr", json!({"line": "after-bad-bytes"})).await,
        pid
    );
    wait_log(&mut bridge, "after-bad-bytes");
    // The bad stderr line itself is logged, lossily decoded.
    wait_log(&mut bridge, "stderr with bad bytes");
    assert_eq!(bridge.metric("mcp_bridge_child_restarts_total").await, 0);
    let errors = r#"mcp_bridge_child_protocol_errors_total{kind="invalid_utf8"}"#;
    assert_eq!(bridge.wait_metric(errors, |n| n >= 2).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_dies_before_initialize_counts_as_a_restart_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("deaths");
    let state = state.to_string_lossy().into_owned();
    // Bridge::start returns once the fourth process answered initialize.
    let mut bridge = Bridge::start(
        &[],
        &hostile_cmd(dir.path(), &["die_before_init", &state, "3"]),
        &[],
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "3");
    assert_eq!(
        bridge
            .wait_metric("mcp_bridge_child_restarts_total", |n| n >= 3)
            .await,
        3
    );
    let mut client = McpClient::new(&bridge.mcp_url());
    client.initialize().await;
    call(&client, 1, "stderr", json!({"line": "alive"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_do_not_read_cannot_make_the_bridge_buffer_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        &["--session-backlog-bytes", "2097152"],
        &hostile_cmd(dir.path(), &[]),
        &[],
    );
    let url = bridge.mcp_url();
    // `stalled` opens its GET stream and never reads it; `absent` opens none (backlog).
    let mut stalled = McpClient::new(&url);
    stalled.initialize().await;
    let mut absent = McpClient::new(&url);
    absent.initialize().await;
    let stream = http_client()
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", stalled.session.clone().unwrap())
        .send()
        .await
        .expect("GET stream");
    assert_eq!(stream.status(), 200);
    let mut flooder = McpClient::new(&url);
    flooder.initialize().await;
    let pid = call(&flooder, 1, "stderr", json!({"line": "warm-up"})).await;
    let rss_before = proc_memory(bridge.peer.pid(), "VmRSS");

    // 1600 notifications of 64 KiB: 100 MiB for every session.
    let flood = json!({"count": 1600, "bytes": 65536});
    assert_eq!(call(&flooder, 2, "flood", flood).await, pid);
    let growth = peak_growth(&bridge, rss_before);
    eprintln!(
        "peak RSS growth during a 100 MiB flood: {} MiB",
        growth / MIB
    );
    assert!(
        growth < 40 * MIB,
        "the bridge's peak memory rose by {} MiB buffering a flood for sessions that do not \
         read, with a 2 MiB per-session limit",
        growth / MIB
    );
    // `absent`'s backlog dropped its oldest messages; `stalled`'s GET stream was cut.
    let dropped = bridge.metric("mcp_bridge_session_messages_dropped_total");
    assert!(dropped.await > 0);
    let cut = bridge.metric("mcp_bridge_session_streams_cut_total");
    assert!(cut.await >= 1);
    // The flood did not break the sessions that do read.
    assert_eq!(
        call(&absent, 2, "stderr", json!({"line": "after"})).await,
        pid
    );
    drop(stream);
}
