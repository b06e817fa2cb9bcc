//! Legacy HTTP+SSE upstream (MCP 2024-11-05) served as Streamable HTTP: each Streamable
//! HTTP session is one upstream event stream (`GET /sse` → `endpoint` event; client
//! messages are POSTed to that endpoint; server messages arrive as `message` events).
//! Ids need no rewriting: one upstream connection belongs to one session.
//!
//! The gateway calls [`router`] in-process when its upstream is a legacy SSE server.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, HeaderMap};
use serde_json::Value;
use sse_stream::{Sse, SseStream};
use tokio::task::AbortHandle;
use url::Url;

use super::jsonrpc;
use super::streamable::{
    Backend, BackendError, BackendSession, Outbox, StreamableConfig, StreamableServer,
};

/// How long opening an upstream session (stream, `endpoint`, `initialize`) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Streamable HTTP at `/mcp` in front of the legacy SSE server whose event stream is
/// `upstream_sse_url`. `headers` go with every upstream request (e.g. credentials).
/// Origin checks are left to the caller (the gateway). Must be called inside a tokio
/// runtime.
pub fn router(upstream_sse_url: Url, client: reqwest::Client, headers: HeaderMap) -> axum::Router {
    let config = StreamableConfig {
        loopback_origins_only: false,
        ..StreamableConfig::default()
    };
    super::streamable::router(server(upstream_sse_url, client, headers, config), "/mcp")
}

/// The server behind [`router`], for callers that want its counters or shutdown.
pub fn server(
    upstream_sse_url: Url,
    client: reqwest::Client,
    headers: HeaderMap,
    config: StreamableConfig,
) -> Arc<StreamableServer<SseUpstream>> {
    StreamableServer::new(
        SseUpstream {
            url: upstream_sse_url,
            client,
            headers,
        },
        config,
    )
}

/// A legacy SSE server as a [`Backend`].
pub struct SseUpstream {
    url: Url,
    client: reqwest::Client,
    headers: HeaderMap,
}

/// One upstream event stream and the endpoint its messages are POSTed to.
pub struct SseUpstreamSession {
    client: reqwest::Client,
    headers: HeaderMap,
    endpoint: Url,
    reader: AbortHandle,
}

type EventStream = futures::stream::BoxStream<'static, Result<Sse, sse_stream::Error>>;

impl Backend for SseUpstream {
    type Session = SseUpstreamSession;

    async fn open(
        &self,
        initialize: Value,
        outbox: Arc<Outbox>,
    ) -> Result<(SseUpstreamSession, Value), BackendError> {
        tokio::time::timeout(OPEN_TIMEOUT, self.open_session(initialize, outbox))
            .await
            .map_err(|_| {
                BackendError::Unavailable(
                    "the SSE upstream did not answer initialize in time".into(),
                )
            })?
    }
}

impl SseUpstream {
    async fn open_session(
        &self,
        initialize: Value,
        outbox: Arc<Outbox>,
    ) -> Result<(SseUpstreamSession, Value), BackendError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            BackendError::Unavailable(format!("SSE upstream: {what}: {e}"))
        };
        let response = self
            .client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| unavailable("opening the event stream", &e))?;
        if !response.status().is_success() {
            return Err(unavailable("opening the event stream", &response.status()));
        }
        let mut events: EventStream = SseStream::from_bytes_stream(response.bytes_stream()).boxed();
        let endpoint = wait_for_endpoint(&mut events, &self.url).await?;
        let init_id = jsonrpc::id(&initialize).cloned().unwrap_or_default();
        post_message(&self.client, &self.headers, &endpoint, &initialize).await?;
        let init_response = wait_for_response(&mut events, &init_id).await?;
        let reader = tokio::spawn(forward_events(events, outbox)).abort_handle();
        Ok((
            SseUpstreamSession {
                client: self.client.clone(),
                headers: self.headers.clone(),
                endpoint,
                reader,
            },
            init_response,
        ))
    }
}

impl BackendSession for SseUpstreamSession {
    async fn send(&self, message: Value) -> Result<(), BackendError> {
        post_message(&self.client, &self.headers, &self.endpoint, &message).await
    }

    fn close(&self) {
        // Legacy SSE has no DELETE: dropping the event stream ends the upstream session.
        self.reader.abort();
    }
}

impl Drop for SseUpstreamSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn post_message(
    client: &reqwest::Client,
    headers: &HeaderMap,
    endpoint: &Url,
    message: &Value,
) -> Result<(), BackendError> {
    let response = client
        .post(endpoint.clone())
        .headers(headers.clone())
        .json(message)
        .send()
        .await
        .map_err(|e| BackendError::Unavailable(format!("SSE upstream: POST failed: {e}")))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(BackendError::Unavailable(format!(
            "SSE upstream: POST answered {}",
            response.status()
        )))
    }
}

async fn wait_for_endpoint(events: &mut EventStream, base: &Url) -> Result<Url, BackendError> {
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| BackendError::Protocol(format!("SSE upstream: {e}")))?;
        if event.event.as_deref() == Some("endpoint")
            && let Some(data) = event.data
        {
            return resolve_endpoint(base, data.trim());
        }
    }
    Err(BackendError::Protocol(
        "SSE upstream: the stream ended without an `endpoint` event".into(),
    ))
}

/// The announced endpoint, resolved against the stream URL; it must stay on the same
/// origin so the configured headers are not sent elsewhere.
fn resolve_endpoint(base: &Url, announced: &str) -> Result<Url, BackendError> {
    let endpoint = base.join(announced).map_err(|e| {
        BackendError::Protocol(format!(
            "SSE upstream: endpoint {announced:?} is not a URL: {e}"
        ))
    })?;
    if endpoint.origin() != base.origin() {
        return Err(BackendError::Protocol(
            "SSE upstream: the announced endpoint is on another origin".into(),
        ));
    }
    Ok(endpoint)
}

fn message_of(event: Sse) -> Option<Value> {
    if !matches!(event.event.as_deref(), None | Some("message")) {
        return None;
    }
    serde_json::from_str(event.data.as_deref()?).ok()
}

async fn wait_for_response(events: &mut EventStream, id: &Value) -> Result<Value, BackendError> {
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| BackendError::Protocol(format!("SSE upstream: {e}")))?;
        if let Some(message) = message_of(event)
            && jsonrpc::is_response(&message)
            && jsonrpc::id(&message) == Some(id)
        {
            return Ok(message);
        }
    }
    Err(BackendError::Unavailable(
        "SSE upstream: the stream ended before initialize was answered".into(),
    ))
}

async fn forward_events(mut events: EventStream, outbox: Arc<Outbox>) {
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if let Some(message) = message_of(event) {
                    outbox.deliver(message);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SSE upstream event stream broke");
                break;
            }
        }
    }
    outbox.close("the SSE upstream closed the session's event stream; initialize again");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_stay_on_the_stream_origin() {
        let base = Url::parse("http://127.0.0.1:9/sse").unwrap();
        let ok = resolve_endpoint(&base, "/message?sessionId=1").unwrap();
        assert_eq!(ok.as_str(), "http://127.0.0.1:9/message?sessionId=1");
        assert!(resolve_endpoint(&base, "http://other.example/x").is_err());
    }
}
