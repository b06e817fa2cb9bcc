//! Sessions belong to the principal that opened them (issue 13, item 3) and are bounded
//! (item 4): another binding naming a session id — on POST, on the GET stream, on a
//! `Last-Event-ID` replay, on DELETE — gets 404 as if it did not exist, and the owner's
//! session keeps working; ids the gateway never opened get 404 too; caps per caller and in
//! total refuse `initialize`; idle sessions expire and are ended upstream.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::harness::{GatewayProcess, Mcp, config, hash, http};
use crate::support;
use crate::support::eventually::eventually;

const A: &str = "token-of-binding-a";
const B: &str = "token-of-binding-b";

fn two_bindings() -> Value {
    config(json!({
        "auth": "Required",
        "bindings": [
            {"name": "a", "tokenSha256": [hash(A)]},
            {"name": "b", "tokenSha256": [hash(B)]},
        ],
    }))
}

/// A raw request with `token` naming `session` (reqwest::Response, never a panic on status).
async fn raw(
    method: reqwest::Method,
    url: &str,
    token: &str,
    session: &str,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = http()
        .request(method, url)
        .bearer_auth(token)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    req.send().await.expect("request to the gateway")
}

/// The JSON body of a refusal (non-streaming answers only).
async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Binding b tries every way into binding a's session; a's session is untouched.
async fn foreign_session_is_not_found(upstream_url: &str) {
    let gw = GatewayProcess::start(upstream_url, &two_bindings(), &[]).await;
    let mut a = Mcp::new(&gw.url(), Some(A));
    a.initialize().await;
    let sid = a.session.clone().expect("the upstream opened a session");
    assert_eq!(a.request("ping", json!({})).await.status, 200);

    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    let call = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list", "params": {}});
    let attempts: Vec<(&str, reqwest::Response)> = vec![
        (
            "POST ping",
            raw(
                reqwest::Method::POST,
                &gw.url(),
                B,
                &sid,
                &[],
                Some(ping.clone()),
            )
            .await,
        ),
        (
            "POST tools/list",
            raw(reqwest::Method::POST, &gw.url(), B, &sid, &[], Some(call)).await,
        ),
        (
            "GET stream",
            raw(
                reqwest::Method::GET,
                &gw.url(),
                B,
                &sid,
                &[("accept", "text/event-stream")],
                None,
            )
            .await,
        ),
        (
            "GET replay",
            raw(
                reqwest::Method::GET,
                &gw.url(),
                B,
                &sid,
                &[("accept", "text/event-stream"), ("last-event-id", "0")],
                None,
            )
            .await,
        ),
        (
            "DELETE",
            raw(reqwest::Method::DELETE, &gw.url(), B, &sid, &[], None).await,
        ),
    ];
    for (what, resp) in attempts {
        let (status, body) = json_of(resp).await;
        assert_eq!(status, 404, "{what} by binding b in a's session: {body}");
        assert_eq!(
            body["error"]["message"], "Session not found",
            "{what}: {body}"
        );
        assert_eq!(body["error"]["code"], -32001, "{what}: {body}");
    }
    // A replay without a session names nobody's session: refused, never forwarded.
    let replay = http()
        .get(gw.url())
        .bearer_auth(B)
        .header("accept", "text/event-stream")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(replay).await;
    assert_eq!(status, 404, "a replay without a session: {body}");
    // b's own session id next to a's: upstreams disagree on which of several values
    // counts, so several are never a session the gateway knows.
    let mut b = Mcp::new(&gw.url(), Some(B));
    b.initialize().await;
    let own = b.session.clone().unwrap();
    for pair in [[own.as_str(), sid.as_str()], [sid.as_str(), own.as_str()]] {
        let resp = http()
            .post(gw.url())
            .bearer_auth(B)
            .header("mcp-session-id", pair[0])
            .header("mcp-session-id", pair[1])
            .header("mcp-protocol-version", "2025-11-25")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(ping.to_string())
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, 404, "two session ids {pair:?}: {body}");
    }
    // Every refusal is audited under b.
    for method in ["ping", "tools/list", "GET", "DELETE"] {
        gw.wait_audit(&format!("b's refused {method}"), |r| {
            r["binding"] == "b" && r["method"] == method && r["rule"] == "SessionNotFound"
        })
        .await;
    }
    // a's session still works: requests, and its own GET stream.
    assert_eq!(a.request("ping", json!({})).await.status, 200);
    let tools = a.list_tools().await;
    assert!(!tools.tool_names().is_empty());
    let stream = raw(
        reqwest::Method::GET,
        &gw.url(),
        A,
        &sid,
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(stream.status(), 200, "a's own GET stream");
    drop(stream);
    // The owner's DELETE ends it; afterwards it is gone for a too.
    let del = raw(reqwest::Method::DELETE, &gw.url(), A, &sid, &[], None).await;
    assert!(del.status().is_success(), "a's DELETE: {}", del.status());
    let (status, _) =
        json_of(raw(reqwest::Method::POST, &gw.url(), A, &sid, &[], Some(ping)).await).await;
    assert_eq!(status, 404, "a deleted session");
    assert_eq!(
        gw.metric("mcp_gateway_sessions").await,
        1.0,
        "only b's own session is left: {}",
        gw.metrics().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_binding_cannot_use_a_session_node() {
    let upstream = support::server_everything("streamableHttp");
    foreign_session_is_not_found(&upstream.url("/mcp")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_binding_cannot_use_a_session_python() {
    let upstream = support::python_server("streamable-http");
    foreign_session_is_not_found(&upstream.url("/mcp")).await;
}

/// A session opened at the upstream directly (or before a gateway restart) is unknown to
/// the gateway: 404, never forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_the_gateway_never_opened_are_not_found() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &two_bindings(), &[]).await;
    let mut direct = Mcp::new(&upstream.url("/mcp"), None);
    direct.initialize().await;
    let sid = direct.session.clone().unwrap();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, body) =
        json_of(raw(reqwest::Method::POST, &gw.url(), A, &sid, &[], Some(ping)).await).await;
    assert_eq!(
        status, 404,
        "a session opened behind the gateway's back: {body}"
    );
    assert_eq!(body["error"]["code"], -32001);
    // Still alive upstream: the gateway did not forward it anywhere.
    assert_eq!(direct.request("ping", json!({})).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_caps_refuse_initialize_per_caller_and_in_total() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &two_bindings(),
        &["--max-sessions-per-principal", "2", "--max-sessions", "3"],
    )
    .await;
    let mut a1 = Mcp::new(&gw.url(), Some(A));
    let mut a2 = Mcp::new(&gw.url(), Some(A));
    a1.initialize().await;
    a2.initialize().await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let a3 = Mcp::new(&gw.url(), Some(A)).post(init.clone()).await;
    assert_eq!(a3.status, 429, "a's third session: {a3:?}");
    assert_eq!(a3.rule(), "SessionLimit");
    assert!(a3.headers.get("mcp-session-id").is_none());
    let mut b1 = Mcp::new(&gw.url(), Some(B));
    b1.initialize().await;
    let b2 = Mcp::new(&gw.url(), Some(B)).post(init.clone()).await;
    assert_eq!(b2.status, 503, "fourth session in all: {b2:?}");
    assert_eq!(b2.rule(), "SessionsFull");
    gw.wait_audit("the refused initialize", |r| {
        r["binding"] == "b" && r["method"] == "initialize" && r["rule"] == "SessionsFull"
    })
    .await;
    // Ending one frees its place.
    let del = raw(
        reqwest::Method::DELETE,
        &gw.url(),
        A,
        a1.session.as_deref().unwrap(),
        &[],
        None,
    )
    .await;
    assert!(del.status().is_success());
    let mut b2 = Mcp::new(&gw.url(), Some(B));
    b2.initialize().await;
    assert_eq!(gw.metric("mcp_gateway_sessions").await, 3.0);
    assert!(
        gw.metric("mcp_gateway_session_refusals_total{reason=\"limit\"}")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_are_ended_upstream() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &two_bindings(),
        &["--session-idle-seconds", "2"],
    )
    .await;
    let mut idle = Mcp::new(&gw.url(), Some(A));
    idle.initialize().await;
    let sid = idle.session.clone().unwrap();
    // A session with an open GET stream is in use, not idle.
    let mut streaming = Mcp::new(&gw.url(), Some(B));
    streaming.initialize().await;
    let stream = raw(
        reqwest::Method::GET,
        &gw.url(),
        B,
        streaming.session.as_deref().unwrap(),
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(stream.status(), 200);
    let started = Instant::now();
    gw.wait_metric("mcp_gateway_sessions_expired_total", 1.0)
        .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "expired after {took:?}"
    );
    let (status, _) = json_of(
        raw(
            reqwest::Method::POST,
            &gw.url(),
            A,
            &sid,
            &[],
            Some(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "expired session");
    // The gateway ended it upstream: the server no longer knows it.
    let mut direct = Mcp::new(&upstream.url("/mcp"), None);
    direct.session = Some(sid);
    eventually(
        "the upstream to forget the expired session",
        Duration::from_secs(10),
        async || {
            let a = direct.request("ping", json!({})).await;
            // server-everything answers an unknown session with 400, the SDKs with 404.
            if a.status == 404 || a.status == 400 {
                Ok(())
            } else {
                Err(a)
            }
        },
    )
    .await;
    // The streaming session outlives several idle periods: a witness session opened now
    // expiring proves one more full idle period passed with the sweeper running.
    let mut witness = Mcp::new(&gw.url(), Some(A));
    witness.initialize().await;
    gw.wait_metric("mcp_gateway_sessions_expired_total", 2.0)
        .await;
    assert_eq!(
        streaming.request("ping", json!({})).await.status,
        200,
        "a session with an open stream"
    );
    drop(stream);
}
