//! One probe attempt: connect, negotiate the era ([`lifecycle`]: `server/discover`, or
//! `initialize` + `notifications/initialized`), `tools/list`, `resources/list`,
//! `prompts/list` for the declared capabilities following `nextCursor` (at most
//! [`MAX_PAGES`] pages each), then close (a legacy Streamable HTTP session gets `DELETE`
//! with `Mcp-Session-Id`; SSE drops the stream; stdio ends the process).
//!
//! Every transport is driven by rmcp's client: `initialize` offers 2025-11-25 and accepts
//! any version rmcp knows; `server/discover` proposes 2026-07-28. Streamable HTTP opens a
//! fresh connection for the fallback `initialize`; stdio falls back on the same process;
//! legacy HTTP+SSE has no modern era.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams, ProtocolVersion,
    ServerPeerInfo,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient};
use tokio::io::AsyncReadExt;

use super::classify;
use super::destination::FilteringResolver;
use super::era::{self, EraPreference};
use super::error::ProbeError;
use super::inventory::{ServerCapabilities, ServerInfo, ToolInventory};
use super::lifecycle::{self, Connected};
use super::sse::{FailureSlot, SseTransport};
use super::target::{HttpTarget, ProbeTarget, StdioTarget, TransportKind, redact_url};
use super::tls;
use crate::mcp_http::era::Era;

/// Pagination cap per list: a server that keeps returning cursors is cut off here.
pub const MAX_PAGES: usize = 100;
/// Upper bound for closing the session after the inventory is complete.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of a stdio server's stderr kept for error messages.
const STDERR_TAIL: usize = 400;

/// The client identity the prober presents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeClient;

impl ClientHandler for ProbeClient {
    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-operator-prober", env!("CARGO_PKG_VERSION")),
        );
        // What `initialize` offers: the newest version that has a handshake (rmcp's
        // default, 2026-07-28, has none). Discover proposes its own versions.
        config.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
        config
    }
}

/// A running rmcp client of the prober.
pub type Client = RunningService<RoleClient, ProbeClient>;

/// A probe is one short exchange: a dropped event stream is not resumed.
#[derive(Debug)]
struct NoReconnect;

impl rmcp::transport::common::client_side_sse::SseRetryPolicy for NoReconnect {
    fn retry(&self, _current_times: usize) -> Option<Duration> {
        None
    }
}

/// What the attempt was doing; quoted when it times out.
#[derive(Clone, Default)]
struct Progress(Arc<Mutex<String>>);

impl Progress {
    fn set(&self, step: impl Into<String>) {
        if let Ok(mut s) = self.0.lock() {
            *s = step.into();
        }
    }
    fn get(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Runs one attempt bounded by `timeout` (connect + initialize + lists). Closing the
/// session afterwards is bounded separately and never fails the probe.
pub async fn attempt(target: &ProbeTarget, timeout: Duration) -> Result<ToolInventory, ProbeError> {
    let progress = Progress::default();
    let failure: FailureSlot = Arc::default();
    let stderr_tail: Arc<Mutex<Vec<u8>>> = Arc::default();
    let work = connect_and_list(target, &progress, &failure, &stderr_tail);
    let result = match tokio::time::timeout(timeout, work).await {
        Ok(Ok((client, inventory))) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.cancel()).await;
            return Ok(inventory);
        }
        Ok(Err(e)) => e,
        Err(_) => ProbeError::Timeout(format!(
            "no complete answer within {timeout:?} (connect + initialize + lists); \
             still waiting for: {}",
            progress.get()
        )),
    };
    // A failure the SSE reader saw explains an rmcp "connection closed" better.
    let recorded = failure.lock().ok().and_then(|mut s| s.take());
    let error = match recorded {
        Some(e) if result.code() != super::ProbeErrorCode::Timeout => e,
        _ => result,
    };
    Err(with_stderr(error, &stderr_tail))
}

fn with_stderr(error: ProbeError, tail: &Mutex<Vec<u8>>) -> ProbeError {
    let text = tail
        .lock()
        .map(|t| String::from_utf8_lossy(&t).trim().to_owned())
        .unwrap_or_default();
    if text.is_empty() {
        error
    } else {
        let code = error.code();
        ProbeError::new(
            code,
            format!("{}; server stderr: {text:?}", error.message()),
        )
    }
}

/// Connects to `target` as an attempt does (era negotiation included) without listing
/// anything: for `probe --call`. The caller bounds the time and closes the client.
pub async fn connect(target: &ProbeTarget) -> Result<Client, ProbeError> {
    let progress = Progress::default();
    let failure: FailureSlot = Arc::default();
    let stderr_tail: Arc<Mutex<Vec<u8>>> = Arc::default();
    let connected = match target {
        ProbeTarget::Http(t) => connect_http(t, &progress, &failure).await,
        ProbeTarget::Stdio(t) => connect_stdio(t, &progress, &stderr_tail).await,
    };
    match connected {
        Ok((connected, _)) => Ok(connected.client),
        Err(e) => Err(with_stderr(e, &stderr_tail)),
    }
}

