//! How a request reaches the MCP server: the [`Upstream`] trait, implemented over HTTP
//! with one pooled keep-alive `reqwest` client ([`HttpUpstream`], for Streamable HTTP
//! servers) and in-process over an axum router ([`InProcessUpstream`], for legacy SSE
//! servers through `mcp_http::sse_upstream`, which speaks Streamable HTTP itself).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use futures::StreamExt as _;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Default bound on an upstream request's time to response headers (and, for requests
/// other than `tools/call`, to the answer).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// A later deadline for one request's response headers than the default upstream timeout
/// (a `tools/call` under its call timeout), as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct HeadersDeadline(pub tokio::time::Instant);

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the MCP server: {0}")]
    Connect(String),
    #[error("the MCP server's answer could not be read: {0}")]
    Read(String),
    #[error("the upstream client could not be built: {0}")]
    Setup(String),
    #[error("the MCP server did not answer within {0} ms")]
    Timeout(u128),
}

/// The MCP server behind the gateway, at the HTTP level. Requests carry a path-less URI
/// (the upstream decides where they go) and the headers to forward.
pub trait Upstream: Send + Sync + 'static {
    fn send(&self, req: Request<Bytes>) -> BoxFuture<Result<Response<Body>, UpstreamError>>;
    /// Whether the server answers at all (for `/readyz`).
    fn ready(&self) -> BoxFuture<bool>;
}

/// A Streamable HTTP server at a URL.
pub struct HttpUpstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpUpstream {
    pub fn new(client: reqwest::Client, url: reqwest::Url) -> Self {
        HttpUpstream { client, url }
    }
}

/// The one HTTP client of a gateway: pooled keep-alive connections, TCP_NODELAY, no
/// redirects (they could carry credentials elsewhere), no proxy from the environment.
pub fn http_client(tls: rustls::ClientConfig) -> Result<reqwest::Client, UpstreamError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("mcp-operator-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| UpstreamError::Setup(e.to_string()))
}

impl Upstream for HttpUpstream {
    fn send(&self, req: Request<Bytes>) -> BoxFuture<Result<Response<Body>, UpstreamError>> {
        let (parts, body) = req.into_parts();
        let request = self
            .client
            .request(parts.method, self.url.clone())
            .headers(parts.headers)
            .body(body);
        Box::pin(async move {
            let resp = request
                .send()
                .await
                .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
            let mut out = Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            out.body(Body::from_stream(resp.bytes_stream()))
                .map_err(|e| UpstreamError::Read(e.to_string()))
        })
    }

    fn ready(&self) -> BoxFuture<bool> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port_or_known_default().unwrap_or(80);
        Box::pin(async move {
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            matches!(
                tokio::time::timeout(Duration::from_secs(1), connect).await,
                Ok(Ok(_))
            )
        })
    }
}

/// An error and its causes, `: `-joined (reqwest's own message omits the cause).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A Streamable HTTP router called in-process (`tower::ServiceExt::oneshot`).
pub struct InProcessUpstream {
    router: axum::Router,
    /// The path the router serves MCP on.
    path: String,
    /// The legacy server itself, for readiness.
    probe: HttpUpstream,
}

impl InProcessUpstream {
    pub fn new(router: axum::Router, path: &str, probe: HttpUpstream) -> Self {
        InProcessUpstream {
            router,
            path: path.to_owned(),
            probe,
        }
    }
}

impl Upstream for InProcessUpstream {
    fn send(&self, req: Request<Bytes>) -> BoxFuture<Result<Response<Body>, UpstreamError>> {
        use tower::ServiceExt as _;
        let (mut parts, body) = req.into_parts();
        parts.uri = match self.path.parse() {
            Ok(uri) => uri,
            Err(e) => {
                let e = UpstreamError::Setup(format!("path {:?}: {e}", self.path));
                return Box::pin(async move { Err(e) });
            }
        };
        let req = Request::from_parts(parts, Body::from(body));
        let router = self.router.clone();
        Box::pin(async move {
            router
                .oneshot(req)
                .await
                .map_err(|e| UpstreamError::Connect(e.to_string()))
        })
    }

    fn ready(&self) -> BoxFuture<bool> {
        self.probe.ready()
    }
}

/// Bounds every upstream request's time to response headers by `timeout`, or by the
/// request's [`HeadersDeadline`] when it has one. The body (a stream's life) is not bounded
/// here.
pub struct TimedUpstream {
    inner: std::sync::Arc<dyn Upstream>,
    timeout: Duration,
    timeouts: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TimedUpstream {
    /// `timeouts` counts the requests that ran out of time.
    pub fn new(
        inner: std::sync::Arc<dyn Upstream>,
        timeout: Duration,
        timeouts: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        TimedUpstream {
            inner,
            timeout,
            timeouts,
        }
    }
}

impl Upstream for TimedUpstream {
    fn send(&self, req: Request<Bytes>) -> BoxFuture<Result<Response<Body>, UpstreamError>> {
        let deadline = req
            .extensions()
            .get::<HeadersDeadline>()
            .map_or_else(|| tokio::time::Instant::now() + self.timeout, |d| d.0);
        let sent = self.inner.send(req);
        let timeouts = self.timeouts.clone();
        let limit = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, sent).await {
                Ok(r) => r,
                Err(_) => {
                    timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Err(UpstreamError::Timeout(limit.as_millis()))
                }
            }
        })
    }

    fn ready(&self) -> BoxFuture<bool> {
        self.inner.ready()
    }
}

/// Reads a body up to `limit` bytes; None when it is larger.
pub async fn read_limited(body: Body, limit: u64) -> Result<Option<Bytes>, String> {
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}
