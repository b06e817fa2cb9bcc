//! Request bodies (issue 13, items 1, 2 and 6): the gateway forwards only what it parsed
//! strictly and decided on. Every class of malformed body — encoding, number range,
//! nesting depth, duplicate keys, trailing data, batches — carries a call to a denied
//! tool and is sent to a Node (server-everything) and a Python SDK upstream; a recorder
//! between gateway and upstream shows the upstream never received it. A caller without a
//! valid token is refused before its body is read, with one audit record; and audit
//! redaction always covers the built-in secret keys.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::gateway::harness::{GatewayProcess, Mcp, config, hash, http, sse_messages};
use crate::support;

const TOKEN: &str = "tok-body-agent-5b1f";

/// A pass-through proxy in front of the real upstream that keeps every request body it
/// forwards: what the upstream received.
struct Recorder {
    stub: support::Stub,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    async fn start(target: String) -> Recorder {
        let _ = http(); // installs the crypto provider
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let client = reqwest::Client::builder().build().unwrap();
        let seen = bodies.clone();
        let router = axum::Router::new().fallback(move |req: Request<Body>| {
            let (client, target, seen) = (client.clone(), target.clone(), seen.clone());
            async move { relay(&client, &target, &seen, req).await }
        });
        Recorder {
            stub: support::serve(router).await,
            bodies,
        }
    }

    fn url(&self) -> String {
        self.stub.url("/mcp")
    }

    /// Whether any body the upstream received contains `marker`.
    fn saw(&self, marker: &str) -> bool {
        let m = marker.as_bytes();
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.windows(m.len()).any(|w| w == m))
    }
}

async fn relay(
    client: &reqwest::Client,
    target: &str,
    seen: &Mutex<Vec<Vec<u8>>>,
    req: Request<Body>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    if !bytes.is_empty() {
        seen.lock().unwrap().push(bytes.to_vec());
    }
    let mut out = client.request(parts.method, target);
    for name in [
        "content-type",
        "accept",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    ] {
        if let Some(v) = parts.headers.get(name) {
            out = out.header(name, v.clone());
        }
    }
    let Ok(resp) = out.body(bytes).send().await else {
        return Response::builder().status(502).body(Body::empty()).unwrap();
    };
    let mut back = Response::builder().status(resp.status());
    for name in ["content-type", "mcp-session-id", "cache-control"] {
        if let Some(v) = resp.headers().get(name) {
            back = back.header(name, v.clone());
        }
    }
    back.body(Body::from_stream(resp.bytes_stream())).unwrap()
}

/// One upstream with the gateway in front (through the recorder): `denied` is denied by
/// policy, `allowed` is not.
struct Setup {
    _peer: support::PeerProcess,
    recorder: Recorder,
    gw: GatewayProcess,
    client: Mcp,
    denied: &'static str,
    denied_args: Value,
    allowed: &'static str,
}

impl Setup {
    async fn node() -> Setup {
        let peer = support::server_everything("streamableHttp");
        Self::start(peer, "get-sum", json!({"a": 1, "b": 2}), "echo").await
    }

    async fn python() -> Setup {
        let peer = support::python_server("streamable-http");
        Self::start(peer, "delete_note", json!({"note_id": "n1"}), "echo").await
    }

    async fn start(
        peer: support::PeerProcess,
        denied: &'static str,
        denied_args: Value,
        allowed: &'static str,
    ) -> Setup {
        let recorder = Recorder::start(peer.url("/mcp")).await;
        let cfg = config(json!({
            "auth": "Required",
            "policy": {"deny": [denied]},
            "bindings": [{"name": "agent", "tokenSha256": [hash(TOKEN)]}]
        }));
        let gw = GatewayProcess::start(&recorder.url(), &cfg, &[]).await;
        let mut client = Mcp::new(&gw.url(), Some(TOKEN));
        client.initialize().await;
        Setup {
            _peer: peer,
            recorder,
            gw,
            client,
            denied,
            denied_args,
            allowed,
        }
    }

    /// POSTs raw bytes in the client's session: status and the JSON-RPC answer (JSON, or
    /// the first message of an SSE answer).
    async fn post_raw(&self, body: Vec<u8>) -> (u16, Value) {
        self.post_typed(body, "application/json").await
    }