async fn connect_and_list(
    target: &ProbeTarget,
    progress: &Progress,
    failure: &FailureSlot,
    stderr_tail: &Arc<Mutex<Vec<u8>>>,
) -> Result<(Client, ToolInventory), ProbeError> {
    let (connected, tried) = match target {
        ProbeTarget::Http(t) => connect_http(t, progress, failure).await?,
        ProbeTarget::Stdio(t) => connect_stdio(t, progress, stderr_tail).await?,
    };
    let Connected {
        client,
        supported_versions,
    } = connected;
    let inventory = list_everything(&client, &tried, supported_versions, progress).await;
    match inventory {
        Ok(inv) => Ok((client, inv)),
        Err(e) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.cancel()).await;
            Err(e)
        }
    }
}

async fn connect_http(
    t: &HttpTarget,
    progress: &Progress,
    failure: &FailureSlot,
) -> Result<(Connected, String), ProbeError> {
    let url = t.parsed_url()?;
    if let Some(policy) = &t.destinations {
        // IP literals are dialled without a lookup: check them here, before any request.
        // (An SSE endpoint must keep the stream's origin, so this covers it too.)
        policy.check_url(&url, &redact_url(&url))?;
    }
    let headers = header_map(t)?;
    let http = http_client(t)?;
    match t.transport.resolve(&url) {
        TransportKind::Sse => {
            if t.era == EraPreference::Modern {
                return Err(ProbeError::InvalidUrl(format!(
                    "{}: the legacy HTTP+SSE transport has no modern era; probe a Streamable \
                     HTTP endpoint, or use --era auto or legacy",
                    redact_url(&url)
                )));
            }
            progress.set(format!("GET {} (event stream)", redact_url(&url)));
            let transport = SseTransport::connect(http, &url, headers, failure.clone()).await?;
            let tried = lifecycle::initialize_step(&format!("over SSE at {}", redact_url(&url)));
            progress.set(tried.clone());
            let connected = lifecycle::initialize(transport, &tried).await?;
            Ok((connected, format!("SSE {}", redact_url(&url))))
        }
        _ => {
            let custom = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(custom)
                .reinit_on_expired_session(false);
            config.retry_config = Arc::new(NoReconnect);
            let place = format!("POST {}", redact_url(&url));
            let connected = lifecycle::negotiate(
                t.era,
                || StreamableHttpClientTransport::with_client(http.clone(), config.clone()),
                &place,
                |step| progress.set(step),
            )
            .await?;
            Ok((connected, place))
        }
    }
}

