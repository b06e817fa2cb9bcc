//! The gateway under test ([`GatewayProcess`]: the real binary, its stdout/stderr captured
//! to files, its config file rewritten atomically like kubelet does) and a raw MCP client
//! ([`Mcp`]) that reads JSON and SSE answers alike.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::eventually::eventually;

/// A plain HTTP client for the tests (installs the ring crypto provider reqwest needs).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `token_sha256` of the gateway config.
pub fn hash(token: &str) -> String {
    mcp_operator::gateway::config::token_sha256(token)
}

/// A config file body for server "everything" in namespace "tests", with `extra` merged in.
pub fn config(extra: Value) -> Value {
    let mut base = json!({"server": {"name": "everything", "namespace": "tests"}});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The gateway binary running in front of an upstream; killed on drop.
pub struct GatewayProcess {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl GatewayProcess {
    /// Starts the gateway with `config` and waits for `/readyz`.
    pub async fn start(upstream: &str, config: &Value, extra_args: &[&str]) -> GatewayProcess {
        // Everything that can panic happens before the spawn, so no gateway is orphaned.
        let http = http();
        let dir = tempfile::tempdir().expect("temp dir");
        write_atomically(&dir.path().join("config.json"), &config.to_string());
        let child = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
            .arg("gateway")
            .arg("--config")
            .arg(dir.path().join("config.json"))
            // Port 0: the gateway says where it listens (no free-port race between tests).
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--upstream")
            .arg(upstream)
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("starting mcp-operator gateway");
        let mut gw = GatewayProcess {
            child,
            port: 0,
            dir,
            http,
        };
        gw.port = gw.wait_listening().await;
        gw.wait_ready().await;
        gw
    }

    /// The port from the "gateway listening" log line (20 s deadline).
    async fn wait_listening(&mut self) -> u16 {
        eventually(
            "the gateway's \"gateway listening\" log line",
            Duration::from_secs(20),
            async || {
                let stderr = self.stderr();
                let port = stderr.lines().find_map(|l| {
                    let v: Value = serde_json::from_str(l).ok()?;
                    (v["message"] == "gateway listening")
                        .then(|| v["listen"].as_str()?.rsplit(':').next()?.parse().ok())
                        .flatten()
                });
                if port.is_none()
                    && let Ok(Some(status)) = self.child.try_wait()
                {
                    panic!("the gateway exited with {status}:\n{stderr}");
                }
                port.ok_or_else(|| format!("stderr:\n{stderr}"))
            },
        )
        .await
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// Replaces the config file atomically (write elsewhere, rename over).
    pub fn write_config(&self, text: &str) {
        write_atomically(&self.config_path(), text);
    }

    /// Polls `/readyz` until 200 (20 s deadline).
    pub async fn wait_ready(&self) {
        eventually(
            "the gateway's /readyz to answer 200",
            Duration::from_secs(20),
            async || match self
                .http
                .get(format!("{}/readyz", self.base()))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => Ok(()),
                other => Err(format!(
                    "{:?}; stderr:\n{}",
                    other.map(|r| r.status()),
                    self.stderr()
                )),
            },
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one metric line (exact series text before the space), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Polls `/metrics` until `series` reaches `at_least` (20 s deadline).
    pub async fn wait_metric(&self, series: &str, at_least: f64) {
        eventually(
            &format!("{series} to reach {at_least}"),
            Duration::from_secs(20),
            async || {
                let value = self.metric(series).await;
                if value >= at_least {
                    Ok(())
                } else {
                    Err(format!("{series} {value}; stderr:\n{}", self.stderr()))
                }
            },
        )
        .await
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Audit records so far (stdout lines with target `audit`).
    pub fn audit_records(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    }

    /// Polls until an audit record matches (records are written by a thread; 10 s deadline).
    pub async fn wait_audit(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        eventually(
            &format!("an audit record for {what}"),
            Duration::from_secs(10),
            async || {
                self.audit_records()
                    .into_iter()
                    .rev()
                    .find(|r| pred(r))
                    .ok_or_else(|| format!("stdout:\n{}", self.stdout()))
            },
        )
        .await
    }
}

fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python SDK test server with the gateway's extra tools (`big`, `slow`,
/// `cancelled_count`), in `streamable-http` or `stateless-json` mode.
pub fn python_server_with_gateway_tools(mode: &str) -> support::PeerProcess {
    let port = support::free_port();
    let mut cmd = Command::new(support::python());
    cmd.arg(support::repo_path("tests/peers/py_server.py"))
        .arg(mode)
        .arg(port.to_string())
        .env("MCP_TEST_GATEWAY_TOOLS", "1");
    support::PeerProcess::spawn(
        &format!("python sdk server {mode} (gateway tools)"),
        cmd,
        port,
    )
}

/// One answer: HTTP status and headers, and the JSON-RPC response for our id (or the
/// JSON body when there is none).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Reads an HTTP answer: its status, headers and the JSON-RPC answer to `id` (from a
    /// JSON body, or the first non-request message with that id in an SSE body).
    pub async fn read(resp: reqwest::Response, id: Option<&Value>) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let sse = headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
        let text = resp.text().await.unwrap_or_default();
        let body = if sse {
            sse_messages(&text)
                .into_iter()
                .find(|m| id.is_some() && m.get("id") == id && m.get("method").is_none())
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `error.data.rule`, or "" when the answer is not such an error.
    pub fn rule(&self) -> &str {
        self.body["error"]["data"]["rule"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn error_code(&self) -> i64 {
        self.body["error"]["code"].as_i64().unwrap_or_default()
    }

    /// The text of a tools/call result's first content item.
    pub fn text(&self) -> &str {
        self.body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.body["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("not a tools/list result: {self:?}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A raw Streamable HTTP MCP client (one session).
#[derive(Clone)]
pub struct Mcp {
    http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
    pub session: Option<String>,
    pub next_id: u64,
}

impl Mcp {
    pub fn new(url: &str, token: Option<&str>) -> Mcp {
        Mcp {
            http: http(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
            session: None,
            next_id: 1,
        }
    }

    /// initialize + notifications/initialized; keeps the session id.
    pub async fn initialize(&mut self) -> Answer {
        let a = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "gateway-test", "version": "1"}}),
            )
            .await;
        assert_eq!(a.status, 200, "initialize failed: {a:?}");
        self.session = a
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let n = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert!(n.status < 300, "notifications/initialized: {n:?}");
        a
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Answer {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> Answer {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }

    pub async fn list_tools(&mut self) -> Answer {
        self.request("tools/list", json!({})).await
    }

    /// POSTs one message and reads the answer to its id (JSON or SSE).
    pub async fn post(&self, msg: Value) -> Answer {
        self.post_text(msg.to_string(), msg.get("id").cloned())
            .await
    }

    pub async fn post_text(&self, body: String, id: Option<Value>) -> Answer {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let resp = req.send().await.expect("POST to the gateway");
        Answer::read(resp, id.as_ref()).await
    }
}

/// The JSON messages in an SSE body.
pub fn sse_messages(text: &str) -> Vec<Value> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}
