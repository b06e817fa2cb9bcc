//! Connection hygiene and DNS-rebinding protection (issue 13, items 4 and 5), attacked
//! from outside: a slowloris sending headers byte by byte, connections that never
//! authenticate, a flood of connections beyond the cap (health routes keep answering from
//! a reserve), an upstream that never answers (every kind of upstream request times out),
//! and hostile `Host` and `Origin` headers.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::gateway::harness::{GatewayProcess, Mcp, config, hash};
use crate::support;
use crate::support::eventually::eventually;

const TOKEN: &str = "token-of-binding-a";

fn one_binding() -> Value {
    config(json!({
        "auth": "Required",
        "bindings": [{"name": "a", "tokenSha256": [hash(TOKEN)]}],
    }))
}

async fn connect(gw: &GatewayProcess) -> TcpStream {
    TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect to the gateway")
}

/// Waits until the peer closes `s` (EOF or reset); false when still open at `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a response (e.g. 408) before the close
        }
    }
}

/// One HTTP/1.1 request on an open connection; the status and body of the answer
/// (Content-Length bodies only, which is what the gateway's own answers carry).
async fn exchange(s: &mut TcpStream, request: &str) -> (u16, String) {
    s.write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if body.len() >= len {
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            return (status, body[..len].to_owned());
        }
    }
}

