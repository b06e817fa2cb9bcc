//! The gateway in the modern (2026-07-28, stateless) era: routing headers reach the
//! upstream (`Mcp-Name` rewritten with the tool prefix like the body), a header that
//! disagrees with the body is refused (-32020) before any rule, the policy decides on the
//! body; stateless requests are authenticated, rate limited, audited and policy-checked
//! like session ones (audit records alike across eras); filtered lists are
//! `cacheScope: private`; `input_required` results and `subscriptions/listen` streams
//! pass; trace context reaches the upstream; the probe may `server/discover`.
//!
//! Upstreams: a stub that records what it receives and answers like a modern server
//! (with `cacheScope: public`, which the SDKs never send), and the real modern-only
//! servers of the Python SDK 2.3 and the TypeScript SDK v2 behind a recorder.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response};
use mcp_operator::mcp_http::era;
use serde_json::{Value, json};

use super::harness::{Answer, GatewayProcess, Mcp, config, hash, http, sse_messages};
use crate::support;
use crate::support::era_peers::{EraServer, node22};

const AGENT: &str = "tok-eras-agent-7c1d";
const OTHER: &str = "tok-eras-other-90aa";
const PROBE: &str = "tok-eras-probe-51e0";

/// One request as an upstream received it: its headers (lowercase names, every value)
/// and body.
pub type Received = (Vec<(String, String)>, Value);

/// What an upstream received, and how many of its answers the caller abandoned (the
/// connection closed before the answer was ready).
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Received>>>, Arc<AtomicUsize>);

impl Seen {
    fn push(&self, headers: &HeaderMap, body: &[u8]) {
        let hs = headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect();
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.0.lock().unwrap().push((hs, body));
    }

    /// The requests so far whose body has `method`.
    pub fn with_method(&self, method: &str) -> Vec<Received> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| b["method"] == method)
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The last request received.
    pub fn last(&self) -> Option<Received> {
        self.0.lock().unwrap().last().cloned()
    }

    pub fn abandoned(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }
}

