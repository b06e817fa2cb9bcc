//! Any client era in front of any child era: the bridge serves the 2025 handshake era
//! (`initialize`, sessions) and the 2026-07-28 era (`server/discover`, session-less requests
//! carrying their `_meta` envelope and routing headers) whatever its stdio child speaks —
//! a legacy-only child (server-everything), a modern-only child (the TypeScript SDK's
//! `legacy: 'reject'`, the Python peer's modern-only wrapper) or a dual child.
//!
//! The clients are real: the Python SDK 2.3 and TypeScript SDK v2 clients in `auto`,
//! pinned `2026-07-28` and `legacy` modes ([`crate::support::era_peers`]), and raw HTTP for
//! what no SDK client sends on purpose (mismatched headers, unknown versions, a listen).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::era_peers::{EraClient, EraServer, Target, ToolCall};

use serde_json::{Value, json};

use super::client::{AnswerStream, McpClient, http_client, read_answer};
use super::{Bridge, everything_cmd};
use crate::support;

const MODERN: &str = "2026-07-28";
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

/// Every SDK client mode (Python 2.3 and TypeScript v2: auto, pinned 2026-07-28, legacy)
/// against the bridge: the negotiated version the client reports, the tool listed and a
/// call answered with `expected` in its text.
fn every_client_works(bridge: &mut Bridge, call: &ToolCall, expected: &str) {
    let url = bridge.mcp_url();
    for (client, version) in [
        (EraClient::PythonAuto, MODERN),
        (EraClient::PythonPinned, MODERN),
        (EraClient::PythonLegacy, "2025-11-25"),
        (EraClient::TsAuto, MODERN),
        (EraClient::TsPinned, MODERN),
        (EraClient::TsLegacy, "2025-11-25"),
    ] {
        let run = client.run(Target::Url(&url), Some(call));
        assert_eq!(
            run.protocol_version.as_deref(),
            Some(version),
            "{}: {run:?}\nbridge output:\n{}",
            client.name(),
            bridge.peer.output()
        );
        assert!(
            run.tools.iter().any(|t| t == call.tool),
            "{}: {run:?}",
            client.name()
        );
        let text = run.result_text().unwrap_or("");
        let is_error = run.result.as_ref().is_some_and(|r| r["isError"] == true);
        assert!(
            text.contains(expected) && !is_error,
            "{}: {run:?}",
            client.name()
        );
    }
}