fn post(token: &str, session: Option<&str>, body: &str) -> String {
    let session = session.map_or(String::new(), |s| format!("mcp-session-id: {s}\r\n"));
    format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n{session}\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

const LIVEZ: &str = "GET /livez HTTP/1.1\r\nhost: 10.0.0.7:8080\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_is_cut_off_by_the_header_read_timeout() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &one_binding(),
        &["--header-read-timeout-seconds", "1"],
    )
    .await;
    let mut s = connect(&gw).await;
    s.write_all(b"POST /mcp HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let header =
        b"x-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut closed = false;
    'drip: for _ in 0..10 {
        for b in header {
            if s.write_all(&[*b]).await.is_err() {
                closed = true;
                break 'drip;
            }
            if closed_within(&mut s, Duration::from_millis(100)).await {
                closed = true;
                break 'drip;
            }
        }
    }
    let took = started.elapsed();
    assert!(
        closed,
        "a connection dripping header bytes was still open after {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");
    // Others are served meanwhile.
    let mut other = connect(&gw).await;
    assert_eq!(exchange(&mut other, LIVEZ).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_authenticate_are_closed() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &one_binding(),
        &[
            "--unauthenticated-idle-seconds",
            "1",
            "--header-read-timeout-seconds",
            "60",
        ],
    )
    .await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    // Refused callers keep the connection open with keep-alive, until the idle limit.
    let mut refused = connect(&gw).await;
    assert_eq!(
        exchange(&mut refused, &post("wrong", None, ping)).await.0,
        401
    );
    let mut silent = connect(&gw).await;
    let started = Instant::now();
    assert!(
        closed_within(&mut refused, Duration::from_secs(5)).await,
        "a 401 connection stayed open"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a silent connection stayed open"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // An authenticated connection outlives the limit.
    let mut good = connect(&gw).await;
    let (status, _) = exchange(&mut good, &post(TOKEN, Some("nope"), ping)).await;
    assert_eq!(status, 404, "authenticated, unknown session");
    // Silent witness connections opened one after another and closed by the gateway prove
    // the idle limit passed twice while the authenticated one stayed open (no fixed sleep).
    for _ in 0..2 {
        let mut witness = connect(&gw).await;
        assert!(
            closed_within(&mut witness, Duration::from_secs(5)).await,
            "a silent witness connection stayed open"
        );
    }
    let (status, _) = exchange(&mut good, &post(TOKEN, Some("nope"), ping)).await;
    assert_eq!(status, 404, "the authenticated connection still serves");
    gw.wait_metric("mcp_gateway_connections_closed_unauthenticated_total", 4.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_health_routes_still_answer() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &one_binding(),
        &[
            "--max-connections",
            "3",
            "--header-read-timeout-seconds",
            "60",
            "--unauthenticated-idle-seconds",
            "60",
        ],
    )
    .await;
    // The harness's own client may hold an idle keep-alive connection: fill what is left.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&gw).await);
    }
    // Beyond the cap: the reserve serves /livez (one request, then closes) but no MCP.
    let mut extra = connect(&gw).await;
    assert_eq!(exchange(&mut extra, LIVEZ).await.0, 200);
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "reserve connections serve one request"
    );
    let mut extra = connect(&gw).await;
    let (status, body) = exchange(
        &mut extra,
        &post(TOKEN, None, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
    )
    .await;
    assert_eq!(status, 503, "MCP beyond the cap: {body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32005
    );
    // Fill the reserve too: the next connection is closed at once.
    let mut reserve = Vec::new();
    for _ in 0..16 {
        reserve.push(connect(&gw).await);
    }
    let mut refused = connect(&gw).await;
    let _ = refused.write_all(LIVEZ.as_bytes()).await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)).await,
        "a connection beyond cap and reserve"
    );
    // As connections close, service resumes.
    drop(reserve);
    eventually(
        "/livez to answer again",
        Duration::from_secs(10),
        async || {
            let mut s = connect(&gw).await;
            let _ = s.write_all(LIVEZ.as_bytes()).await;
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 200") => Ok(()),
                Ok(Ok(n)) => Err(String::from_utf8_lossy(&buf[..n]).into_owned()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(gw.metric("mcp_gateway_connections_refused_total").await >= 1.0);
    drop(held);
    eventually("MCP to serve again", Duration::from_secs(10), async || {
        let mcp = Mcp::new(&gw.url(), Some(TOKEN));
        let a = mcp
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .await;
        if a.status == 200 { Ok(()) } else { Err(a) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_request_times_out() {
    let hole = support::stubs::black_hole().await;
    let gw = GatewayProcess::start(
        &hole.url("/mcp"),
        &config(json!({"auth": "None"})),
        &["--upstream-timeout-seconds", "1"],
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let send = |req: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let resp = req
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .send()
            .await
            .expect("an answer before the client's 10 s timeout");
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
        (status, body, started.elapsed())
    };
    for method in ["initialize", "tools/list", "ping"] {
        let msg = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
        let (status, body, took) = send(http.post(gw.url()).body(msg.to_string())).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert_eq!(body["error"]["code"], -32008, "{method}: {body}");
        assert_eq!(body["error"]["data"]["rule"], "Timeout", "{method}: {body}");
        assert!(took < Duration::from_secs(4), "{method} took {took:?}");
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, took) = send(http.post(gw.url()).body(note.to_string())).await;
    assert_eq!(status, 504, "a notification");
    assert!(took < Duration::from_secs(4));
    let (status, body, took) = send(http.get(gw.url())).await;
    assert_eq!(status, 504, "GET stream opening: {body}");
    assert!(took < Duration::from_secs(4));
    let (status, _, took) = send(http.delete(gw.url()).header("mcp-session-id", "x")).await;
    assert_eq!(
        status, 404,
        "DELETE of an unknown session never reaches upstream"
    );
    assert!(took < Duration::from_secs(4));
    let (status, body, took) = send(http.delete(gw.url())).await;
    assert_eq!(status, 502, "DELETE reaching a silent upstream: {body}");
    assert!(took < Duration::from_secs(4), "DELETE took {took:?}");
    assert!(gw.metric("mcp_gateway_upstream_timeouts_total").await >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_origin_are_checked_against_dns_rebinding() {
    let upstream = support::server_everything("streamableHttp");
    let cfg = config(json!({
        "auth": "None",
        "allowedHosts": ["everything", "everything.tests.svc.cluster.local"],
    }));
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &cfg,
        &["--allowed-origin", "https://console.example.com"],
    )
    .await;
    let http = crate::gateway::harness::http();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let attempt = |host: Option<&'static str>, origin: Option<&'static str>| {
        let mut req = http
            .post(gw.url())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(init.to_string());
        if let Some(h) = host {
            req = req.header("host", h);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, text)
        }
    };
    for (host, origin, rule) in [
        (Some("evil.example"), None, "HostNotAllowed"),
        (Some("everything.evil.example:8080"), None, "HostNotAllowed"),
        (None, Some("https://evil.example"), "OriginNotAllowed"),
        (None, Some("null"), "OriginNotAllowed"),
        (
            Some("everything:8080"),
            Some("http://evil.example:8080"),
            "OriginNotAllowed",
        ),
    ] {
        let (status, text) = attempt(host, origin).await;
        assert_eq!(status, 403, "Host {host:?} Origin {origin:?}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["data"]["rule"], rule, "{text}");
        assert_eq!(body["error"]["code"], -32003);
    }
    for (host, origin) in [
        (None, None),
        (Some("everything.tests.svc.cluster.local:8080"), None),
        (Some("everything:8080"), Some("http://everything:8080")),
        (Some("localhost:8080"), Some("http://localhost:6274")),
        (Some("10.1.2.3:8080"), Some("https://console.example.com")),
    ] {
        let (status, text) = attempt(host, origin).await;
        assert_eq!(status, 200, "Host {host:?} Origin {origin:?}: {text}");
    }
    // GET and DELETE are checked too.
    for req in [http.get(gw.url()), http.delete(gw.url())] {
        let resp = req
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
    }
    // Health routes answer whatever the Host (kubelet probes name the pod IP).
    for path in ["/livez", "/readyz", "/metrics"] {
        let resp = http
            .get(format!("{}{path}", gw.base()))
            .header("host", "evil.example")
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    assert!(
        gw.metric("mcp_gateway_denied_total{rule=\"HostNotAllowed\"}")
            .await
            >= 2.0,
        "{}",
        gw.metrics().await
    );
}