/// Every value of header `name` in a recorded request.
pub fn values(headers: &[(String, String)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A modern upstream in-process: answers `server/discover`, `tools/list` (echo, delete_x,
/// `cacheScope: public`, `ttlMs`), `tools/call` (`ask` answers `input_required` until the
/// retry carries `inputResponses`; `slow` answers after 3 s; others echo their name) and `subscriptions/listen` (an
/// SSE stream: acknowledgement, then after 2.5 s a list_changed notification, then the
/// closing result).
pub async fn modern_stub() -> (support::Stub, Seen) {
    let seen = Seen::default();
    let rec = seen.clone();
    let router = axum::Router::new().fallback(move |req: Request<Body>| {
        let rec = rec.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            rec.push(&parts.headers, &bytes);
            let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            stub_answer(&msg, &rec).await
        }
    });
    (support::serve(router).await, seen)
}

fn json_answer(v: Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// Counts a request abandoned unless it finished.
struct Abandoned(Arc<AtomicUsize>, bool);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn stub_answer(msg: &Value, seen: &Seen) -> Response<Body> {
    let id = msg["id"].clone();
    let ok = |result: Value| json_answer(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    match msg["method"].as_str().unwrap_or_default() {
        "server/discover" => ok(json!({
            "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "stub", "version": "1"},
            "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"})),
        "tools/list" => ok(json!({
            "tools": [
                {"name": "echo", "inputSchema": {"type": "object"}},
                {"name": "delete_x", "inputSchema": {"type": "object"}},
                {"name": "ask", "inputSchema": {"type": "object"}},
            ],
            "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"})),
        "tools/call" => {
            let name = msg["params"]["name"].as_str().unwrap_or_default();
            if name == "slow" {
                let mut running = Abandoned(seen.1.clone(), false);
                tokio::time::sleep(Duration::from_secs(3)).await;
                running.1 = true;
            }
            if name == "ask" && msg["params"].get("inputResponses").is_none() {
                return ok(json!({
                    "resultType": "input_required",
                    "inputRequests": {"confirm": {"method": "elicitation/create",
                        "params": {"message": "Sure?", "requestedSchema": {"type": "object"}}}},
                    "requestState": "opaque-state-1"}));
            }
            ok(
                json!({"content": [{"type": "text", "text": format!("called {name}")}],
                      "resultType": "complete"}),
            )
        }
        "subscriptions/listen" => listen_stream(id.clone()),
        _ => ok(json!({"resultType": "complete"})),
    }
}

fn listen_stream(id: Value) -> Response<Body> {
    let frame = |v: Value| bytes::Bytes::from(format!("event: message\ndata: {v}\n\n"));
    let meta = json!({"io.modelcontextprotocol/subscriptionId": id});
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                     "params": {"_meta": meta}});
    let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                         "params": {"_meta": meta}});
    let end =
        json!({"jsonrpc": "2.0", "id": id, "result": {"_meta": meta, "resultType": "complete"}});
    let stream = async_stream_of(vec![
        (Duration::ZERO, frame(ack)),
        (Duration::from_millis(2500), frame(changed)),
        (Duration::from_millis(100), frame(end)),
    ]);
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A body stream yielding each chunk after its delay.
fn async_stream_of(
    items: Vec<(Duration, bytes::Bytes)>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::unfold(items.into_iter(), |mut it| async move {
        let (wait, chunk) = it.next()?;
        tokio::time::sleep(wait).await;
        Some((Ok(chunk), it))
    })
}

/// A pass-through proxy in front of a real upstream that records what the upstream
/// received (all headers but the hop-by-hop ones are forwarded).
pub async fn recorder(target: String) -> (support::Stub, Seen) {
    let _ = http(); // installs the crypto provider
    let seen = Seen::default();
    let rec = seen.clone();
    let client = reqwest::Client::builder().build().unwrap();
    let router = axum::Router::new().fallback(move |req: Request<Body>| {
        let (rec, client, target) = (rec.clone(), client.clone(), target.clone());
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            rec.push(&parts.headers, &bytes);
            let mut out = client.request(parts.method, &target);
            for (k, v) in &parts.headers {
                if !matches!(
                    k.as_str(),
                    "host" | "content-length" | "connection" | "transfer-encoding"
                ) {
                    out = out.header(k, v);
                }
            }
            let resp = out.body(bytes).send().await.unwrap();
            let mut back = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if !matches!(
                    k.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    back = back.header(k, v);
                }
            }
            back.body(Body::from(resp.bytes().await.unwrap_or_default()))
                .unwrap()
        }
    });
    (support::serve(router).await, seen)
}

/// A raw modern-era client: every request carries the `_meta` envelope and the routing
/// headers the SDKs send; `send` lets a test change any of them.
pub struct Modern {
    http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
    next_id: u64,
}

