//! The prober's era negotiation (MCP 2026-07-28 `server/discover` first, `initialize` as
//! the fallback) against the SDKs' own servers — TypeScript SDK v2 dual and `legacy:
//! 'reject'`, Python SDK 2.3 dual and modern-only, server-everything (legacy only) — and
//! against local stubs that answer each way that must not be misread: -32022 with
//! versions we do not speak, a deterministic -32602, HTTP 405 and 501.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use mcp_operator::prober::{
    EraPreference, HttpTarget, ProbeErrorCode, ProbeOptions, ProbeReport, ProbeTarget, ProtocolEra,
    StdioTarget, ToolInventory, probe,
};
use serde_json::{Value, json};

use crate::support::{self, PeerProcess};

fn opts() -> ProbeOptions {
    ProbeOptions {
        timeout: Duration::from_secs(20),
        retries: 2,
        retry_delay: Duration::from_millis(50),
    }
}

/// The TypeScript SDK v2 era peer (`tests/peers/ts_era_server.cjs`) over Streamable HTTP.
pub(crate) fn ts_era_server(modern_only: bool) -> PeerProcess {
    let port = support::free_port();
    let mut cmd = Command::new(support::peer_path("bin/node22"));
    cmd.arg(support::repo_path("tests/peers/ts_era_server.cjs"))
        .arg("http")
        .env("PORT", port.to_string());
    if modern_only {
        cmd.arg("--modern-only");
    }
    PeerProcess::spawn(
        &format!("ts era server (modern-only {modern_only})"),
        cmd,
        port,
    )
}

/// The Python SDK 2.3 era peer (`tests/peers/py_era_server.py`): `dual` or `modern-only`.
fn py_era_server(mode: &str) -> PeerProcess {
    let port = support::free_port();
    let mut cmd = Command::new(support::python());
    cmd.arg(support::repo_path("tests/peers/py_era_server.py"))
        .arg(mode)
        .arg("streamable-http")
        .arg(port.to_string());
    PeerProcess::spawn(&format!("python era server {mode}"), cmd, port)
}

fn target(url: &str, era: EraPreference) -> ProbeTarget {
    let mut t = HttpTarget::new(url);
    t.era = era;
    ProbeTarget::Http(t)
}

async fn probe_ok(url: &str, era: EraPreference) -> ToolInventory {
    let report = probe(&target(url, era), &opts()).await;
    match report.into_result() {
        Ok(inv) => inv,
        Err(e) => panic!("probing {url} ({era:?}) failed: {e}"),
    }
}

fn names(inv: &ToolInventory) -> Vec<&str> {
    inv.tools.iter().map(|t| t.name.as_str()).collect()
}