fn header_map(t: &HttpTarget) -> Result<reqwest::header::HeaderMap, ProbeError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (i, h) in t.headers.iter().enumerate() {
        let name = reqwest::header::HeaderName::from_bytes(h.name().as_bytes()).map_err(|_| {
            ProbeError::InvalidUrl(format!(
                "header #{}: {:?} is not a valid header name",
                i + 1,
                h.name()
            ))
        })?;
        let mut value = reqwest::header::HeaderValue::from_str(h.value()).map_err(|_| {
            // Never quote the value: it is a credential.
            ProbeError::InvalidUrl(format!(
                "header {name}: the value is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn http_client(t: &HttpTarget) -> Result<reqwest::Client, ProbeError> {
    let tls = tls::client_config(&t.tls)?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        // A redirect could carry credentials elsewhere, or aim the probe at a denied
        // destination; report it instead.
        .redirect(reqwest::redirect::Policy::none())
        // No proxy: the address connected to is the one the destination policy checked.
        .no_proxy()
        .user_agent(concat!("mcp-operator-prober/", env!("CARGO_PKG_VERSION")));
    if let Some(policy) = &t.destinations {
        builder = builder.dns_resolver(Arc::new(FilteringResolver::new(policy.clone())));
    }
    builder
        .build()
        .map_err(|e| classify::from_reqwest("building the HTTP client", &e))
}

async fn connect_stdio(
    t: &StdioTarget,
    progress: &Progress,
    stderr_tail: &Arc<Mutex<Vec<u8>>>,
) -> Result<(Connected, String), ProbeError> {
    if t.command.trim().is_empty() {
        return Err(ProbeError::InvalidUrl(
            "empty command for a stdio probe".into(),
        ));
    }
    let mut cmd = tokio::process::Command::new(&t.command);
    cmd.args(&t.args).envs(t.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &t.cwd {
        cmd.current_dir(dir);
    }
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ProbeError::ConnectionFailed(format!("cannot start {:?}: {e}", t.command)))?;
    if let Some(mut stderr) = stderr {
        let tail = stderr_tail.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            }
        });
    }
    let place = format!("stdio of {:?}", t.command);
    let connected = match t.era {
        EraPreference::Auto => {
            progress.set(lifecycle::discover_step(&place));
            lifecycle::auto_on_one_stream(transport, &place).await?
        }
        EraPreference::Legacy => {
            let tried = lifecycle::initialize_step(&place);
            progress.set(tried.clone());
            lifecycle::initialize(transport, &tried).await?
        }
        EraPreference::Modern => {
            let tried = lifecycle::discover_step(&place);
            progress.set(tried.clone());
            match lifecycle::discover(transport, &tried).await {
                Ok(connected) => connected,
                Err(failure) => {
                    return Err(match era::after_discover(&tried, failure) {
                        era::AfterDiscover::Fail(e) => e,
                        era::AfterDiscover::Fallback { discover } => {
                            era::not_modern(&tried, &discover)
                        }
                    });
                }
            }
        }
    };
    Ok((connected, place))
}

async fn list_everything(
    client: &Client,
    tried: &str,
    supported_versions: Vec<String>,
    progress: &Progress,
) -> Result<ToolInventory, ProbeError> {
    let info = client.peer_info().ok_or_else(|| {
        ProbeError::ProtocolError(format!(
            "{tried}: initialize completed without server information"
        ))
    })?;
    check_version(tried, &info)?;
    let caps = &info.capabilities;
    let capabilities = ServerCapabilities {
        tools: caps.tools.is_some(),
        resources: caps.resources.is_some(),
        prompts: caps.prompts.is_some(),
        logging: caps.logging.is_some(),
        completions: caps.completions.is_some(),
    };
    let mut tools = Vec::new();
    if capabilities.tools {
        paginate(
            tried,
            "tools/list",
            progress,
            |cursor| async move {
                let page = client.list_tools(cursor).await?;
                let items = page
                    .tools
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>();
                Ok((items.unwrap_or_default(), page.next_cursor))
            },
            &mut tools,
        )
        .await?;
    }
    let mut resources = Vec::new();
    if capabilities.resources {
        paginate(
            tried,
            "resources/list",
            progress,
            |cursor| async move {
                let page = client.list_resources(cursor).await?;
                Ok((
                    vec![serde_json::Value::Null; page.resources.len()],
                    page.next_cursor,
                ))
            },
            &mut resources,
        )
        .await?;
    }
    let mut prompts = Vec::new();
    if capabilities.prompts {
        paginate(
            tried,
            "prompts/list",
            progress,
            |cursor| async move {
                let page = client.list_prompts(cursor).await?;
                Ok((
                    vec![serde_json::Value::Null; page.prompts.len()],
                    page.next_cursor,
                ))
            },
            &mut prompts,
        )
        .await?;
    }
    let server_info = ServerInfo {
        name: info
            .server_info
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_default(),
        version: info
            .server_info
            .as_ref()
            .map(|i| i.version.clone())
            .unwrap_or_default(),
        protocol_version: info.protocol_version.to_string(),
        instructions: info.instructions.clone().unwrap_or_default(),
        era: Some(era::status_era(Era::of_version(
            info.protocol_version.as_str(),
        ))),
        supported_versions,
    };
    Ok(ToolInventory::from_tools(
        server_info,
        capabilities,
        &tools,
        resources.len(),
        prompts.len(),
    ))
}

/// A version rmcp does not know means there is no common version (the spec says the
/// client should then disconnect).
fn check_version(tried: &str, info: &ServerPeerInfo) -> Result<(), ProbeError> {
    if ProtocolVersion::KNOWN_VERSIONS.contains(&info.protocol_version) {
        return Ok(());
    }
    // Quoted only when it looks like a protocol version (a date): never other server text.
    let answered = info.protocol_version.to_string();
    let looks_like_a_version = answered.len() == 10
        && answered.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let answered = if looks_like_a_version {
        format!("{answered:?}")
    } else {
        "something else".to_owned()
    };
    Err(ProbeError::ProtocolError(format!(
        "{tried}: no common protocol version: offered {}, the server answered {} (known: {})",
        ProtocolVersion::default(),
        answered,
        ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Calls `fetch` with successive cursors until there is none, a cursor repeats, or
/// [`MAX_PAGES`] pages were read.
async fn paginate<F, Fut>(
    tried: &str,
    method: &str,
    progress: &Progress,
    mut fetch: F,
    out: &mut Vec<serde_json::Value>,
) -> Result<(), ProbeError>
where
    F: FnMut(Option<PaginatedRequestParams>) -> Fut,
    Fut: Future<Output = Result<(Vec<serde_json::Value>, Option<String>), rmcp::ServiceError>>,
{
    let what = format!("{method} ({tried})");
    let mut cursor: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for page in 1..=MAX_PAGES {
        progress.set(format!("{what}, page {page}"));
        let params = cursor
            .clone()
            .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let (items, next) = fetch(params)
            .await
            .map_err(|e| classify::from_service_error(&what, &e))?;
        out.extend(items);
        match next.filter(|c| !c.is_empty()) {
            None => return Ok(()),
            Some(c) if !seen.insert(c.clone()) => {
                tracing::warn!(method, "server repeated a pagination cursor; stopping");
                return Ok(());
            }
            Some(c) => cursor = Some(c),
        }
    }
    tracing::warn!(
        method,
        pages = MAX_PAGES,
        "pagination cap reached; the list may be incomplete"
    );
    Ok(())
}