impl Modern {
    pub fn new(url: &str, token: Option<&str>) -> Modern {
        Modern {
            http: http(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
            next_id: 1,
        }
    }

    /// A modern request body (envelope in `params._meta`).
    pub fn message(&mut self, method: &str, mut params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        if !params.is_object() {
            params = json!({});
        }
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        era::stamp_envelope(
            &mut msg,
            &era::request_envelope(
                era::LATEST_MODERN,
                json!({}),
                json!({"name": "gateway-era-test", "version": "1"}),
            ),
        );
        msg
    }

    /// The routing headers a conforming client sends for `msg`.
    pub fn routing_headers(msg: &Value) -> Vec<(String, String)> {
        let method = msg["method"].as_str().unwrap_or_default();
        let mut h = vec![
            (
                "mcp-protocol-version".to_owned(),
                era::LATEST_MODERN.to_owned(),
            ),
            ("mcp-method".to_owned(), method.to_owned()),
        ];
        if let Some(key) = era::name_param(method)
            && let Some(name) = msg["params"][key].as_str()
        {
            h.push(("mcp-name".to_owned(), era::encode_header_value(name)));
        }
        h
    }

    /// POSTs `msg` with exactly `headers` (plus content type, accept and the token).
    pub async fn send(&self, msg: &Value, headers: &[(String, String)]) -> Answer {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(msg.to_string());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("POST to the gateway");
        Answer::read(resp, msg.get("id")).await
    }

    /// A conforming modern request.
    pub async fn request(&mut self, method: &str, params: Value) -> Answer {
        let msg = self.message(method, params);
        self.send(&msg, &Self::routing_headers(&msg)).await
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> Answer {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }
}

fn policy_config(extra: Value) -> Value {
    let mut c = config(json!({
        "auth": "Required",
        "probeTokenSha256": [hash(PROBE)],
        "policy": {"deny": ["delete_*"]},
        "bindings": [
            {"name": "agent", "tokenSha256": [hash(AGENT)]},
            {"name": "other", "tokenSha256": [hash(OTHER)]},
        ],
    }));
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_reach_the_upstream_with_mcp_name_rewritten_like_the_body() {
    let (stub, seen) = modern_stub().await;
    let cfg = policy_config(json!({"toolPrefix": "ß_"}));
    let gw = GatewayProcess::start(&stub.url("/mcp"), &cfg, &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));

    let msg = c.message(
        "tools/call",
        json!({"name": "ß_echo", "arguments": {"region": "eu-west"}}),
    );
    let mut headers = Modern::routing_headers(&msg);
    assert!(headers[2].1.starts_with("=?base64?"), "{headers:?}");
    headers.push(("mcp-param-region".into(), "eu-west".into()));
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    headers.push(("traceparent".into(), trace.into()));
    headers.push(("tracestate".into(), "vendor=opaque,other=x".into()));
    let a = c.send(&msg, &headers).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.text(), "called echo", "{a:?}");

    let calls = seen.with_method("tools/call");
    let (h, body) = calls.last().expect("the call reached the upstream");
    assert_eq!(body["params"]["name"], "echo");
    // The body's name lost its prefix, and so did the header mirroring it.
    assert_eq!(values(h, "mcp-name"), ["echo"], "{h:?}");
    assert_eq!(values(h, "mcp-method"), ["tools/call"]);
    assert_eq!(values(h, "mcp-protocol-version"), ["2026-07-28"]);
    assert_eq!(values(h, "mcp-param-region"), ["eu-west"]);
    assert_eq!(values(h, "traceparent"), [trace]);
    assert_eq!(values(h, "tracestate"), ["vendor=opaque,other=x"]);
    assert!(
        values(h, "authorization").is_empty(),
        "the caller's token never goes upstream"
    );

    // A name the prefix leaves non-ASCII is encoded the way the SDKs decode it.
    let a = c.call("ß_ünï", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    let calls = seen.with_method("tools/call");
    let (h, _) = calls.last().unwrap();
    assert_eq!(values(h, "mcp-name"), [era::encode_header_value("ünï")]);

    // tools/list carries no name: method and version headers only.
    let a = c.request("tools/list", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    let lists = seen.with_method("tools/list");
    let (h, _) = lists.last().unwrap();
    assert_eq!(values(h, "mcp-method"), ["tools/list"]);
    assert!(values(h, "mcp-name").is_empty());

    // Trace context goes with a GET as well.
    let resp = http()
        .get(gw.url())
        .bearer_auth(AGENT)
        .header("accept", "text/event-stream")
        .header("traceparent", trace)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (h, _) = seen.last().unwrap();
    assert_eq!(values(&h, "traceparent"), [trace], "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_is_decided_on_the_body_whatever_mcp_name_says() {
    let (stub, seen) = modern_stub().await;
    let gw = GatewayProcess::start(&stub.url("/mcp"), &policy_config(json!({})), &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));

    // The denied tool is absent from a modern tools/list.
    let names = c.request("tools/list", json!({})).await.tool_names();
    assert_eq!(names, ["echo", "ask"]);

    // The header names an allowed tool, the body the denied one: -32020, never forwarded.
    let msg = c.message("tools/call", json!({"name": "delete_x", "arguments": {}}));
    let mut lying = Modern::routing_headers(&msg);
    lying[2].1 = "echo".into();
    let before = seen.count();
    let a = c.send(&msg, &lying).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.error_code(), -32020, "{a:?}");
    assert_eq!(a.body["id"], msg["id"], "{a:?}");
    assert_eq!(a.rule(), "HeaderMismatch", "{a:?}");
    let r = gw
        .wait_audit("the mismatch", |r| r["id"] == msg["id"])
        .await;
    assert_eq!(r["outcome"], "denied");
    assert_eq!(r["rule"], "HeaderMismatch");
    assert_eq!(r["tool"], "delete_x", "the record names the body's tool");

    // The header names the denied tool, the body an allowed one: -32020 as well.
    let msg = c.message("tools/call", json!({"name": "echo", "arguments": {}}));
    let mut lying = Modern::routing_headers(&msg);
    lying[2].1 = "delete_x".into();
    assert_eq!(c.send(&msg, &lying).await.error_code(), -32020);

    // Both say the denied tool: the policy refuses it.
    let a = c.call("delete_x", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.rule(), "Denied", "{a:?}");
    assert_eq!(a.error_code(), -32003);
    assert_eq!(seen.count(), before, "no call reached the upstream");
    assert!(seen.with_method("tools/call").is_empty());
    // Audit records are written by a thread: wait for the second, then check there are
    // no more.
    let mismatches = || {
        gw.audit_records()
            .into_iter()
            .filter(|r| r["rule"] == "HeaderMismatch")
            .count()
    };
    crate::support::eventually::eventually(
        "the second HeaderMismatch audit record",
        Duration::from_secs(10),
        async || {
            let n = mismatches();
            if n >= 2 { Ok(()) } else { Err(n) }
        },
    )
    .await;
    assert_eq!(mismatches(), 2, "one audit record per refused request");
    gw.wait_metric("mcp_gateway_denied_total{rule=\"HeaderMismatch\"}", 2.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_requests_are_authenticated_rate_limited_and_audited() {
    let (stub, seen) = modern_stub().await;
    let cfg = policy_config(json!({
        "policy": {"deny": ["delete_*"],
                   "rateLimit": {"requestsPerMinute": 1, "burst": 3, "per": "Binding"}}
    }));
    let gw = GatewayProcess::start(&stub.url("/mcp"), &cfg, &[]).await;

    let mut anon = Modern::new(&gw.url(), None);
    let a = anon.call("echo", json!({})).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert!(a.headers.contains_key("www-authenticate"));
    let mut wrong = Modern::new(&gw.url(), Some("not-a-token"));
    assert_eq!(wrong.call("echo", json!({})).await.status, 401);
    assert_eq!(
        seen.count(),
        0,
        "nothing unauthenticated reaches the upstream"
    );

    // Three stateless requests fit the burst; the fourth is refused.
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    for _ in 0..3 {
        let a = c.call("echo", json!({})).await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let a = c.call("echo", json!({})).await;
    assert_eq!(a.status, 429, "{a:?}");
    assert_eq!(a.rule(), "RateLimited");
    assert!(a.headers.contains_key("retry-after"));
    // Legacy (session) requests of the same binding share the bucket.
    let mut legacy = Mcp::new(&gw.url(), Some(AGENT));
    let init = legacy
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}),
        )
        .await;
    assert_eq!(init.status, 429, "{init:?}");
    // Another binding has its own bucket.
    let mut other = Modern::new(&gw.url(), Some(OTHER));
    assert_eq!(other.call("echo", json!({})).await.status, 200);

    let records = gw.audit_records();
    let unknown = records.iter().filter(|r| r["binding"] == "unknown").count();
    assert_eq!(unknown, 2, "{records:?}");
    let limited = records
        .iter()
        .filter(|r| r["binding"] == "agent" && r["rule"] == "RateLimited")
        .count();
    assert_eq!(limited, 2, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_tools_lists_are_private_and_unfiltered_ones_keep_their_scope() {
    let (stub, _seen) = modern_stub().await;
    let gw = GatewayProcess::start(&stub.url("/mcp"), &policy_config(json!({})), &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    let a = c.request("tools/list", json!({})).await;
    assert_eq!(a.tool_names(), ["echo", "ask"]);
    assert_eq!(a.body["result"]["cacheScope"], "private", "{a:?}");
    assert_eq!(
        a.body["result"]["ttlMs"], 60000,
        "the TTL is the upstream's"
    );
    // The probe's unfiltered view is its own too.
    let mut probe = Modern::new(&gw.url(), Some(PROBE));
    let a = probe.request("tools/list", json!({})).await;
    assert_eq!(a.tool_names(), ["echo", "delete_x", "ask"]);
    assert_eq!(a.body["result"]["cacheScope"], "private", "{a:?}");
    drop(gw);

    // No rule that could hide a tool from anyone: every caller sees the upstream's list.
    let open = config(json!({
        "auth": "Required",
        "bindings": [{"name": "agent", "tokenSha256": [hash(AGENT)]}],
    }));
    let gw = GatewayProcess::start(&stub.url("/mcp"), &open, &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    let a = c.request("tools/list", json!({})).await;
    assert_eq!(a.tool_names(), ["echo", "delete_x", "ask"]);
    assert_eq!(a.body["result"]["cacheScope"], "public", "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_may_discover_but_still_not_call() {
    let (stub, seen) = modern_stub().await;
    let gw = GatewayProcess::start(&stub.url("/mcp"), &policy_config(json!({})), &[]).await;
    let mut probe = Modern::new(&gw.url(), Some(PROBE));
    let a = probe.request("server/discover", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["result"]["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(seen.with_method("server/discover").len(), 1);
    let a = probe.call("echo", json!({})).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.rule(), "ReadOnly");
    assert!(seen.with_method("tools/call").is_empty());
    gw.wait_metric(
        "mcp_gateway_requests_total{method=\"server/discover\",tool=\"\",outcome=\"allowed\"}",
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_required_results_and_listen_streams_pass_through() {
    let (stub, seen) = modern_stub().await;
    // Answers must come within 1 s; a listen stream lives longer than that.
    let gw = GatewayProcess::start(
        &stub.url("/mcp"),
        &policy_config(json!({})),
        &["--upstream-timeout-seconds", "1"],
    )
    .await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    let a = c.call("ask", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["result"]["resultType"], "input_required", "{a:?}");
    assert_eq!(a.body["result"]["requestState"], "opaque-state-1");
    assert!(a.body["result"]["inputRequests"]["confirm"].is_object());
    // The retry is a new tools/call, decided like the first.
    let a = c
        .request(
            "tools/call",
            json!({"name": "ask", "arguments": {}, "requestState": "opaque-state-1",
                   "inputResponses": {"confirm": {"action": "accept", "content": {}}}}),
        )
        .await;
    assert_eq!(a.text(), "called ask", "{a:?}");
    let retried = seen.with_method("tools/call");
    assert_eq!(
        retried.last().unwrap().1["params"]["requestState"],
        "opaque-state-1"
    );

    // subscriptions/listen: the stream outlives the upstream timeout, every frame passes.
    let msg = c.message(
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let started = std::time::Instant::now();
    let resp = http()
        .post(gw.url())
        .bearer_auth(AGENT)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .body(msg.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let frames = sse_messages(&text);
    let methods: Vec<&str> = frames
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("(result)"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/subscriptions/acknowledged",
            "notifications/tools/list_changed",
            "(result)"
        ],
        "{text}"
    );
    assert_eq!(frames[2]["id"], msg["id"]);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let r = gw
        .wait_audit("the listen request", |r| {
            r["method"] == "subscriptions/listen"
        })
        .await;
    assert_eq!(r["outcome"], "allowed", "{r}");
}

/// A modern-only upstream behind the gateway with a prefix and a deny rule: the denied
/// tool is hidden and refused, the rewritten request (name and `Mcp-Name`, `Mcp-Param-*`
/// unchanged) is accepted by the real server.
async fn modern_only_upstream_accepts_the_rewritten_request(upstream: &support::PeerProcess) {
    let (rec, seen) = recorder(upstream.url("/mcp")).await;
    let cfg = policy_config(json!({"toolPrefix": "x_", "policy": {"deny": ["add"]}}));
    let gw = GatewayProcess::start(&rec.url("/mcp"), &cfg, &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    let list = c.request("tools/list", json!({})).await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.tool_names(), ["x_echo", "x_region_echo"]);
    let a = c.call("x_echo", json!({"text": "hi"})).await;
    assert_eq!(a.text(), "echo: hi", "{a:?}");
    let (h, _) = seen.with_method("tools/call").pop().unwrap();
    assert_eq!(values(&h, "mcp-name"), ["echo"]);
    // An argument mirrored in Mcp-Param-Region passes unchanged and the server checks it.
    let msg = c.message(
        "tools/call",
        json!({"name": "x_region_echo", "arguments": {"region": "eu", "text": "t"}}),
    );
    let mut headers = Modern::routing_headers(&msg);
    headers.push(("Mcp-Param-Region".into(), "eu".into()));
    let a = c.send(&msg, &headers).await;
    assert_eq!(a.text(), "eu: t", "{a:?}");
    // The upstream's own check still runs: a wrong Mcp-Param value is its -32020.
    let msg = c.message(
        "tools/call",
        json!({"name": "x_region_echo", "arguments": {"region": "eu", "text": "t"}}),
    );
    let mut headers = Modern::routing_headers(&msg);
    headers.push(("Mcp-Param-Region".into(), "us".into()));
    let a = c.send(&msg, &headers).await;
    assert_eq!(a.error_code(), -32020, "{a:?}");
    // Denied, whatever the prefix: refused by the gateway.
    let before = seen.with_method("tools/call").len();
    assert_eq!(
        c.call("x_add", json!({"a": 1, "b": 2})).await.rule(),
        "Denied"
    );
    assert_eq!(seen.with_method("tools/call").len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_modern_only_server_accepts_the_rewritten_request() {
    let upstream = EraServer::PyModernOnly.http();
    modern_only_upstream_accepts_the_rewritten_request(&upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_modern_only_server_accepts_the_rewritten_request() {
    let upstream = EraServer::TsModernOnly.http();
    modern_only_upstream_accepts_the_rewritten_request(&upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_checked_for_stateless_calls() {
    let upstream = EraServer::PyModernOnly.http();
    // The pins: the definitions as the upstream lists them.
    let mut direct = Modern::new(&upstream.url("/mcp"), None);
    let list = direct.request("tools/list", json!({})).await;
    let tools = list.body["result"]["tools"].as_array().unwrap().clone();
    let pin = |name: &str| {
        let t = tools.iter().find(|t| t["name"] == name).unwrap();
        json!({"name": name, "sha256": mcp_operator::prober::inventory::tool_sha256(t)})
    };
    let cfg = policy_config(json!({
        "policy": {"pinning": "Enforce"},
        "pinnedTools": [pin("echo"), {"name": "add", "sha256": "00"}],
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    // First thing: a call, so the gateway must list the tools itself, in the modern era.
    let a = c.call("echo", json!({"text": "pinned"})).await;
    assert_eq!(a.text(), "echo: pinned", "{a:?}");
    assert_eq!(
        c.call("add", json!({"a": 1, "b": 2})).await.rule(),
        "Changed"
    );
    assert_eq!(c.call("region_echo", json!({})).await.rule(), "Unpinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_are_alike_in_both_eras() {
    let upstream = EraServer::PyDual.http();
    let cfg = policy_config(json!({"policy": {"deny": ["add"], "audit": {"level": "Hashes"}}}));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut legacy = Mcp::new(&gw.url(), Some(AGENT));
    legacy.initialize().await;
    let a = legacy.call("echo", json!({"text": "same"})).await;
    assert_eq!(a.text(), "echo: same", "{a:?}");
    assert_eq!(
        legacy.call("add", json!({"a": 1, "b": 2})).await.rule(),
        "Denied"
    );
    let mut modern = Modern::new(&gw.url(), Some(AGENT));
    let a = modern.call("echo", json!({"text": "same"})).await;
    assert_eq!(a.text(), "echo: same", "{a:?}");
    assert_eq!(
        modern.call("add", json!({"a": 1, "b": 2})).await.rule(),
        "Denied"
    );
    assert_eq!(legacy.list_tools().await.status, 200);
    assert_eq!(modern.request("tools/list", json!({})).await.status, 200);

    // A record by era and tool name (tools/list: by method).
    let find = |era: &str, tool: &str| {
        let records = gw.audit_records();
        records
            .into_iter()
            .find(|r| r["era"] == era && (r["tool"] == tool || r["method"] == tool))
            .unwrap_or_else(|| panic!("no {era} record for {tool}: {}", gw.stdout()))
    };
    gw.wait_audit("the modern list", |r| {
        r["era"] == "modern" && r["method"] == "tools/list"
    })
    .await;
    // The envelope a modern request carries in params._meta is not what was asked:
    // the list's audited params hash alike in both eras.
    for tool in ["echo", "add", "tools/list"] {
        let (l, m) = (find("legacy", tool), find("modern", tool));
        let keys = |r: &Value| {
            let mut k: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&l), keys(&m), "same fields:\n{l}\n{m}");
        for field in [
            "binding",
            "method",
            "tool",
            "outcome",
            "rule",
            "argumentsSha256",
            "server",
        ] {
            assert_eq!(l.get(field), m.get(field), "{field}:\n{l}\n{m}");
        }
        assert_eq!(l["protocolVersion"], "2025-11-25");
        assert_eq!(m["protocolVersion"], "2026-07-28");
    }
}

/// Runs an official client driver (`tests/peers/{py,ts}_era_client.*`) and parses its one
/// JSON line.
async fn client_run(program: std::path::PathBuf, script: &str, args: Vec<String>) -> Value {
    let script = support::repo_path(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .arg(script)
            .args(args)
            .output()
            .expect("running the client driver")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "not one JSON line: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_modern_clients_get_the_policy_through_the_gateway() {
    let upstream = EraServer::TsModernOnly.http();
    let cfg = config(json!({"auth": "None", "toolPrefix": "x_", "policy": {"deny": ["add"]}}));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let drivers = [
        (
            support::python(),
            "tests/peers/py_era_client.py",
            "2026-07-28",
        ),
        (support::python(), "tests/peers/py_era_client.py", "auto"),
        (node22().into(), "tests/peers/ts_era_client.cjs", "auto"),
    ];
    for (program, script, mode) in drivers {
        let args =
            |tool: &str, a: &str| vec![mode.to_owned(), gw.url(), tool.to_owned(), a.to_owned()];
        // The client mirrors `region` in Mcp-Param-Region and names x_region_echo in
        // Mcp-Name; the upstream gets region_echo in both.
        let run = client_run(
            program.clone(),
            script,
            args("x_region_echo", r#"{"region": "eu", "text": "hi"}"#),
        )
        .await;
        assert_eq!(
            run["protocolVersion"], "2026-07-28",
            "{script} {mode}: {run}"
        );
        assert_eq!(
            run["tools"],
            json!(["x_echo", "x_region_echo"]),
            "{script} {mode}: {run}"
        );
        assert_eq!(
            run["result"]["content"][0]["text"], "eu: hi",
            "{script} {mode}: {run}"
        );
        let denied = client_run(program, script, args("x_add", r#"{"a": 1, "b": 2}"#)).await;
        let text = denied.to_string();
        assert!(
            text.contains("Denied") && !text.contains("\"3\""),
            "{script} {mode}: {denied}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_call_past_its_timeout_is_cancelled_by_closing_its_connection() {
    let (stub, seen) = modern_stub().await;
    let cfg = policy_config(json!({"policy": {"limits": {"callTimeoutMs": 500}}}));
    let gw = GatewayProcess::start(&stub.url("/mcp"), &cfg, &[]).await;
    let mut c = Modern::new(&gw.url(), Some(AGENT));
    let a = c.call("slow", json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.rule(), "Timeout", "{a:?}");
    // The upstream's request is abandoned (its connection closed) …
    crate::support::eventually::eventually(
        "the upstream's call to be abandoned",
        Duration::from_secs(10),
        async || seen.abandoned() > 0,
    )
    .await;
    // … and no session-era notifications/cancelled (which a modern server cannot place:
    // no session, no envelope) is sent: none, watched for a while after the abandonment.
    crate::support::eventually::assert_unchanged(
        "the notifications/cancelled the upstream saw",
        Duration::from_millis(300),
        0,
        async || seen.with_method("notifications/cancelled").len(),
    )
    .await;
}
