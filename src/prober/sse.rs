//! Legacy HTTP+SSE client transport (MCP 2024-11-05), which rmcp 3.9 does not ship:
//! `GET` the event stream, wait for the `endpoint` event, then `POST` each JSON-RPC message
//! to that endpoint; answers arrive as `message` events on the stream.
//!
//! It implements rmcp's [`Transport`] so the same rmcp client drives every transport.
//! Send failures are [`ProbeError`]s already; failures on the event stream are recorded
//! in a shared slot that the session reads when rmcp only sees "connection closed".

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Sse, SseStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use super::classify;
use super::error::ProbeError;
use super::target::redact_url;

/// Where the event-stream reader records why the stream ended early.
pub type FailureSlot = Arc<Mutex<Option<ProbeError>>>;

/// At most this much of an error body is read for a message.
const BODY_PREVIEW_BYTES: usize = 1024;

/// A connected legacy SSE session.
pub struct SseTransport {
    http: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    incoming: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    reader: JoinHandle<()>,
}

impl SseTransport {
    /// Opens the event stream at `url` and waits for the `endpoint` event.
    pub async fn connect(
        http: reqwest::Client,
        url: &Url,
        headers: HeaderMap,
        failure: FailureSlot,
    ) -> Result<Self, ProbeError> {
        let tried = format!("GET {} (event stream)", redact_url(url));
        let response = http
            .get(url.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| classify::from_reqwest(&tried, &e))?;
        let response = check_response(&tried, response, &["text/event-stream"]).await?;
        let mut events: EventStream = SseStream::from_bytes_stream(response.bytes_stream()).boxed();
        let endpoint = loop {
            match events.next().await {
                Some(Ok(Sse {
                    event: Some(event),
                    data: Some(data),
                    ..
                })) if event == "endpoint" => break resolve_endpoint(&tried, url, data.trim())?,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    classify::log_detail(&tried, "malformed event stream", &e.to_string());
                    return Err(ProbeError::ProtocolError(format!(
                        "{tried}: malformed event stream"
                    )));
                }
                None => {
                    return Err(ProbeError::ProtocolError(format!(
                        "{tried}: the stream ended without an `endpoint` event; \
                         is this a legacy SSE MCP server?"
                    )));
                }
            }
        };
        let (tx, incoming) = mpsc::channel(64);
        let reader = tokio::spawn(read_messages(events, tx, failure, tried));
        Ok(Self {
            http,
            endpoint,
            headers,
            incoming,
            reader,
        })
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The endpoint announced by the server, resolved against the stream URL. It must stay on
/// the same origin: the probe's credentials are not sent anywhere else.
fn resolve_endpoint(tried: &str, base: &Url, announced: &str) -> Result<Url, ProbeError> {
    let endpoint = base.join(announced).map_err(|e| {
        classify::log_detail(tried, "announced endpoint", announced);
        ProbeError::ProtocolError(format!(
            "{tried}: the announced endpoint is not a URL ({e})"
        ))
    })?;
    if endpoint.origin() != base.origin() {
        return Err(ProbeError::ProtocolError(format!(
            "{tried}: announced endpoint {} is on another origin; refusing to send credentials there",
            redact_url(&endpoint)
        )));
    }
    Ok(endpoint)
}

type EventStream = futures::stream::BoxStream<'static, Result<Sse, sse_stream::Error>>;

async fn read_messages(
    mut events: EventStream,
    tx: mpsc::Sender<RxJsonRpcMessage<RoleClient>>,
    failure: FailureSlot,
    tried: String,
) {
    let record = |e: ProbeError| {
        if let Ok(mut slot) = failure.lock() {
            slot.get_or_insert(e);
        }
    };
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                classify::log_detail(&tried, "event stream error", &e.to_string());
                record(ProbeError::ConnectionFailed(format!(
                    "{tried}: the event stream broke"
                )));
                return;
            }
        };
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data else { continue };
        match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
            Ok(message) => {
                if tx.send(message).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                record(classify::malformed_json(
                    &format!("{tried}, event stream"),
                    &e,
                ));
                return;
            }
        }
    }
}

/// Passes a 2xx response with an accepted content type; anything else becomes a ProbeError.
async fn check_response(
    tried: &str,
    response: reqwest::Response,
    content_types: &[&str],
) -> Result<reqwest::Response, ProbeError> {
    let status = response.status();
    let ct = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !status.is_success() {
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = body_preview(response).await;
        return Err(classify::from_http_status(
            tried,
            status.as_u16(),
            ct.as_deref(),
            &body,
            challenge.as_deref(),
        ));
    }
    let accepted = content_types.is_empty()
        || ct
            .as_deref()
            .is_some_and(|c| content_types.iter().any(|want| c.starts_with(want)));
    if !accepted {
        return Err(classify::from_content_type(
            tried,
            ct.as_deref(),
            &content_types.join(" or "),
        ));
    }
    Ok(response)
}

async fn body_preview(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < BODY_PREVIEW_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(BODY_PREVIEW_BYTES);
    String::from_utf8_lossy(&buf).into_owned()
}

fn method_of(message: &TxJsonRpcMessage<RoleClient>) -> String {
    serde_json::to_value(message)
        .ok()
        .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "response".to_owned())
}

impl Transport<RoleClient> for SseTransport {
    type Error = ProbeError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let http = self.http.clone();
        let endpoint = self.endpoint.clone();
        let headers = self.headers.clone();
        async move {
            let tried = format!("{}: POST {}", method_of(&item), redact_url(&endpoint));
            let response = http
                .post(endpoint)
                .headers(headers)
                .json(&item)
                .send()
                .await
                .map_err(|e| classify::from_reqwest(&tried, &e))?;
            // Legacy servers answer 202 Accepted (some 200 with a short body); the
            // JSON-RPC answer itself arrives on the event stream.
            check_response(&tried, response, &[]).await.map(drop)
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Legacy SSE has no session DELETE: dropping the event stream ends the session.
        self.reader.abort();
        self.incoming.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_on_the_same_origin_only() {
        let base = Url::parse("http://127.0.0.1:9/sse").unwrap();
        let ok = resolve_endpoint("t", &base, "/messages/?session_id=abc").unwrap();
        assert_eq!(ok.as_str(), "http://127.0.0.1:9/messages/?session_id=abc");
        let abs = resolve_endpoint("t", &base, "http://127.0.0.1:9/message?sessionId=1").unwrap();
        assert_eq!(abs.path(), "/message");
        let err = resolve_endpoint("t", &base, "http://evil.example/steal").unwrap_err();
        assert_eq!(err.code(), super::super::ProbeErrorCode::ProtocolError);
    }
}
