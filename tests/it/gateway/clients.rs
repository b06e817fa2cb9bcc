//! Third-party clients through the gateway give what they get directly: the official
//! Python SDK client (with and without a bearer token) and the Inspector CLI. Also the
//! legacy SSE upstream, served in-process. (The MCP conformance suite through the
//! gateway, every release and upstream, is `eras::conformance`.)

use std::process::Command;

use serde_json::{Value, json};

use super::harness::{GatewayProcess, Mcp, config, hash};
use crate::support;

fn py_client(url: &str, token: Option<&str>, tool: &str, args: Value) -> Value {
    let out = Command::new(support::python())
        .arg(support::repo_path("tests/it/gateway/py_client.py"))
        .arg(url)
        .arg(token.unwrap_or("-"))
        .arg(tool)
        .arg(args.to_string())
        .output()
        .expect("running py_client.py");
    assert!(
        out.status.success(),
        "py_client.py {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("py_client.py JSON")
}

fn inspector(url: &str, args: &[&str]) -> String {
    let out = Command::new(support::node())
        .arg(support::peer_path("node_modules/.bin/mcp-inspector"))
        .arg("--cli")
        .arg(url)
        .args(["--transport", "http"])
        .args(args)
        .output()
        .expect("running the Inspector CLI");
    assert!(
        out.status.success(),
        "inspector {args:?} against {url} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_and_inspector_see_what_they_see_directly() {
    let upstream = support::server_everything("streamableHttp");
    let direct = upstream.url("/mcp");
    let gw = GatewayProcess::start(&direct, &config(json!({"auth": "None"})), &[]).await;

    assert_eq!(
        support::python_client_tools(&gw.url(), "streamable-http", &[]),
        support::python_client_tools(&direct, "streamable-http", &[])
    );
    let args = json!({"a": 2, "b": 3});
    assert_eq!(
        py_client(&gw.url(), None, "get-sum", args.clone())["call"],
        py_client(&direct, None, "get-sum", args)["call"]
    );
    let list = |url: &str| -> Value {
        serde_json::from_str(&inspector(url, &["--method", "tools/list"])).unwrap()
    };
    assert_eq!(list(&gw.url()), list(&direct));
    let call = |url: &str| {
        inspector(
            url,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "get-sum",
                "--tool-arg",
                "a=2",
                "b=3",
            ],
        )
    };
    let through = call(&gw.url());
    assert_eq!(through, call(&direct));
    assert!(through.contains('5'), "{through}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_with_a_binding_token_and_the_python_sdk_server() {
    let upstream = support::python_server("streamable-http");
    let direct = upstream.url("/mcp");
    let token = "tok-py-client-SECRET";
    let cfg = config(json!({
        "toolPrefix": "py_",
        "policy": {"deny": ["delete_*"]},
        "bindings": [{"name": "py", "tokenSha256": [hash(token)]}]
    }));
    let gw = GatewayProcess::start(&direct, &cfg, &[]).await;
    let through = py_client(&gw.url(), Some(token), "py_add", json!({"a": 20, "b": 22}));
    let plain = py_client(&direct, None, "add", json!({"a": 20, "b": 22}));
    assert_eq!(through["call"], plain["call"]);
    let expected: Vec<Value> = plain["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n != &"delete_note")
        .map(|n| json!(format!("py_{}", n.as_str().unwrap())))
        .collect();
    assert_eq!(through["tools"], Value::Array(expected));
    // The official client sees the unprefixed list unchanged with auth None in front of
    // the Python server too.
    let open = GatewayProcess::start(&direct, &config(json!({"auth": "None"})), &[]).await;
    assert_eq!(
        support::python_client_tools(&open.url(), "streamable-http", &[]),
        support::python_client_tools(&direct, "streamable-http", &[])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_upstream_is_served_in_process_with_policy() {
    let upstream = support::server_everything("sse");
    let sse_url = upstream.url("/sse");
    let cfg = config(json!({"auth": "None", "policy": {"deny": ["get-env"]}}));
    let gw = GatewayProcess::start(&sse_url, &cfg, &["--upstream-transport", "Sse"]).await;
    let mut direct_names = support::python_client_tools(&sse_url, "sse", &[]);
    direct_names.retain(|n| n != "get-env");
    assert_eq!(
        support::python_client_tools(&gw.url(), "streamable-http", &[]),
        direct_names
    );
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    assert_eq!(
        c.call("echo", json!({"message": "legacy"})).await.text(),
        "Echo: legacy"
    );
    assert_eq!(c.call("get-env", json!({})).await.rule(), "Denied");
    gw.wait_audit("call over SSE", |r| r["tool"] == "echo")
        .await;
}