    /// [`post_raw`](Self::post_raw) with another `Content-Type` (one header per line).
    async fn post_typed(&self, body: Vec<u8>, content_type: &str) -> (u16, Value) {
        let mut req = http().post(&self.client.url).bearer_auth(TOKEN);
        for value in content_type.lines() {
            req = req.header("content-type", value);
        }
        let mut req = req
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body);
        if let Some(s) = &self.client.session {
            req = req.header("mcp-session-id", s);
        }
        let resp = req.send().await.expect("POST to the gateway");
        let status = resp.status().as_u16();
        let sse = resp.headers().get("content-type").is_some_and(|v| {
            v.to_str()
                .unwrap_or_default()
                .starts_with("text/event-stream")
        });
        let text = resp.text().await.unwrap_or_default();
        let body = if sse {
            sse_messages(&text)
                .into_iter()
                .next()
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        (status, body)
    }

    /// A `ping` whose audit record marks a place in the audit log; its index there.
    async fn sentinel(&mut self, tag: &str) -> usize {
        let id = format!("sentinel-{tag}");
        let a = self
            .client
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
            .await;
        assert_eq!(a.status, 200, "ping {tag}: {a:?}");
        self.gw.wait_audit(&id, |r| r["id"] == id.as_str()).await;
        self.gw
            .audit_records()
            .iter()
            .position(|r| r["id"] == id.as_str())
            .unwrap()
    }

    /// The denied call with `meta` (raw JSON bytes) as `params._meta.x`; `marker` is its id.
    fn denied_call(&self, marker: &str, meta: &[u8]) -> Vec<u8> {
        let mut b = format!(
            r#"{{"jsonrpc":"2.0","id":"{marker}","method":"tools/call","params":{{"name":"{}","arguments":{},"_meta":{{"x":"#,
            self.denied, self.denied_args
        )
        .into_bytes();
        b.extend_from_slice(meta);
        b.extend_from_slice(b"}}}");
        b
    }

