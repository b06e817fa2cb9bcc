//! The official Python SDK client and the MCP Inspector CLI list and call tools on
//! third-party stdio servers (server-everything, server-memory, mcp-server-time) through
//! the bridge, and through bridge + gateway (what a Stdio McpServer pod runs), and see what
//! they see talking to the server directly.

use std::process::Command;

use serde_json::Value;

use super::{Bridge, everything_cmd};
use crate::support;

struct Peer {
    name: &'static str,
    cmd: Vec<String>,
    tool: &'static str,
    py_args: &'static str,
    inspector_args: &'static [&'static str],
}

fn peers(memory_file: &str) -> Vec<(Peer, Vec<(String, String)>)> {
    let node = support::node().to_string_lossy().into_owned();
    let memory_js =
        support::peer_path("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    vec![
        (
            Peer {
                name: "server-everything",
                cmd: everything_cmd(),
                tool: "get-sum",
                py_args: r#"{"a": 2, "b": 3}"#,
                inspector_args: &["a=2", "b=3"],
            },
            vec![],
        ),
        (
            Peer {
                name: "server-memory",
                cmd: vec![node, memory_js.to_string_lossy().into_owned()],
                tool: "read_graph",
                py_args: "{}",
                inspector_args: &[],
            },
            vec![("MEMORY_FILE_PATH".into(), memory_file.into())],
        ),
        (
            Peer {
                name: "mcp-server-time",
                cmd: vec![
                    support::peer_path("venv/bin/mcp-server-time")
                        .to_string_lossy()
                        .into_owned(),
                ],
                tool: "convert_time",
                py_args: r#"{"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}"#,
                inspector_args: &[
                    "source_timezone=UTC",
                    "time=12:00",
                    "target_timezone=Asia/Tokyo",
                ],
            },
            vec![],
        ),
    ]
}

fn run_json(mut cmd: Command, what: &str) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn python_call(target: &str, transport: &str, peer: &Peer, envs: &[(String, String)]) -> Value {
    let mut cmd = Command::new(support::python());
    cmd.arg(support::repo_path("tests/peers/py_call_tool.py"))
        .args([target, transport, peer.tool, peer.py_args]);
    if transport == "stdio" {
        cmd.args(&peer.cmd);
    }
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    run_json(
        cmd,
        &format!("python client ({transport}) on {}", peer.name),
    )
}

fn inspector(target: &[String], method_args: &[&str], envs: &[(String, String)]) -> Value {
    let mut cmd = Command::new(support::peer_path("node_modules/.bin/mcp-inspector"));
    cmd.arg("--cli").args(target).args(method_args);
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    run_json(cmd, &format!("mcp-inspector {target:?} {method_args:?}"))
}

fn inspector_call_args(peer: &Peer) -> Vec<&str> {
    let mut args = vec!["--method", "tools/call", "--tool-name", peer.tool];
    if !peer.inspector_args.is_empty() {
        args.push("--tool-arg");
        args.extend(peer.inspector_args);
    }
    args
}

/// server-everything offers these only to clients declaring roots, sampling or
/// elicitation. The bridge declares all three to its process (it routes such requests to
/// the session that caused them), so a client declaring fewer sees them through the bridge.
const CAPABILITY_GATED_TOOLS: &[&str] = &[
    "get-roots-list",
    "trigger-elicitation-request",
    "trigger-url-elicitation",
    "trigger-sampling-request",
];

/// Every tool seen directly is seen, identical and in the same order, through the bridge;
/// the bridge adds nothing but capability-gated tools.
fn same_tools_but_capability_gated(bridged: &Value, direct: &Value, peer: &str) {
    let bridged = bridged.as_array().expect("tools");
    let direct = direct.as_array().expect("tools");
    let without_gated = |tools: &[Value]| -> Vec<Value> {
        tools
            .iter()
            .filter(|t| !CAPABILITY_GATED_TOOLS.contains(&t["name"].as_str().unwrap_or("")))
            .cloned()
            .collect()
    };
    assert!(!direct.is_empty(), "{peer}: no tools");
    assert_eq!(
        without_gated(bridged),
        without_gated(direct),
        "{peer}: inspector tool lists differ"
    );
    for tool in direct {
        assert!(
            bridged.contains(tool),
            "{peer}: {} missing through the bridge",
            tool["name"]
        );
    }
}

#[test]
fn python_client_and_inspector_see_the_same_tools_through_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let memory_file = dir
        .path()
        .join("memory.jsonl")
        .to_string_lossy()
        .into_owned();
    for (peer, envs) in peers(&memory_file) {
        let env_refs: Vec<(&str, &str)> =
            envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let bridge = Bridge::start(&[], &peer.cmd, &env_refs);
        let url = bridge.mcp_url();

        let direct = python_call("-", "stdio", &peer, &envs);
        let bridged = python_call(&url, "streamable-http", &peer, &envs);
        assert!(
            !direct["tools"].as_array().unwrap().is_empty(),
            "{}: no tools",
            peer.name
        );
        assert_eq!(
            bridged["tools"], direct["tools"],
            "{}: python client tool lists differ",
            peer.name
        );
        assert_eq!(
            bridged["result"], direct["result"],
            "{}: python client call results differ",
            peer.name
        );

        let http = vec![url.clone(), "--transport".into(), "http".into()];
        let list = ["--method", "tools/list"];
        let direct = inspector(&peer.cmd, &list, &envs);
        let bridged = inspector(&http, &list, &envs);
        same_tools_but_capability_gated(&bridged["tools"], &direct["tools"], peer.name);
        let call = inspector_call_args(&peer);
        let direct = inspector(&peer.cmd, &call, &envs);
        let bridged = inspector(&http, &call, &envs);
        assert_eq!(
            bridged, direct,
            "{}: inspector call results differ",
            peer.name
        );
        assert!(bridged.get("content").is_some(), "{}: {bridged}", peer.name);

        // The same through the gateway in front of the bridge.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = crate::gateway::harness::config(serde_json::json!({"auth": "None"}));
        let gateway = rt.block_on(crate::gateway::harness::GatewayProcess::start(
            &url,
            &config,
            &[],
        ));
        let gw_url = gateway.url();
        let direct = python_call("-", "stdio", &peer, &envs);
        let through = python_call(&gw_url, "streamable-http", &peer, &envs);
        assert_eq!(
            through["tools"], direct["tools"],
            "{}: python client tool lists differ through bridge+gateway",
            peer.name
        );
        assert_eq!(
            through["result"], direct["result"],
            "{}: python client call results differ through bridge+gateway",
            peer.name
        );
        let http = vec![gw_url, "--transport".into(), "http".into()];
        let direct = inspector(&peer.cmd, &list, &envs);
        let through = inspector(&http, &list, &envs);
        same_tools_but_capability_gated(&through["tools"], &direct["tools"], peer.name);
        let direct = inspector(&peer.cmd, &call, &envs);
        let through = inspector(&http, &call, &envs);
        assert_eq!(
            through, direct,
            "{}: inspector call results differ through bridge+gateway",
            peer.name
        );
        drop(gateway);
    }
}
