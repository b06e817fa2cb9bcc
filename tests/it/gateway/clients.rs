//! Third-party clients through the gateway give what they get directly: the official
//! Python SDK client (with and without a bearer token), the Inspector CLI, and the MCP
//! conformance suite (per-scenario results compared with the direct run). Also the
//! legacy SSE upstream, served in-process.

use std::collections::BTreeMap;
use std::path::Path;
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

/// Per-scenario results of one conformance run: scenario → (passed, failed), and every
/// check's status by scenario/check id.
fn conformance(url: &str, out_dir: &Path) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let out = Command::new(support::peer_path("bin/node22"))
        .arg(support::peer_path(
            "node_modules/@modelcontextprotocol/conformance/dist/index.js",
        ))
        .args(["server", "--url", url, "-o"])
        .arg(out_dir)
        .output()
        .expect("running the conformance suite");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let summary: BTreeMap<String, String> = text
        .lines()
        .skip_while(|l| !l.contains("=== SUMMARY ==="))
        .filter_map(|l| {
            let l = l.trim_start_matches(['✓', '✗', ' ']);
            let (name, counts) = l.split_once(": ")?;
            (name != "Total" && counts.contains("passed"))
                .then(|| (name.to_owned(), counts.to_owned()))
        })
        .collect();
    assert!(!summary.is_empty(), "no conformance summary:\n{text}");
    let mut checks = BTreeMap::new();
    let timestamp = regex::Regex::new(r"-\d{4}-\d{2}-\d{2}T.*$").unwrap();
    for dir in std::fs::read_dir(out_dir).unwrap().flatten() {
        let scenario = dir.file_name().to_string_lossy().into_owned();
        // server-<scenario>-<timestamp>
        let scenario = timestamp.replace(&scenario, "").into_owned();
        let Ok(text) = std::fs::read_to_string(dir.path().join("checks.json")) else {
            continue;
        };
        let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        for c in list {
            checks.insert(
                format!("{scenario}/{}", c["id"].as_str().unwrap_or("?")),
                c["status"].as_str().unwrap_or("?").to_owned(),
            );
        }
    }
    (summary, checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_gives_the_same_results_through_the_gateway() {
    let upstream = support::server_everything("streamableHttp");
    let direct = upstream.url("/mcp");
    let gw = GatewayProcess::start(&direct, &config(json!({"auth": "None"})), &[]).await;
    let dirs = tempfile::tempdir().unwrap();
    let (direct_summary, direct_checks) = conformance(&direct, &dirs.path().join("direct"));
    let (gw_summary, gw_checks) = conformance(&gw.url(), &dirs.path().join("gateway"));
    let total = |s: &BTreeMap<String, String>| {
        s.values().fold((0u32, 0u32), |(p, f), counts| {
            let n = |word: &str| {
                counts
                    .split(", ")
                    .find_map(|part| part.strip_suffix(word)?.trim().parse::<u32>().ok())
                    .unwrap_or(0)
            };
            (p + n(" passed"), f + n(" failed"))
        })
    };
    println!(
        "conformance: direct {:?} (passed, failed), through the gateway {:?}",
        total(&direct_summary),
        total(&gw_summary)
    );
    let mut differences = Vec::new();
    for (scenario, counts) in &direct_summary {
        let other = gw_summary
            .get(scenario)
            .map(String::as_str)
            .unwrap_or("missing");
        if other != counts && scenario != "dns-rebinding-protection" {
            differences.push(format!("{scenario}: direct {counts}, gateway {other}"));
        }
    }
    // The gateway adds DNS-rebinding protection (Host/Origin checks) whatever the server
    // does: those checks must pass through it, and may fail directly.
    let rebinding = |name: &str| name.starts_with("server-dns-rebinding-protection/");
    for (check, status) in gw_checks.iter().filter(|(c, _)| rebinding(c)) {
        assert_eq!(status, "SUCCESS", "{check} through the gateway");
    }
    for (check, status) in &direct_checks {
        let other = gw_checks
            .get(check)
            .map(String::as_str)
            .unwrap_or("missing");
        if other != status && !rebinding(check) {
            differences.push(format!("check {check}: direct {status}, gateway {other}"));
        }
    }
    for d in &differences {
        println!("difference: {d}");
    }
    assert_eq!(direct_summary.len(), gw_summary.len());
    assert!(differences.is_empty(), "{differences:#?}");
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