    /// Every attack: (marker, body, expected JSON-RPC code).
    fn attacks(&self) -> Vec<(&'static str, Vec<u8>, i64)> {
        const PARSE: i64 = -32700;
        const INVALID: i64 = -32600;
        let (denied, args, allowed) = (self.denied, &self.denied_args, self.allowed);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(self.denied_call("atk-bom", b"1"));
        let mut trailing = self.denied_call("atk-trailing", b"1");
        trailing.extend_from_slice(b" x");
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        vec![
            ("atk-bom", bom, PARSE),
            ("atk-utf8", self.denied_call("atk-utf8", b"\"\xff\xfe\""), PARSE),
            (
                "atk-cesu",
                self.denied_call("atk-cesu", b"\"\xed\xa0\x80\""),
                PARSE,
            ),
            (
                "atk-surrogate",
                self.denied_call("atk-surrogate", br#""\ud800""#),
                PARSE,
            ),
            (
                "atk-bigint",
                self.denied_call("atk-bigint", b"123456789012345678901234567890"),
                PARSE,
            ),
            (
                "atk-2pow53",
                self.denied_call("atk-2pow53", b"9007199254740993"),
                PARSE,
            ),
            ("atk-inf", self.denied_call("atk-inf", b"1e400"), PARSE),
            // 66 levels: past the gateway's cap of 64, within serde_json's 128.
            ("atk-deep66", self.denied_call("atk-deep66", &deep(63)), PARSE),
            // Past serde_json's own limit: today forwarded unread.
            ("atk-deep200", self.denied_call("atk-deep200", &deep(200)), PARSE),
            (
                // A first-key-wins parser would run the denied call; serde_json saw a ping.
                "atk-dup-method",
                format!(
                    r#"{{"jsonrpc":"2.0","id":"atk-dup-method","method":"tools/call","params":{{"name":"{denied}","arguments":{args}}},"method":"ping"}}"#
                )
                .into_bytes(),
                PARSE,
            ),
            (
                "atk-dup-name",
                format!(
                    r#"{{"jsonrpc":"2.0","id":"atk-dup-name","method":"tools/call","params":{{"name":"{denied}","arguments":{args},"name":"{allowed}"}}}}"#
                )
                .into_bytes(),
                PARSE,
            ),
            (
                // The same key once escaped: parsers unescape before comparing.
                "atk-dup-escaped",
                format!(
                    r#"{{"jsonrpc":"2.0","id":"atk-dup-escaped","method":"tools/call","params":{{"name":"{denied}","arguments":{args},"n\u0061me":"{allowed}"}}}}"#
                )
                .into_bytes(),
                PARSE,
            ),
            ("atk-trailing", trailing, PARSE),
            (
                "atk-batch",
                format!(
                    r#"[{},{{"jsonrpc":"2.0","id":"atk-batch-ping","method":"ping"}}]"#,
                    String::from_utf8(self.denied_call("atk-batch", b"1")).unwrap()
                )
                .into_bytes(),
                INVALID,
            ),
            (
                "atk-batch-allowed",
                format!(
                    r#"[{{"jsonrpc":"2.0","id":"atk-batch-allowed","method":"tools/call","params":{{"name":"{allowed}","arguments":{{"message":"m"}}}}}}]"#
                )
                .into_bytes(),
                INVALID,
            ),
            ("atk-scalar", br#""atk-scalar tools/call""#.to_vec(), INVALID),
            // One object, but not a message the gateway can decide on.
            (
                "atk-id-null",
                format!(
                    r#"{{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{{"name":"{denied}","arguments":{args},"_meta":{{"m":"atk-id-null"}}}}}}"#
                )
                .into_bytes(),
                INVALID,
            ),
            (
                "atk-id-float",
                format!(
                    r#"{{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{{"name":"{denied}","arguments":{args},"_meta":{{"m":"atk-id-float"}}}}}}"#
                )
                .into_bytes(),
                INVALID,
            ),
            (
                "atk-name-array",
                format!(
                    r#"{{"jsonrpc":"2.0","id":"atk-name-array","method":"tools/call","params":{{"name":["{denied}"],"arguments":{args}}}}}"#
                )
                .into_bytes(),
                INVALID,
            ),
            (
                "atk-no-method",
                format!(
                    r#"{{"jsonrpc":"2.0","id":"atk-no-method","params":{{"name":"{denied}","arguments":{args}}}}}"#
                )
                .into_bytes(),
                INVALID,
            ),
        ]
    }
}

/// Sends every attack; returns a line per attack that got through or was not answered
/// as the rule says (empty when the rule holds).
async fn run_attacks(s: &mut Setup) -> Vec<String> {
    // Controls: the policy holds for a well-formed call, an allowed call reaches the
    // upstream, and the recorder sees it (so "never saw" below can fail).
    let denied = s.client.call(s.denied, s.denied_args.clone()).await;
    assert_eq!(denied.error_code(), -32003, "{denied:?}");
    let ok = s
        .client
        .post(
            json!({"jsonrpc": "2.0", "id": "control-allowed", "method": "tools/call",
                     "params": {"name": s.allowed, "arguments": {"message": "control"}}}),
        )
        .await;
    assert!(ok.body.get("result").is_some(), "{ok:?}");
    assert!(s.recorder.saw("control-allowed"));
    assert!(!s.recorder.saw("atk-"));

    let mut failures = Vec::new();
    let mut attacks: Vec<_> = s
        .attacks()
        .into_iter()
        .map(|(marker, body, code)| (marker, body, code, "application/json"))
        .collect();
    // The denied name spelled in UTF-7 ("+AC0-" is "-"): an upstream that honours the
    // declared charset (the TypeScript SDK's express transport did) reads the denied tool.
    let utf7 = format!(
        r#"{{"jsonrpc":"2.0","id":"atk-charset","method":"tools/call","params":{{"name":"{}","arguments":{}}}}}"#,
        s.denied.replace('-', "+AC0-").replace('_', "+AF8-"),
        s.denied_args
    );
    let utf7_type = "application/json; charset=utf-7";
    attacks.push(("atk-charset", utf7.clone().into_bytes(), -32700, utf7_type));
    // The same behind a first, harmless Content-Type: the upstream receives both.
    let two_types = "application/json\napplication/json; charset=utf-7";
    let utf7 = utf7.replace("atk-charset", "atk-charset-second");
    attacks.push(("atk-charset-second", utf7.into_bytes(), -32700, two_types));
    for (i, (marker, body, code, content_type)) in attacks.into_iter().enumerate() {
        // Sentinel ids must not contain the marker: they do reach the upstream.
        let before = s.sentinel(&format!("{i}-before")).await;
        let (status, answer) = s.post_typed(body, content_type).await;
        let after = s.sentinel(&format!("{i}-after")).await;
        let records: Vec<Value> = s.gw.audit_records()[before + 1..after].to_vec();
        let mut wrong = Vec::new();
        if s.recorder.saw(marker) {
            wrong.push(format!("the upstream received it and answered {answer}"));
        }
        if status != 400 || answer["error"]["code"] != code || answer["id"] != Value::Null {
            wrong.push(format!("answered {status} {answer}, not 400 with {code}"));
        }
        let rule = if code == -32700 {
            "Malformed"
        } else {
            "InvalidMessage"
        };
        let audited = records.len() == 1
            && records[0]["outcome"] == "denied"
            && records[0]["rule"] == rule
            && records[0]["binding"] == "agent";
        if !audited {
            wrong.push(format!("audit records {records:?}, not one denied {rule}"));
        }
        if !wrong.is_empty() {
            failures.push(format!("{marker}: {}", wrong.join("; ")));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_never_reach_a_node_upstream() {
    let mut s = Setup::node().await;
    let failures = run_attacks(&mut s).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_never_reach_a_python_upstream() {
    let mut s = Setup::python().await;
    let failures = run_attacks(&mut s).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Writes `head` (and a partial body) on a raw connection and returns the first line of
/// the answer, waiting at most `wait`; the body is never finished.
async fn answer_to_unfinished(port: u16, head: &str, partial: &[u8], wait: Duration) -> String {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(partial).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(_) => return format!("no answer within {wait:?}"),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_valid_token_is_refused_before_its_body_is_read() {
    let mut s = Setup::node().await;
    let port = s.gw.port;
    let head = |auth: &str, framing: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{auth}{framing}\r\n"
        )
    };
    let wait = Duration::from_secs(5);
    let mut failures = Vec::new();
    // A body that never ends (chunked, first chunk only), without a token and with a
    // wrong one; a declared 10 GiB body.
    let chunk = b"11\r\n{\"jsonrpc\":\"2.0\",\r\n";
    for (what, auth, framing, partial) in [
        (
            "no token, endless body",
            "",
            "Transfer-Encoding: chunked\r\n",
            &chunk[..],
        ),
        (
            "wrong token, endless body",
            "Authorization: Bearer not-the-token\r\n",
            "Transfer-Encoding: chunked\r\n",
            &chunk[..],
        ),
        (
            "no token, 10 GiB declared",
            "",
            "Content-Length: 10737418240\r\n",
            &b"{"[..],
        ),
    ] {
        let before = s.sentinel(&format!("{what} before")).await;
        let started = Instant::now();
        let line = answer_to_unfinished(port, &head(auth, framing), partial, wait).await;
        if !line.starts_with("HTTP/1.1 401") {
            failures.push(format!("{what}: {line} after {:?}", started.elapsed()));
            continue;
        }
        let after = s.sentinel(&format!("{what} after")).await;
        let records = s.gw.audit_records()[before + 1..after].to_vec();
        if !one_unauthorized_record(&records, "POST") {
            failures.push(format!("{what}: audit records {records:?}"));
        }
    }
    // GET (the stream) and DELETE without a token: one record each, too.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let before = s.sentinel(&format!("{method} before")).await;
        let resp = http()
            .request(method.clone(), &s.client.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", s.client.session.clone().unwrap())
            .send()
            .await
            .unwrap();
        let after = s.sentinel(&format!("{method} after")).await;
        let records = s.gw.audit_records()[before + 1..after].to_vec();
        if resp.status() != 401 || !one_unauthorized_record(&records, method.as_str()) {
            failures.push(format!(
                "{method}: {} and records {records:?}",
                resp.status()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Exactly one record: a 401 for an unknown caller, naming the HTTP method (no JSON-RPC
/// message was read).
fn one_unauthorized_record(records: &[Value], method: &str) -> bool {
    records.len() == 1
        && records[0]["rule"] == "Unauthorized"
        && records[0]["binding"] == "unknown"
        && records[0]["outcome"] == "denied"
        && records[0]["method"] == method
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_one_answer_and_one_audit_record() {
    let mut s = Setup::python().await;
    // Without a valid token: 401, one record, although the body holds three requests.
    let batch: Vec<Value> = (0..3)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": format!("b-{i}"), "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"message": "m"}}})
        })
        .collect();
    let before = s.sentinel("batch-before").await;
    let resp = http()
        .post(&s.client.url)
        .bearer_auth("not-the-token")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Value::Array(batch.clone()).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body.is_object(),
        "one JSON-RPC error, not one per element: {body}"
    );
    let after = s.sentinel("batch-after").await;
    let records = s.gw.audit_records()[before + 1..after].to_vec();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["rule"], "Unauthorized");

    // With a valid token: 400, one JSON-RPC error, one record, nothing forwarded.
    let before = s.sentinel("batch2-before").await;
    let (status, answer) = s
        .post_raw(Value::Array(batch).to_string().into_bytes())
        .await;
    let after = s.sentinel("batch2-after").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.is_object(), "{answer}");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    let records = s.gw.audit_records()[before + 1..after].to_vec();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["rule"], "InvalidMessage");
    assert!(!s.recorder.saw("\"b-0\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_audit_redacts_built_in_keys_with_a_hand_written_key_list() {
    let upstream = support::server_everything("streamableHttp");
    // A hand-written config whose redactKeys lists neither token nor password.
    let cfg = config(json!({
        "policy": {"audit": {"level": "Payloads", "redactKeys": ["SSN"]}},
        "bindings": [{"name": "agent", "tokenSha256": [hash(TOKEN)]}]
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut c = Mcp::new(&gw.url(), Some(TOKEN));
    c.initialize().await;
    let secret_keys = [
        "github_token",
        "Access-Token",
        "refresh.token",
        "id_token",
        "client_secret",
        "DB_PASSWORD",
        "passwd",
        "X-Api-Key",
        "apiKey",
        "Authorization",
        "Cookie",
        "set-cookie",
        "private_key",
        "credentials",
        "ssn",
    ];
    let mut args = json!({"message": "visible", "tokenizer": "visible-too"});
    let mut nested = json!({});
    for (i, k) in secret_keys.iter().enumerate() {
        let v = format!("SECRET-VALUE-{i}");
        args[k] = json!(v.clone());
        nested[k] = json!({"inner": v});
    }
    args["nested"] = json!([nested]);
    let id = c.next_id;
    let a = c.call("echo", args).await;
    assert!(a.body.get("result").is_some(), "{a:?}");
    let rec = gw.wait_audit("the echo call", |r| r["id"] == id).await;
    let logged = &rec["arguments"];
    assert_eq!(logged["message"], "visible", "{rec}");
    assert_eq!(logged["tokenizer"], "visible-too", "{rec}");
    let mut shown = Vec::new();
    for k in secret_keys {
        if logged[k] != "[REDACTED]" || logged["nested"][0][k] != "[REDACTED]" {
            shown.push(k);
        }
    }
    assert!(shown.is_empty(), "not redacted: {shown:?} in {rec}");
    assert!(!gw.stdout().contains("SECRET-VALUE"), "{}", gw.stdout());
}

/// Sanity for the attacks: what a body the gateway accepts looks like upstream (the
/// original bytes, when nothing is rewritten).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strictly_parsed_body_is_forwarded_as_sent() {
    let s = Setup::node().await;
    let body = br#"{ "jsonrpc" : "2.0", "id" : "as-sent-1", "method" : "tools/call", "params" : {"name":"echo","arguments":{"message":"caf\u00e9 1.50 \ud83d\ude00"},"_meta":{"n":1.50,"z":-0}} }"#;
    let (status, answer) = s.post_raw(body.to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("result").is_some(), "{answer}");
    let got = s.recorder.bodies.lock().unwrap().clone();
    assert!(got.iter().any(|b| b == body), "forwarded bodies: {got:?}");
}
