//! A minimal Streamable HTTP client for tests: initialize, requests answered as JSON or
//! SSE (every message of the stream is kept, in order), notifications, responses.

use futures::StreamExt;
use serde_json::{Value, json};
use sse_stream::SseStream;

/// One client session.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    pub session: Option<String>,
}

/// What a POST brought back: every message, the response last.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub messages: Vec<Value>,
}

impl Answer {
    /// The JSON-RPC response (the message with `result` or `error`).
    pub fn response(&self) -> &Value {
        self.messages
            .iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or_else(|| panic!("no response in {:?}", self.messages))
    }

    /// Messages before the response (notifications, server requests).
    pub fn notifications(&self, method: &str) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["method"] == method)
            .collect()
    }
}

/// A plain-HTTP reqwest client (the crate builds reqwest without a default TLS provider).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl McpClient {
    pub fn new(url: &str) -> Self {
        Self {
            http: http_client(),
            url: url.to_owned(),
            session: None,
        }
    }

    /// `initialize` (+ `notifications/initialized`) with these client capabilities.
    pub async fn initialize_with(&mut self, capabilities: Value) -> Value {
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":capabilities,
            "clientInfo":{"name":"bridge-test","version":"1"}}});
        let response = self.post_raw(&init).await.expect("initialize POST");
        assert_eq!(response.status(), 200, "initialize status");
        self.session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert!(self.session.is_some(), "no Mcp-Session-Id on initialize");
        let answer = read_answer(response).await;
        self.notify("notifications/initialized", json!({})).await;
        answer.response().clone()
    }

    pub async fn initialize(&mut self) -> Value {
        self.initialize_with(json!({})).await
    }

    pub async fn post_raw(&self, body: &Value) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(body);
        if let Some(s) = &self.session {
            request = request.header("mcp-session-id", s);
        }
        request.send().await
    }

    /// Sends a request and reads its whole answer.
    pub async fn request(&self, id: Value, method: &str, params: Value) -> Answer {
        let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
        let response = self.post_raw(&body).await.expect("POST");
        read_answer(response).await
    }

    /// Sends a request and returns its open answer stream (for server requests).
    pub async fn request_stream(&self, id: Value, method: &str, params: Value) -> AnswerStream {
        let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
        let response = self.post_raw(&body).await.expect("POST");
        AnswerStream::new(response)
    }

    /// `tools/call` answered with the response's `result` (panics on an error).
    pub async fn call_tool(&self, id: Value, name: &str, args: Value) -> Value {
        let answer = self
            .request(id, "tools/call", json!({"name": name, "arguments": args}))
            .await;
        let response = answer.response();
        assert!(response.get("error").is_none(), "{name} failed: {response}");
        response["result"].clone()
    }

    pub async fn notify(&self, method: &str, params: Value) -> u16 {
        let body = json!({"jsonrpc":"2.0","method":method,"params":params});
        self.post_raw(&body).await.expect("POST").status().as_u16()
    }

    pub async fn respond(&self, id: Value, result: Value) -> u16 {
        let body = json!({"jsonrpc":"2.0","id":id,"result":result});
        self.post_raw(&body).await.expect("POST").status().as_u16()
    }

    pub async fn delete(&self) -> u16 {
        let mut request = self.http.delete(&self.url);
        if let Some(s) = &self.session {
            request = request.header("mcp-session-id", s);
        }
        request.send().await.expect("DELETE").status().as_u16()
    }
}

/// Reads a JSON or SSE answer to the end.
pub async fn read_answer(response: reqwest::Response) -> Answer {
    let mut stream = AnswerStream::new(response);
    let mut messages = Vec::new();
    while let Some(m) = stream.next().await {
        messages.push(m);
    }
    Answer {
        status: stream.status,
        content_type: stream.content_type,
        messages,
    }
}

/// An answer read message by message.
pub struct AnswerStream {
    pub status: u16,
    pub content_type: String,
    body: Option<reqwest::Response>,
    events: Option<futures::stream::BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>>,
}

impl AnswerStream {
    pub fn new(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if content_type.starts_with("text/event-stream") {
            let events = SseStream::from_bytes_stream(response.bytes_stream()).boxed();
            Self {
                status,
                content_type,
                body: None,
                events: Some(events),
            }
        } else {
            Self {
                status,
                content_type,
                body: Some(response),
                events: None,
            }
        }
    }

    /// The next message; `None` at the end.
    pub async fn next(&mut self) -> Option<Value> {
        if let Some(body) = self.body.take() {
            let bytes = body.bytes().await.ok()?;
            if bytes.is_empty() {
                return None;
            }
            return Some(serde_json::from_slice(&bytes).expect("JSON answer"));
        }
        let events = self.events.as_mut()?;
        while let Some(event) = events.next().await {
            let event = event.expect("SSE event");
            if let Some(data) = event.data.filter(|d| !d.trim().is_empty()) {
                return Some(serde_json::from_str(&data).expect("JSON in SSE event"));
            }
        }
        None
    }
}