fn assert_modern(inv: &ToolInventory) {
    assert_eq!(inv.server_info.protocol_version, "2026-07-28", "{inv:?}");
    assert_eq!(inv.server_info.era, Some(ProtocolEra::Modern), "{inv:?}");
    assert!(
        inv.server_info
            .supported_versions
            .iter()
            .any(|v| v == "2026-07-28"),
        "{inv:?}"
    );
    assert_eq!(names(inv), ["add", "echo", "region_echo"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_modern_only_server_is_probed_in_the_modern_era() {
    let peer = ts_era_server(true);
    let inv = probe_ok(&peer.url("/mcp"), EraPreference::Auto).await;
    assert_modern(&inv);
    assert_eq!(inv.server_info.name, "ts-modern-only");
    // Pinned to the modern era, the same.
    assert_eq!(
        probe_ok(&peer.url("/mcp"), EraPreference::Modern).await,
        inv
    );
    // Pinned to the legacy era, the server's -32022 is reported with both sides' versions.
    let report = probe(&target(&peer.url("/mcp"), EraPreference::Legacy), &opts()).await;
    let error = report
        .error()
        .expect("legacy against a modern-only server fails");
    assert_eq!(error.code(), ProbeErrorCode::ProtocolError, "{error}");
    assert!(error.message().contains("2026-07-28"), "{error}");
    assert!(error.message().contains("2025-11-25"), "{error}");
    assert_eq!(report.attempts, 1, "a -32022 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_modern_only_server_is_probed_in_the_modern_era() {
    let peer = py_era_server("modern-only");
    let inv = probe_ok(&peer.url("/mcp"), EraPreference::Auto).await;
    assert_modern(&inv);
    assert_eq!(inv.server_info.name, "py-modern-only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_servers_are_modern_in_auto_and_legacy_when_asked() {
    let ts = ts_era_server(false);
    let py = py_era_server("dual");
    for peer in [&ts, &py] {
        let url = peer.url("/mcp");
        let modern = probe_ok(&url, EraPreference::Auto).await;
        assert_modern(&modern);
        let legacy = probe_ok(&url, EraPreference::Legacy).await;
        assert_eq!(legacy.server_info.era, Some(ProtocolEra::Legacy), "{url}");
        assert_eq!(legacy.server_info.protocol_version, "2025-11-25", "{url}");
        assert!(legacy.server_info.supported_versions.is_empty(), "{url}");
        // The same tools whichever era is spoken.
        assert_eq!(legacy.tools_digest, modern.tools_digest, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_server_everything_is_legacy_and_refuses_a_modern_probe() {
    let peer = support::server_everything("streamableHttp");
    let inv = probe_ok(&peer.url("/mcp"), EraPreference::Auto).await;
    assert_eq!(inv.server_info.era, Some(ProtocolEra::Legacy));
    assert_eq!(inv.server_info.protocol_version, "2025-11-25");
    assert_eq!(inv.tool_count, 13);
    let report = probe(&target(&peer.url("/mcp"), EraPreference::Modern), &opts()).await;
    let error = report
        .error()
        .expect("--era modern against a legacy-only server fails");
    assert_eq!(error.code(), ProbeErrorCode::ProtocolError, "{error}");
    assert!(error.message().contains("server/discover"), "{error}");
    assert!(error.message().contains("2026-07-28"), "{error}");
    assert!(error.message().contains("--era"), "{error}");
    assert_eq!(report.attempts, 1);
}

/// Serves `answer(request)` as JSON for every POST and counts the requests.
async fn counting_stub(
    answer: impl Fn(&Value) -> (StatusCode, Value) + Clone + Send + Sync + 'static,
) -> (support::Stub, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let stub = support::serve(Router::new().fallback(move |body: String| {
        let answer = answer.clone();
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            let req: Value = serde_json::from_str(&body).unwrap_or_default();
            if req.get("id").is_none() {
                return StatusCode::ACCEPTED.into_response();
            }
            let (status, answer) = answer(&req);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
    }))
    .await;
    (stub, count)
}

fn error_answer(req: &Value, code: i64, data: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": code, "message": "no", "data": data}})
}

#[tokio::test]
async fn a_disjoint_32022_names_both_sides_versions() {
    let (stub, count) = counting_stub(|req| {
        let data = json!({"supported": ["2099-01-01", "2099-06-30"], "requested": "2026-07-28"});
        (StatusCode::BAD_REQUEST, error_answer(req, -32022, data))
    })
    .await;
    let report = probe(&target(&stub.url("/mcp"), EraPreference::Auto), &opts()).await;
    let error = report.error().expect("no common version");
    println!("{error}");
    assert_eq!(error.code(), ProbeErrorCode::ProtocolError, "{error}");
    for version in ["2099-01-01", "2099-06-30", "2026-07-28"] {
        assert!(error.message().contains(version), "{version}: {error}");
    }
    assert_eq!(report.attempts, 1);
    // One discover; no initialize (the server named only modern versions), no retry.
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_32602_is_not_retried() {
    let (stub, count) =
        counting_stub(|req| (StatusCode::OK, error_answer(req, -32602, json!(null)))).await;
    let report: ProbeReport = probe(&target(&stub.url("/mcp"), EraPreference::Auto), &opts()).await;
    let error = report.error().expect("-32602 fails the probe");
    println!("{error}");
    assert_eq!(error.code(), ProbeErrorCode::ProtocolError, "{error}");
    assert!(error.message().contains("-32602"), "{error}");
    assert_eq!(report.attempts, 1, "{error}");
    // server/discover, then initialize (the fallback): two requests, no second attempt.
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http_405_and_501_to_the_post_are_not_mcp_server() {
    for status in [StatusCode::METHOD_NOT_ALLOWED, StatusCode::NOT_IMPLEMENTED] {
        let stub = support::serve(Router::new().fallback(move || async move {
            (status, [(header::CONTENT_TYPE, "text/html")], "<h1>no</h1>")
        }))
        .await;
        let report = probe(&target(&stub.url("/mcp"), EraPreference::Auto), &opts()).await;
        let error = report.error().expect("a web server is not MCP");
        println!("{status} -> {error}");
        assert_eq!(
            error.code(),
            ProbeErrorCode::NotMcpServer,
            "{status}: {error}"
        );
        assert!(error.message().contains(status.as_str()), "{error}");
        assert_eq!(report.attempts, 1, "{status}: not retried");
    }
}

#[test]
fn probe_call_runs_a_tool_after_the_probe() {
    let peer = ts_era_server(true);
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args([
            "probe",
            "-o",
            "json",
            "--call",
            r#"add={"a": 2, "b": 3}"#,
            "--call",
            "nope",
        ])
        .arg(peer.url("/mcp"))
        .output()
        .expect("running the probe");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(
        report["inventory"]["serverInfo"]["era"], "Modern",
        "{report}"
    );
    assert_eq!(
        report["calls"][0],
        json!({"name": "add", "isError": false, "text": "5"})
    );
    // An unknown tool (-32602 from the SDK): the call fails and the exit status says so.
    assert_eq!(report["calls"][1]["name"], "nope", "{report}");
    assert_eq!(
        report["calls"][1]["error"]["code"], "ProtocolError",
        "{report}"
    );
    assert_eq!(out.status.code(), Some(2));
}

fn stdio(command: std::path::PathBuf, args: &[&str], era: EraPreference) -> ProbeTarget {
    let mut t = StdioTarget::new(command.to_string_lossy(), args.iter().copied());
    t.era = era;
    ProbeTarget::Stdio(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_servers_negotiate_on_one_process() {
    let ts = support::repo_path("tests/peers/ts_era_server.cjs");
    let ts = ts.to_str().unwrap();
    let py = support::repo_path("tests/peers/py_era_server.py");
    let py = py.to_str().unwrap();
    let node = || support::peer_path("bin/node22");
    // Modern-only: discover; the handshake is refused with the versions named.
    let modern_only = [ts, "stdio", "--modern-only"];
    let inv = probe(&stdio(node(), &modern_only, EraPreference::Auto), &opts())
        .await
        .into_result()
        .expect("modern-only over stdio");
    assert_modern(&inv);
    let refused = probe(&stdio(node(), &modern_only, EraPreference::Legacy), &opts()).await;
    let error = refused.error().expect("legacy against modern-only");
    assert_eq!(error.code(), ProbeErrorCode::ProtocolError, "{error}");
    assert!(error.message().contains("2026-07-28"), "{error}");
    // Dual: the era asked for.
    let dual = [py, "dual", "stdio"];
    let modern = probe(
        &stdio(support::python(), &dual, EraPreference::Auto),
        &opts(),
    )
    .await
    .into_result()
    .expect("python dual over stdio");
    assert_eq!(modern.server_info.era, Some(ProtocolEra::Modern));
    let legacy = probe(
        &stdio(support::python(), &dual, EraPreference::Legacy),
        &opts(),
    )
    .await
    .into_result()
    .expect("python dual over stdio, legacy");
    assert_eq!(legacy.server_info.era, Some(ProtocolEra::Legacy));
    assert_eq!(legacy.server_info.protocol_version, "2025-11-25");
    // Legacy-only: auto falls back on the same process; modern only is refused.
    let (cmd, args) = support::server_everything_stdio();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let inv = probe(
        &stdio(cmd.clone().into(), &args, EraPreference::Auto),
        &opts(),
    )
    .await
    .into_result()
    .expect("server-everything over stdio");
    assert_eq!(inv.server_info.era, Some(ProtocolEra::Legacy));
    assert_eq!(inv.tool_count, 13);
    let refused = probe(&stdio(cmd.into(), &args, EraPreference::Modern), &opts()).await;
    let error = refused.error().expect("modern against legacy-only");
    assert_eq!(error.code(), ProbeErrorCode::ProtocolError, "{error}");
    assert!(error.message().contains("--era"), "{error}");
}

#[tokio::test]
async fn a_handshake_refused_with_a_modern_version_is_discovered_again() {
    // A modern-only server whose first discover failed (a 503 while it started): the
    // fallback `initialize` is refused with -32022 naming 2026-07-28, which is itself
    // proof of a modern server, so the probe discovers once more (as the Python SDK does).
    let discovers = Arc::new(AtomicUsize::new(0));
    let seen = discovers.clone();
    let (stub, count) = counting_stub(move |req| {
        let id = &req["id"];
        match req["method"].as_str() {
            Some("server/discover") if seen.fetch_add(1, Ordering::SeqCst) == 0 => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({}))
            }
            Some("server/discover") => (
                StatusCode::OK,
                json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete",
                    "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                    "ttlMs": 0, "cacheScope": "public",
                    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "slow", "version": "1"}}}}),
            ),
            Some("tools/list") => (
                StatusCode::OK,
                json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete",
                    "tools": [{"name": "t", "inputSchema": {"type": "object"}}]}}),
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                error_answer(req, -32022, json!({"supported": ["2026-07-28"], "requested": "2025-11-25"})),
            ),
        }
    })
    .await;
    let report = probe(&target(&stub.url("/mcp"), EraPreference::Auto), &opts()).await;
    let inv = report.inventory().unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(inv.server_info.era, Some(ProtocolEra::Modern));
    assert_eq!(inv.tool_count, 1);
    assert_eq!(report.attempts, 1);
    // discover (503), initialize (-32022), discover, tools/list.
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn legacy_sse_has_no_modern_era() {
    // Refused before any connection: the port is closed, and the answer is not
    // ConnectionFailed.
    let url = format!("http://127.0.0.1:{}/sse", support::free_port());
    let report = probe(&target(&url, EraPreference::Modern), &opts()).await;
    let error = report.error().expect("SSE cannot be modern");
    assert_eq!(error.code(), ProbeErrorCode::InvalidUrl, "{error}");
    assert!(error.message().contains("SSE"), "{error}");
    // auto speaks the legacy era there (and so reaches the closed port).
    let report = probe(&target(&url, EraPreference::Auto), &opts()).await;
    assert_eq!(report.code(), Some(ProbeErrorCode::ConnectionFailed));
}