/// A modern request with its envelope, and the routing headers that mirror it.
fn modern_request(id: impl Into<Value>, method: &str, params: Value) -> Value {
    let id: Value = id.into();
    let mut params = params;
    params["_meta"] = json!({
        VERSION_KEY: MODERN,
        CAPABILITIES_KEY: {},
        "io.modelcontextprotocol/clientInfo": {"name": "eras-test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POSTs `body` without a session, with `headers`; returns the status and the response.
async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = http_client()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = read_answer(request.send().await.expect("POST")).await;
    (answer.status, answer.response().clone())
}

fn routing(method: &str, name: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("mcp-protocol-version", MODERN.to_owned()),
        ("mcp-method", method.to_owned()),
    ];
    if let Some(name) = name {
        headers.push(("mcp-name", name.to_owned()));
    }
    headers
}

fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Header/body mismatches are refused with -32020 before the child sees them, versions
/// the bridge cannot serve with -32022 naming the ones it can, and the matching request
/// goes through.
async fn modern_requests_are_checked(url: &str, tool: &str, args: Value) {
    let call = modern_request(7, "tools/call", json!({"name": tool, "arguments": args}));
    let good = routing("tools/call", Some(tool));
    let (status, response) = post(url, &call, &as_refs(&good)).await;
    assert_eq!(status, 200, "{response}");
    assert!(response.get("result").is_some(), "{response}");
    assert_eq!(response["id"], 7);

    for (what, headers) in [
        (
            "Mcp-Name of another tool",
            routing("tools/call", Some("other-tool")),
        ),
        ("no Mcp-Name", routing("tools/call", None)),
        (
            "Mcp-Method of another method",
            routing("tools/list", Some(tool)),
        ),
        (
            "MCP-Protocol-Version not the body's",
            vec![
                ("mcp-protocol-version", "2025-11-25".to_owned()),
                ("mcp-method", "tools/call".to_owned()),
                ("mcp-name", tool.to_owned()),
            ],
        ),
    ] {
        let (status, response) = post(url, &call, &as_refs(&headers)).await;
        assert_eq!(
            (status, response["error"]["code"].as_i64()),
            (400, Some(-32020)),
            "{what}: {response}"
        );
        assert_eq!(response["id"], 7, "{what}: {response}");
    }

    let mut future = modern_request(8, "tools/list", json!({}));
    future["params"]["_meta"][VERSION_KEY] = json!("2099-01-01");
    let headers = [
        ("mcp-protocol-version", "2099-01-01"),
        ("mcp-method", "tools/list"),
    ];
    let (status, response) = post(url, &future, &headers).await;
    assert_eq!(
        (status, response["error"]["code"].as_i64()),
        (400, Some(-32022)),
        "{response}"
    );
    assert_eq!(response["error"]["data"]["supported"], json!([MODERN]));
    assert_eq!(response["error"]["data"]["requested"], "2099-01-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_legacy_child_serves_modern_and_legacy_clients() {
    let mut bridge = Bridge::start(&[], &everything_cmd(), &[]);
    let url = bridge.mcp_url();

    // server/discover is answered from the child's initialize result.
    let discover = modern_request(1, "server/discover", json!({}));
    let (status, response) =
        post(&url, &discover, &as_refs(&routing("server/discover", None))).await;
    assert_eq!(status, 200, "{response}");
    let result = &response["result"];
    assert_eq!(result["supportedVersions"], json!([MODERN]), "{response}");
    assert!(result["capabilities"]["tools"].is_object(), "{response}");
    assert!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
            .as_str()
            .is_some_and(|n| n.contains("everything")),
        "{response}"
    );
    assert!(result["instructions"].is_string(), "{response}");

    modern_requests_are_checked(&url, "get-sum", json!({"a": 2, "b": 3})).await;
    every_client_works(&mut bridge, &EraServer::Everything.sample_call(), "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_modern_only_ts_child_serves_legacy_and_modern_clients() {
    let mut bridge = Bridge::start(&[], &EraServer::TsModernOnly.stdio_cmd(), &[]);
    let call = EraServer::TsModernOnly.sample_call();
    every_client_works(&mut bridge, &call, "eu-west");
    modern_requests_are_checked(&bridge.mcp_url(), "add", json!({"a": 2, "b": 3})).await;

    // A legacy session: initialize is synthesised from the child's discover result, and
    // ping works although the modern child has none.
    let mut legacy = McpClient::new(&bridge.mcp_url());
    let init = legacy.initialize().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(
        init["result"]["serverInfo"]["name"], "ts-modern-only",
        "{init}"
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    let pong = legacy.request(json!(2), "ping", json!({})).await;
    assert_eq!(pong.response()["result"], json!({}), "{pong:?}");
    let call = legacy
        .call_tool(json!(3), "echo", json!({"text": "hi"}))
        .await;
    assert_eq!(call["content"][0]["text"], "echo: hi", "{call}");
    assert!(call.get("resultType").is_none(), "{call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_modern_only_python_child_serves_legacy_and_modern_clients() {
    let mut bridge = Bridge::start(&[], &EraServer::PyModernOnly.stdio_cmd(), &[]);
    let call = EraServer::PyModernOnly.sample_call();
    every_client_works(&mut bridge, &call, "eu-west");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_dual_children_serve_every_client() {
    for server in [EraServer::TsDual, EraServer::PyDual] {
        let mut bridge = Bridge::start(&[], &server.stdio_cmd(), &[]);
        every_client_works(&mut bridge, &server.sample_call(), "eu-west");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_modern_client_gets_an_error_for_a_legacy_childs_server_request() {
    let bridge = Bridge::start(&[], &everything_cmd(), &[]);
    let url = bridge.mcp_url();
    let call = modern_request(
        3,
        "tools/call",
        json!({"name": "trigger-sampling-request", "arguments": {"prompt": "hi", "maxTokens": 5}}),
    );
    let headers = routing("tools/call", Some("trigger-sampling-request"));
    let started = Instant::now();
    let (_, response) = post(&url, &call, &as_refs(&headers)).await;
    // The child got the bridge's refusal at once and reported it in its answer; the
    // sampling request never reached the modern client (it has no back channel).
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = response.to_string();
    assert!(
        text.contains("sampling/createMessage") && text.contains("2026-07-28"),
        "{response}"
    );
    assert_eq!(response["id"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_modern_child_dying_after_discovery_is_restarted_and_counted() {
    // Answers server/discover like a modern-only server (it never sees initialize), then
    // exits: every start is a discovery followed by a death.
    let script = r#"
import json, sys
request = json.loads(sys.stdin.readline())
assert request["method"] == "server/discover", request
print(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {
    "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
    "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}}), flush=True)
sys.exit(3)
"#;
    let port = support::free_port();
    let mut command = Command::new(super::bridge_bin());
    command.args(["bridge", "--listen", &format!("127.0.0.1:{port}"), "--"]);
    command.arg(support::python()).args(["-c", script]);
    let mut bridge = Bridge {
        peer: support::PeerProcess::spawn("mcp-operator bridge", command, port),
    };
    bridge
        .wait_metric("mcp_bridge_child_restarts_total", |n| n >= 2)
        .await;
    let output = bridge.peer.output();
    assert!(
        output.contains("MCP server process initialized")
            && output.contains("MCP server process exited; restarting"),
        "{output}"
    );
}

/// A fake stdio child in Python: `script` runs with `send(obj)` and `recv()` defined.
fn fake_child(script: &str) -> Vec<String> {
    let prelude = "import json, sys\n\
        def recv():\n    line = sys.stdin.readline()\n    return json.loads(line) if line else sys.exit(0)\n\
        def send(obj):\n    print(json.dumps(obj), flush=True)\n";
    vec![
        support::python().to_string_lossy().into_owned(),
        "-c".to_owned(),
        format!("{prelude}{script}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_a_late_discover_answer_wins_when_initialize_is_refused() {
    // A slow modern-only child: it answers server/discover only after the bridge gave up
    // waiting and sent initialize, then refuses initialize (its era is locked modern).
    // Every later request must carry the envelope.
    let child = fake_child(
        r#"
discover = recv()
assert discover["method"] == "server/discover", discover
initialize = recv()
assert initialize["method"] == "initialize", initialize
send({"jsonrpc": "2.0", "id": discover["id"], "result": {"supportedVersions": ["2026-07-28"],
      "capabilities": {"tools": {}}, "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}})
send({"jsonrpc": "2.0", "id": initialize["id"], "error": {"code": -32022,
      "message": "Unsupported protocol version", "data": {"supported": ["2026-07-28"]}}})
while True:
    request = recv()
    if "id" not in request:
        continue
    meta = request.get("params", {}).get("_meta", {})
    if meta.get("io.modelcontextprotocol/protocolVersion") != "2026-07-28":
        send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32602, "message": "no envelope"}})
    else:
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"tools": [{"name": "late",
              "inputSchema": {"type": "object"}}], "resultType": "complete"}})
"#,
    );
    let mut bridge = Bridge::start(&[], &child, &[]);
    let mut legacy = McpClient::new(&bridge.mcp_url());
    legacy.initialize().await;
    let tools = legacy.request(json!(1), "tools/list", json!({})).await;
    assert_eq!(
        tools.response()["result"]["tools"][0]["name"],
        "late",
        "{tools:?}\n{}",
        bridge.peer.output()
    );
    assert_eq!(bridge.metric("mcp_bridge_child_restarts_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_a_child_that_exits_on_discover_is_initialized_next_time() {
    // A legacy server of the kind that exits on any request before initialize.
    let child = fake_child(
        r#"
first = recv()
if first["method"] != "initialize":
    sys.exit(1)
send({"jsonrpc": "2.0", "id": first["id"], "result": {"protocolVersion": "2025-06-18",
      "capabilities": {"tools": {}}, "serverInfo": {"name": "strict-legacy", "version": "1"}}})
while True:
    request = recv()
    if "id" in request:
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"tools": []}})
"#,
    );
    let mut bridge = Bridge::start(&[], &child, &[]);
    assert_eq!(bridge.metric("mcp_bridge_child_restarts_total").await, 1);
    let discover = modern_request(1, "server/discover", json!({}));
    let (status, response) = post(
        &bridge.mcp_url(),
        &discover,
        &as_refs(&routing("server/discover", None)),
    )
    .await;
    assert_eq!(status, 200, "{response}\n{}", bridge.peer.output());
    assert_eq!(
        response["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "strict-legacy"
    );
}

/// Opens a session-less modern request and returns its answer stream.
async fn open_stream(url: &str, body: &Value, headers: &[(&str, &str)]) -> AnswerStream {
    let mut request = http_client()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    AnswerStream::new(request.send().await.expect("POST"))
}

/// The next message of `stream`, failing after 20 s.
async fn next_message(stream: &mut AnswerStream, what: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 20 s"))
        .unwrap_or_else(|| panic!("{what}: the stream ended"))
}

const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_a_modern_listen_gets_a_legacy_childs_list_changes() {
    // A legacy child that announces tools.listChanged and, on the tool `change`, logs a
    // message and says its tool and prompt lists changed.
    let child = fake_child(
        r#"
while True:
    request = recv()
    if "id" not in request:
        continue
    if request["method"] == "server/discover":
        send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Method not found"}})
    elif request["method"] == "initialize":
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {"listChanged": True}, "prompts": {"listChanged": True}},
              "serverInfo": {"name": "changing", "version": "1"}}})
    elif request["method"] == "tools/call":
        send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}})
        send({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"})
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"content": []}})
    else:
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"tools": []}})
"#,
    );
    let bridge = Bridge::start(&[], &child, &[]);
    let url = bridge.mcp_url();
    let listen = modern_request(
        41,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "resourcesListChanged": true}}),
    );
    let headers = routing("subscriptions/listen", None);
    let mut stream = open_stream(&url, &listen, &as_refs(&headers)).await;
    assert!(stream.content_type.starts_with("text/event-stream"));
    let ack = next_message(&mut stream, "acknowledgement").await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_KEY], 41, "{ack}");
    // Only what the client asked for and the child announces.
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );

    let call = modern_request(5, "tools/call", json!({"name": "change", "arguments": {}}));
    let (status, response) = post(
        &url,
        &call,
        &as_refs(&routing("tools/call", Some("change"))),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let changed = next_message(&mut stream, "tools list change").await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(changed["params"]["_meta"][SUBSCRIPTION_KEY], 41);
    // Neither the log message nor the unrequested prompts change followed it.
    let more = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(more.is_err(), "unexpected: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_a_modern_listen_reaches_a_modern_child_under_the_clients_id() {
    let bridge = Bridge::start(&[], &EraServer::TsModernOnly.stdio_cmd(), &[]);
    let listen = modern_request(
        "my-listen",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let headers = routing("subscriptions/listen", None);
    let mut stream = open_stream(&bridge.mcp_url(), &listen, &as_refs(&headers)).await;
    let ack = next_message(&mut stream, "acknowledgement").await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"][SUBSCRIPTION_KEY], "my-listen",
        "{ack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_per_session_mode_gives_each_modern_request_a_process() {
    let mut bridge = Bridge::start(
        &["--session-mode", "PerSession"],
        &EraServer::TsModernOnly.stdio_cmd(),
        &[],
    );
    let taken = bridge.metric("mcp_bridge_warm_pool_taken_total").await;
    let call = EraServer::TsModernOnly.sample_call();
    for client in [EraClient::PythonPinned, EraClient::PythonLegacy] {
        let run = client.run(Target::Url(&bridge.mcp_url()), Some(&call));
        assert!(
            run.ok() && run.result_text().is_some_and(|t| t.contains("eu-west")),
            "{}: {run:?}\n{}",
            client.name(),
            bridge.peer.output()
        );
    }
    // Pinned (no probe): tools/list and tools/call are two session-less requests, a
    // process each; legacy: one session, one process.
    bridge
        .wait_metric("mcp_bridge_warm_pool_taken_total", |n| n >= taken + 3)
        .await;
    assert_eq!(
        bridge.metric("mcp_bridge_warm_pool_taken_total").await,
        taken + 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eras_a_modern_client_that_goes_away_cancels_its_call_at_the_child() {
    let bridge = Bridge::start(&[], &super::test_server_cmd(), &[]);
    let url = bridge.mcp_url();
    let slow = modern_request(
        1,
        "tools/call",
        json!({"name": "slow", "arguments": {"seconds": 30}}),
    );
    let headers = routing("tools/call", Some("slow"));
    let refs = as_refs(&headers);
    let call = open_stream(&url, &slow, &refs);
    // The client gives up after a moment: the request's session ends with it.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), call)
            .await
            .is_err(),
        "the slow call answered early"
    );
    let count = modern_request(
        2,
        "tools/call",
        json!({"name": "cancelled_calls", "arguments": {}}),
    );
    let headers = routing("tools/call", Some("cancelled_calls"));
    crate::support::eventually::eventually(
        "the child to see the cancellation",
        Duration::from_secs(20),
        async || {
            let (_, response) = post(&url, &count, &as_refs(&headers)).await;
            if response["result"]["structuredContent"]["result"] == 1 {
                Ok(())
            } else {
                Err(response)
            }
        },
    )
    .await;
}
