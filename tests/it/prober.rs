//! The prober against real peers (server-everything, the Python SDK server and client) and
//! against local servers that fail in each way an error code names.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use mcp_operator::prober::{
    Header, HttpTarget, ProbeErrorCode, ProbeOptions, ProbeReport, ProbeTarget, StdioTarget,
    TlsOptions, ToolInventory, TransportKind, probe, probe_all,
};

use crate::support::eventually::eventually;
use crate::support::{self, PeerProcess};

mod conformance_client;
pub(crate) mod eras;

const SECRET: &str = "s3cr3t-do-not-print";

fn opts(timeout: Duration) -> ProbeOptions {
    ProbeOptions {
        timeout,
        retries: 1,
        retry_delay: Duration::from_millis(50),
    }
}

async fn probe_ok(target: &ProbeTarget) -> ToolInventory {
    let report = probe(target, &opts(Duration::from_secs(20))).await;
    match report.into_result() {
        Ok(inv) => inv,
        Err(e) => panic!("probing {} failed: {e}", target.describe()),
    }
}

fn names(inv: &ToolInventory) -> Vec<String> {
    inv.tools.iter().map(|t| t.name.clone()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Probes `peer` at `path`, checks the tool names equal the Python client's and the
/// negotiated version is `version`, and returns the inventory.
async fn probe_matches_python_client(
    peer: &PeerProcess,
    path: &str,
    py_transport: &str,
    version: &str,
) -> ToolInventory {
    let url = peer.url(path);
    let inv = probe_ok(&ProbeTarget::http(&url)).await;
    let python = tokio::task::spawn_blocking({
        let url = url.clone();
        let t = py_transport.to_owned();
        move || support::python_client_tools(&url, &t, &[])
    })
    .await
    .expect("python client task");
    assert_eq!(
        inv.tool_count as usize,
        python.len(),
        "{}: tool count vs the Python client",
        peer.name()
    );
    assert_eq!(
        names(&inv),
        sorted(python),
        "{}: tool names vs the Python client",
        peer.name()
    );
    assert_eq!(inv.server_info.protocol_version, version, "{}", peer.name());
    inv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_streamable_http() {
    let mut peer = support::server_everything("streamableHttp");
    let inv = probe_matches_python_client(&peer, "/mcp", "streamable-http", "2025-11-25").await;
    assert_eq!(inv.tool_count, 13);
    assert_eq!(inv.server_info.name, "mcp-servers/everything");
    assert!(inv.capabilities.tools && inv.capabilities.resources && inv.capabilities.prompts);
    assert!(inv.resource_count > 0 && inv.prompt_count > 0);
    // Stable across runs against the same server.
    let again = probe_ok(&ProbeTarget::http(peer.url("/mcp"))).await;
    assert_eq!(again, inv);
    // The session was closed with DELETE (server-everything logs it).
    eventually(
        "server-everything to log the DELETE (\"session termination request\")",
        Duration::from_secs(10),
        async || {
            let log = peer.output();
            if log.contains("session termination request") {
                Ok(())
            } else {
                Err(format!("server log:\n{log}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_sse() {
    let peer = support::server_everything("sse");
    let inv = probe_matches_python_client(&peer, "/sse", "sse", "2025-11-25").await;
    assert_eq!(inv.tool_count, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_stdio() {
    let (cmd, args) = support::server_everything_stdio();
    let inv = probe_ok(&ProbeTarget::Stdio(StdioTarget::new(
        cmd.clone(),
        args.clone(),
    )))
    .await;
    let mut stdio_cmd = vec![cmd];
    stdio_cmd.extend(args);
    let python =
        tokio::task::spawn_blocking(move || support::python_client_tools("-", "stdio", &stdio_cmd))
            .await
            .expect("python client task");
    assert_eq!(names(&inv), sorted(python));
    assert_eq!(inv.tool_count, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_all_transports_agree() {
    let streamable = support::python_server("streamable-http");
    let stateless = support::python_server("stateless-json");
    let sse = support::python_server("sse");
    // The Python SDK 2.3 serves both eras over Streamable HTTP (the probe speaks the modern
    // one); legacy SSE has only the handshake.
    let a = probe_matches_python_client(&streamable, "/mcp", "streamable-http", "2026-07-28").await;
    let b = probe_matches_python_client(&stateless, "/mcp", "streamable-http", "2026-07-28").await;
    let c = probe_matches_python_client(&sse, "/sse", "sse", "2025-11-25").await;
    assert_eq!(a.tool_count, 4);
    assert_eq!((a.resource_count, a.prompt_count), (1, 1));
    // Same tools over three transports: same hashes, same digest.
    assert_eq!(a.tools, b.tools);
    assert_eq!(a.tools, c.tools);
    assert_eq!(a.tools_digest, c.tools_digest);
    assert_eq!(
        a.server_info.instructions,
        "Test server for mcp-operator's prober."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ca_file_or_insecure_switch() {
    let peer = support::server_everything("streamableHttp");
    let front = support::tls_front(peer.port).await;
    let url = front.https_url("/mcp");
    let with_ca = |ca: Option<Vec<u8>>, insecure| {
        let mut t = HttpTarget::new(url.clone());
        t.tls = TlsOptions {
            ca_pem: ca,
            insecure_skip_verify: insecure,
        };
        ProbeTarget::Http(t)
    };
    let ca = std::fs::read(support::test_ca_path()).expect("test CA");
    assert_eq!(probe_ok(&with_ca(Some(ca), false)).await.tool_count, 13);
    assert_eq!(probe_ok(&with_ca(None, true)).await.tool_count, 13);
}

// ---- one real situation per error code --------------------------------------------------

/// Probes `url` with secret headers; checks the code, the attempts (transient codes are
/// retried once), that the message mentions `expect_in_message`, and that no secret leaks.
async fn expect_failure(
    url: &str,
    timeout: Duration,
    code: ProbeErrorCode,
    expect_in_message: &str,
) -> ProbeReport {
    let mut t = HttpTarget::new(url);
    t.headers = vec![
        Header::new("Authorization", format!("Bearer {SECRET}")),
        Header::new("X-Api-Key", SECRET),
    ];
    let target = ProbeTarget::Http(t);
    let started = Instant::now();
    let report = probe(&target, &opts(timeout)).await;
    let elapsed = started.elapsed();
    let error = report
        .error()
        .unwrap_or_else(|| panic!("{url}: expected {code}, got success"));
    println!(
        "{url} -> {error} (attempts {}, {} ms)",
        report.attempts, report.latency_ms
    );
    assert_eq!(error.code(), code, "{url}: {error}");
    assert!(
        error.message().contains(expect_in_message),
        "{url}: message lacks {expect_in_message:?}: {error}"
    );
    let everything = format!(
        "{error} {error:?} {report:?} {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    assert!(
        !everything.contains(SECRET),
        "a credential leaked: {everything}"
    );
    let expected_attempts = if code.is_transient() { 2 } else { 1 };
    assert_eq!(report.attempts, expected_attempts, "{url}: {error}");
    // Both attempts fit in their time limits (plus a little slack).
    assert!(
        elapsed < timeout * expected_attempts + Duration::from_secs(2),
        "{url}: took {elapsed:?}"
    );
    report
}

const SHORT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn closed_port_is_connection_failed() {
    let url = format!("http://127.0.0.1:{}/mcp", support::free_port());
    expect_failure(&url, SHORT, ProbeErrorCode::ConnectionFailed, "refused").await;
}

#[tokio::test]
async fn black_hole_is_timeout_within_the_limit() {
    let hole = support::black_hole().await;
    let started = Instant::now();
    let r = expect_failure(
        &hole.url("/mcp"),
        Duration::from_secs(1),
        ProbeErrorCode::Timeout,
        "within 1s",
    )
    .await;
    assert!(
        r.latency_ms >= 1000 && r.latency_ms < 1500,
        "latency {}",
        r.latency_ms
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn html_page_is_not_mcp_server() {
    let stub = support::serve(
        Router::new().fallback(|| async { Html("<!doctype html><title>Welcome</title>") }),
    )
    .await;
    expect_failure(
        &stub.url("/mcp"),
        SHORT,
        ProbeErrorCode::NotMcpServer,
        "text/html",
    )
    .await;
}

#[tokio::test]
async fn html_page_over_sse_is_not_mcp_server() {
    let stub = support::serve(
        Router::new().fallback(|| async { Html("<!doctype html><title>Welcome</title>") }),
    )
    .await;
    expect_failure(
        &stub.url("/sse"),
        SHORT,
        ProbeErrorCode::NotMcpServer,
        "text/html",
    )
    .await;
}

fn unauthorized(base: String) -> Router {
    Router::new().fallback(move || {
        let challenge = format!(
            r#"Bearer realm="mcp", resource_metadata="{base}/.well-known/oauth-protected-resource""#
        );
        async move {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                "unauthorized",
            )
                .into_response()
        }
    })
}

#[tokio::test]
async fn unauthorized_is_auth_required_with_the_metadata_hint() {
    let stub = support::serve(unauthorized("https://auth.example".into())).await;
    expect_failure(
        &stub.url("/mcp"),
        SHORT,
        ProbeErrorCode::AuthRequired,
        "resource_metadata=https://auth.example/.well-known/oauth-protected-resource",
    )
    .await;
}

#[tokio::test]
async fn unauthorized_over_sse_is_auth_required() {
    let stub = support::serve(unauthorized("https://auth.example".into())).await;
    expect_failure(
        &stub.url("/sse"),
        SHORT,
        ProbeErrorCode::AuthRequired,
        "oauth-protected-resource",
    )
    .await;
}

#[tokio::test]
async fn unknown_ca_is_tls_error() {
    let front = support::tls_front(support::free_port()).await;
    expect_failure(
        &front.https_url("/mcp"),
        SHORT,
        ProbeErrorCode::TlsError,
        "certificate",
    )
    .await;
}

#[tokio::test]
async fn malformed_jsonrpc_is_protocol_error() {
    let stub = support::serve(Router::new().fallback(|| async {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"jsonrpc":"2.0","id":0,"result":{"#,
        )
    }))
    .await;
    expect_failure(
        &stub.url("/mcp"),
        SHORT,
        ProbeErrorCode::ProtocolError,
        "JSON",
    )
    .await;
}

#[tokio::test]
async fn http_500_is_server_error() {
    let stub = support::serve(
        Router::new()
            .fallback(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded") }),
    )
    .await;
    expect_failure(&stub.url("/mcp"), SHORT, ProbeErrorCode::ServerError, "500").await;
}

#[tokio::test]
async fn jsonrpc_error_on_initialize_is_server_error() {
    let stub = support::serve(Router::new().fallback(|body: String| async move {
        let id = serde_json::from_str::<serde_json::Value>(&body).map(|v| v["id"].clone()).unwrap_or_default();
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": "database is down"}});
        ([(header::CONTENT_TYPE, "application/json")], answer.to_string())
    }))
    .await;
    // The code is shown; the server's own text is not (it goes to the log).
    let report = expect_failure(
        &stub.url("/mcp"),
        SHORT,
        ProbeErrorCode::ServerError,
        "JSON-RPC error -32603",
    )
    .await;
    assert!(!report.error().unwrap().message().contains("database"));
}

#[tokio::test]
async fn ftp_url_is_invalid_url() {
    expect_failure(
        "ftp://example.com/mcp",
        SHORT,
        ProbeErrorCode::InvalidUrl,
        "ftp",
    )
    .await;
}

#[tokio::test]
async fn unknown_protocol_version_is_protocol_error() {
    let stub = support::serve(Router::new().fallback(|body: String| async move {
        let req = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default();
        if req.get("id").is_none() {
            return StatusCode::ACCEPTED.into_response();
        }
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": {
            "protocolVersion": "1999-01-01", "capabilities": {}, "serverInfo": {"name": "old", "version": "0"}}});
        ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
    }))
    .await;
    expect_failure(
        &stub.url("/mcp"),
        SHORT,
        ProbeErrorCode::ProtocolError,
        "1999-01-01",
    )
    .await;
}

#[tokio::test]
async fn forced_transport_overrides_the_path() {
    // `/sse` would mean SSE; forcing Streamable HTTP against an HTML page still classifies.
    let stub = support::serve(Router::new().fallback(|| async { Html("<p>hi</p>") })).await;
    let mut t = HttpTarget::new(stub.url("/sse"));
    t.transport = TransportKind::StreamableHttp;
    let r = probe(&ProbeTarget::Http(t), &opts(SHORT)).await;
    let e = r.error().expect("failure");
    assert_eq!(e.code(), ProbeErrorCode::NotMcpServer);
    assert!(e.message().contains("POST"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_targets_with_bounded_concurrency() {
    let html = support::serve(Router::new().fallback(|| async { Html("<p>hi</p>") })).await;
    let targets = vec![
        ProbeTarget::http(html.url("/mcp")),
        ProbeTarget::http("ftp://x/y"),
        ProbeTarget::http(html.url("/other")),
    ];
    let reports = probe_all(targets, opts(SHORT), 2).await;
    let codes: Vec<_> = reports.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            Some(ProbeErrorCode::NotMcpServer),
            Some(ProbeErrorCode::InvalidUrl),
            Some(ProbeErrorCode::NotMcpServer)
        ]
    );
}

// ---- the command line ------------------------------------------------------------------

fn cli() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
}

#[test]
fn cli_failure_exits_2_with_the_code_on_stderr() {
    let url = format!("http://127.0.0.1:{}/mcp", support::free_port());
    let out = cli()
        .args([
            "probe",
            &url,
            "--retries",
            "0",
            "-H",
            &format!("Authorization=Bearer {SECRET}"),
        ])
        .output()
        .expect("run mcp-operator");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ConnectionFailed: "), "{stderr}");
    assert!(!stderr.contains(SECRET));
}

#[test]
fn cli_stdio_json_and_pins() {
    let (cmd, args) = support::server_everything_stdio();
    let out = cli()
        .args(["probe", "-o", "json", "--"])
        .arg(&cmd)
        .args(&args)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: ProbeReport = serde_json::from_slice(&out.stdout).expect("JSON report");
    let inv = report.inventory().expect("inventory");
    assert_eq!(inv.tool_count, 13);

    let out = cli()
        .args(["probe", "--pins", "--"])
        .arg(&cmd)
        .args(&args)
        .output()
        .expect("run");
    assert!(out.status.success());
    let pins: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).expect("pins YAML");
    let pins = pins["pinnedTools"].as_sequence().expect("pinnedTools list");
    assert_eq!(pins.len(), 13);
    for (pin, tool) in pins.iter().zip(&inv.tools) {
        assert_eq!(pin["name"].as_str(), Some(tool.name.as_str()));
        assert_eq!(pin["sha256"].as_str(), Some(tool.sha256.as_str()));
    }
}
