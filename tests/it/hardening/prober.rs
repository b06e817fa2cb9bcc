//! Hardening tests: the prober and how the controller uses it (issue 13, items 10 and 11).
//!
//! A hostile remote server cannot freeze status with oversized strings (every
//! server-supplied string is cut, the status write always fits); a remote URL cannot aim
//! the operator's prober inward (loopback, link-local, the API server) unless the
//! operator is told to allow it, and then only that; a remote's error answers never reach
//! status (no response body, no JSON-RPC error message).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::Client;
use mcp_operator::api::common::find_condition;
use mcp_operator::controller::run::RunConfig;
use mcp_operator::prober::inventory::{digest, tool_sha256};
use mcp_operator::prober::{
    DestinationPolicy, HttpTarget, ProbeErrorCode, ProbeOptions, ProbeTarget, TransportKind, probe,
};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::controller::{
    Operator, cluster, config, create_server, events_for, eventually, get_server, namespace,
    wait_condition,
};

/// What a hostile server puts in its answers instead of data.
const SECRET: &str = "AKIAIOSFODNN7EXAMPLE-wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

/// A loopback HTTP server that counts the TCP connections it accepted.
struct Counted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Counted {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct CountingListener {
    inner: TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl axum::serve::Listener for CountingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            if let Ok(pair) = self.inner.accept().await {
                self.accepted.fetch_add(1, Ordering::SeqCst);
                return pair;
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Serves `router` on `bind` (port 0), counting accepted connections.
async fn serve_counted(bind: &str, router: Router) -> Counted {
    let inner = TcpListener::bind(bind).await.expect("bind loopback");
    let addr = inner.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = CountingListener {
        inner,
        accepted: accepted.clone(),
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Counted {
        addr,
        accepted,
        task,
    }
}

/// A minimal Streamable HTTP MCP server (JSON answers) with this `initialize` result and
/// these tools.
fn mcp_router(init: Value, tools: Arc<Vec<Value>>) -> Router {
    Router::new().fallback(move |method: Method, body: String| {
        let init = init.clone();
        let tools = tools.clone();
        async move {
            if method == Method::DELETE {
                return StatusCode::OK.into_response();
            }
            if method != Method::POST {
                return StatusCode::METHOD_NOT_ALLOWED.into_response();
            }
            let req: Value = serde_json::from_str(&body).unwrap_or_default();
            let Some(id) = req.get("id").cloned() else {
                return StatusCode::ACCEPTED.into_response();
            };
            let result = match req["method"].as_str().unwrap_or_default() {
                "initialize" => init,
                "tools/list" => json!({"tools": *tools}),
                _ => json!({}),
            };
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
            (
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
    })
}

fn init_result(server_info: Value, instructions: &str) -> Value {
    json!({
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {}},
        "serverInfo": server_info,
        "instructions": instructions,
    })
}

/// A well-behaved server with two tools.
fn polite_router() -> Router {
    let tools = vec![
        json!({"name": "echo", "description": "Echoes", "inputSchema": {"type": "object"}}),
        json!({"name": "add", "inputSchema": {"type": "object"}}),
    ];
    mcp_router(
        init_result(json!({"name": "polite", "version": "1.0.0"}), ""),
        Arc::new(tools),
    )
}

/// A remote server probed directly (no gateway), quick probe settings.
fn remote(url: &str) -> Value {
    json!({
        "transport": "StreamableHttp",
        "remote": {"url": url},
        "gateway": {"enabled": false},
        "probe": {"timeout": "10s", "retries": 0, "interval": "1h"},
    })
}

/// What the operator would do in production: `RunConfig::new` carries the defaults of
/// `mcp-operator run` for probe destinations.
fn production_config() -> RunConfig {
    RunConfig::new(
        "mcp-operator-system",
        "ghcr.io/mcp-operator/mcp-operator:test",
    )
}

async fn reachable(client: &Client, ns: &str, name: &str) -> Option<(String, String)> {
    let s = get_server(client, ns, name).await;
    let c = find_condition(&s.status?.conditions, "Reachable")?.clone();
    (c.status != "Unknown").then_some((c.status, c.reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_inventory_is_cut_and_status_keeps_being_written() {
    const TOOLS: usize = 128;
    let name_tail = "n".repeat(12 * 1024);
    let tools: Vec<Value> = (0..TOOLS)
        .map(|i| {
            json!({
                // Identical for the first 12 KiB: a plain cut would give 128 equal names.
                "name": format!("{name_tail}{i:03}"),
                "description": format!("{i}{}", "d".repeat(100 * 1024)),
                "inputSchema": {"type": "object"},
            })
        })
        .collect();
    let huge = "ü".repeat(512 * 1024); // 1 MiB of UTF-8 per field
    let info = json!({"name": huge, "version": huge, "title": huge, "websiteUrl": huge});
    let tools = Arc::new(tools);
    let hostile = serve_counted(
        "127.0.0.1:0",
        mcp_router(init_result(info, &huge), tools.clone()),
    )
    .await;

    let (_api, client) = cluster().await;
    let ns = "hostile";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "big", remote(&hostile.url("/mcp"))).await;
    let server = wait_condition(&client, ns, "big", "ToolsDiscovered", "True", None).await;
    let status = server.status.expect("status");

    assert_eq!(status.tool_count, Some(TOOLS as i32));
    assert_eq!(status.tools.len(), TOOLS);
    let names: BTreeSet<&str> = status.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names.len(),
        TOOLS,
        "cut names stay distinct (a list-map key)"
    );
    for t in &status.tools {
        assert!(t.name.chars().count() <= 128, "{} chars", t.name.len());
        assert!(t.name.contains('…'), "a cut name is marked");
        assert!(t.description.chars().count() <= 200);
        assert!(t.description.ends_with('…'), "a cut description is marked");
    }
    let info = status.server_info.as_ref().expect("serverInfo");
    assert!(info.name.chars().count() <= 128 && info.name.ends_with('…'));
    assert!(info.version.chars().count() <= 64 && info.version.ends_with('…'));
    assert!(info.instructions.len() <= 1024 && info.instructions.ends_with('…'));
    // Hashes are over the full definitions: pins stay about what the server offers.
    let full: BTreeSet<String> = tools.iter().map(tool_sha256).collect();
    let shown: BTreeSet<String> = status.tools.iter().map(|t| t.sha256.clone()).collect();
    assert_eq!(shown, full);
    let all: Vec<String> = full.into_iter().collect();
    assert_eq!(
        status.tools_digest.as_deref(),
        Some(digest(all.iter().map(String::as_str)).as_str())
    );
    let bytes = serde_json::to_vec(&status)
        .expect("status serializes")
        .len();
    assert!(bytes < 512 * 1024, "status is {bytes} bytes");
    eprintln!("hostile inventory: status {bytes} bytes");
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_urls_aimed_inward_are_refused_without_a_connection() {
    let v4 = serve_counted("127.0.0.1:0", polite_router()).await;
    let v6 = serve_counted("[::1]:0", polite_router()).await;
    let targets = [
        ("loopback", v4.url("/mcp")),
        (
            "localhost",
            format!("http://localhost:{}/mcp", v4.addr.port()),
        ),
        (
            "mapped",
            format!("http://[::ffff:127.0.0.1]:{}/mcp", v4.addr.port()),
        ),
        (
            "decimal",
            format!("http://2130706433:{}/mcp", v4.addr.port()),
        ),
        ("ipv6", v6.url("/mcp")),
    ];

    let (_api, client) = cluster().await;
    let ns = "inward";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), production_config());
    for (name, url) in &targets {
        create_server(&client, ns, name, remote(url)).await;
    }
    for (name, url) in &targets {
        let got = eventually(&format!("{name} ({url}) probed"), 60, || {
            reachable(&client, ns, name)
        })
        .await;
        assert_eq!(
            got,
            ("False".to_owned(), "DestinationDenied".to_owned()),
            "{name} {url}"
        );
    }
    assert_eq!(
        (v4.accepted(), v6.accepted()),
        (0, 0),
        "no connection to a denied destination"
    );
    operator.stop().await.expect("clean shutdown");

    // The same servers with loopback allowed (what `mcp-operator dev` and the tests do).
    let (_api, client) = cluster().await;
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    for (name, url) in &targets {
        create_server(&client, ns, name, remote(url)).await;
    }
    for (name, url) in &targets {
        let got = eventually(&format!("{name} ({url}) probed"), 60, || {
            reachable(&client, ns, name)
        })
        .await;
        assert_eq!(got.0, "True", "{name} {url}: {got:?}");
    }
    assert!(v4.accepted() > 0 && v6.accepted() > 0);
    operator.stop().await.expect("clean shutdown");
}

/// Answers every request with `status`, `content_type` and a body holding [`SECRET`].
fn leaky_router(status: StatusCode, content_type: &'static str, body: String) -> Router {
    Router::new().fallback(move || {
        let body = body.clone();
        async move {
            let mut r = Response::new(axum::body::Body::from(body));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            r
        }
    })
}

/// A JSON-RPC error answer to every request, with [`SECRET`] in message and data.
fn jsonrpc_error_router() -> Router {
    Router::new().fallback(|body: String| async move {
        let id = serde_json::from_str::<Value>(&body)
            .map(|v| v["id"].clone())
            .unwrap_or_default();
        let answer = json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32603, "message": format!("db password is {SECRET}"), "data": SECRET}});
        (
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_of_a_remote_never_reach_status() {
    let leaks = [
        (
            "http-500",
            leaky_router(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("internal error; key={SECRET}"),
            ),
        ),
        (
            "http-404",
            leaky_router(
                StatusCode::NOT_FOUND,
                "text/html",
                format!("<html>{SECRET}</html>"),
            ),
        ),
        (
            "bad-json",
            leaky_router(
                StatusCode::OK,
                "application/json",
                format!(r#"{{"jsonrpc":"2.0","id":0,"result":{{"protocolVersion":"{SECRET}"}}}}"#),
            ),
        ),
        ("jsonrpc-error", jsonrpc_error_router()),
    ];
    let mut stubs = Vec::new();
    for (name, router) in leaks {
        stubs.push((name, serve_counted("127.0.0.1:0", router).await));
    }
    let (_api, client) = cluster().await;
    let ns = "leaks";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    for (name, stub) in &stubs {
        create_server(&client, ns, name, remote(&stub.url("/mcp"))).await;
    }
    for (name, _) in &stubs {
        let server = wait_condition(&client, ns, name, "Reachable", "False", None).await;
        let status = server.status.expect("status");
        let shown = serde_json::to_string(&status).unwrap();
        assert!(
            !shown.contains(SECRET),
            "{name}: status quotes the body: {shown}"
        );
        let reason = &find_condition(&status.conditions, "Reachable")
            .unwrap()
            .reason;
        let message = &status.last_probe.as_ref().unwrap().message;
        eprintln!("{name}: {reason}: {message}");
        for (reason, note) in events_for(&client, ns, name).await {
            assert!(
                !note.contains(SECRET),
                "{name}: Event {reason} quotes the body: {note}"
            );
        }
    }
    operator.stop().await.expect("clean shutdown");
}

fn guarded(url: &str, policy: DestinationPolicy) -> ProbeTarget {
    let mut t = HttpTarget::new(url);
    t.transport = TransportKind::StreamableHttp;
    t.destinations = Some(Arc::new(policy));
    ProbeTarget::Http(t)
}

fn quick() -> ProbeOptions {
    ProbeOptions {
        timeout: std::time::Duration::from_secs(10),
        retries: 0,
        retry_delay: std::time::Duration::from_millis(10),
    }
}

#[tokio::test]
async fn the_prober_checks_the_address_it_dials_and_follows_no_redirect() {
    let allowed = serve_counted("127.0.0.1:0", polite_router()).await;
    // 127.0.0.2 is loopback too, but outside the hole punched below.
    let denied = serve_counted("127.0.0.2:0", polite_router()).await;
    let port = allowed.addr.port();
    for url in [
        format!("http://localhost:{port}/mcp"),
        format!("http://LOCALHOST:{port}/mcp"),
        format!("http://127.1:{port}/mcp"),
        format!("http://[0:0:0:0:0:ffff:7f00:1]:{port}/mcp"),
        format!("http://0.0.0.0:{port}/mcp"),
    ] {
        let r = probe(&guarded(&url, DestinationPolicy::default()), &quick()).await;
        assert_eq!(
            r.code(),
            Some(ProbeErrorCode::DestinationDenied),
            "{url}: {r:?}"
        );
        assert_eq!(r.attempts, 1, "not retried");
    }
    assert_eq!(
        allowed.accepted(),
        0,
        "no connection to a denied destination"
    );

    // Only 127.0.0.1 is allowed: a redirect from there to 127.0.0.2 is not followed.
    let hole = DestinationPolicy::new(
        vec!["127.0.0.0/8".parse().unwrap()],
        vec!["127.0.0.1/32".parse().unwrap()],
    );
    let to = denied.url("/mcp");
    let bouncer = serve_counted(
        "127.0.0.1:0",
        Router::new().fallback(move || {
            let to = to.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]) }
        }),
    )
    .await;
    let r = probe(&guarded(&bouncer.url("/mcp"), hole.clone()), &quick()).await;
    assert_eq!(r.code(), Some(ProbeErrorCode::NotMcpServer), "{r:?}");
    assert!(bouncer.accepted() > 0);
    let r = probe(&guarded(&denied.url("/mcp"), hole.clone()), &quick()).await;
    assert_eq!(r.code(), Some(ProbeErrorCode::DestinationDenied), "{r:?}");
    assert_eq!(
        denied.accepted(),
        0,
        "the redirect target was never dialled"
    );
    // The hole itself works.
    let r = probe(&guarded(&allowed.url("/mcp"), hole), &quick()).await;
    assert!(r.error().is_none(), "{r:?}");
    // Without a policy (`mcp-operator probe`) nothing is refused.
    let mut open = HttpTarget::new(denied.url("/mcp"));
    open.transport = TransportKind::StreamableHttp;
    let r = probe(&ProbeTarget::Http(open), &quick()).await;
    assert!(r.error().is_none(), "{r:?}");
}
