//! Opening a connection in the right protocol era over any rmcp client transport:
//! [`initialize`] (the legacy handshake), [`discover`] (the modern era's `server/discover`,
//! after which rmcp stamps the `_meta` envelope — protocol version, client capabilities
//! and info — on every request and mirrors it in the `MCP-Protocol-Version`, `Mcp-Method`
//! and `Mcp-Name` headers), and [`negotiate`], which chooses between them as
//! [`EraPreference`] and [`era::after_discover`] say.
//!
//! After a fallback, an `initialize` refused with -32022 naming a modern version we speak is
//! proof of a modern server whose first discover failed for another reason: one more
//! discover follows (the Python SDK's rule).
//!
//! rmcp's discover start-up keeps the `supportedVersions` of the answer to itself, so the
//! transport is wrapped in a [`DiscoverTap`] that copies them out as the answer passes.

use std::sync::{Arc, Mutex};

use rmcp::RoleClient;
use rmcp::model::{ProtocolVersion, ServerJsonRpcMessage, ServerResult};
use rmcp::service::{ClientInitializeError, ClientLifecycleMode, ClientServiceExt, ServiceExt};
use rmcp::transport::Transport;

use super::classify;
use super::era::{self, AfterDiscover, DiscoverFailure, EraPreference};
use super::error::ProbeError;
use super::session::{Client, ProbeClient};
use crate::mcp_http::era::{LATEST_MODERN, MODERN_VERSIONS};

/// An open connection and the versions the server listed (modern era only).
pub struct Connected {
    pub client: Client,
    pub supported_versions: Vec<String>,
}

/// What a request is about to do, for progress and error messages: `server/discover
/// (protocol version 2026-07-28): POST http://h/mcp`.
pub fn discover_step(place: &str) -> String {
    format!("server/discover (protocol version {LATEST_MODERN}): {place}")
}

/// Like [`discover_step`] for the handshake.
pub fn initialize_step(place: &str) -> String {
    format!(
        "initialize (protocol version {}): {place}",
        era::INITIALIZE_VERSION
    )
}

/// The modern versions the prober proposes, newest first.
fn modern_versions() -> Vec<ProtocolVersion> {
    vec![ProtocolVersion::V_2026_07_28]
}

/// The legacy handshake.
pub async fn initialize<T>(transport: T, tried: &str) -> Result<Connected, ProbeError>
where
    T: Transport<RoleClient> + 'static,
{
    initialize_or_refusal(transport, tried)
        .await
        .map_err(|(e, _)| e)
}

/// [`initialize`], telling apart a refusal that is itself proof of a modern server:
/// -32022 whose `data.supported` names a modern version we speak (then `true`).
async fn initialize_or_refusal<T>(
    transport: T,
    tried: &str,
) -> Result<Connected, (ProbeError, bool)>
where
    T: Transport<RoleClient> + 'static,
{
    match ProbeClient.serve(transport).await {
        Ok(client) => Ok(Connected {
            client,
            supported_versions: Vec::new(),
        }),
        Err(e) => Err((from_start_error(tried, &e), names_a_modern_version(&e))),
    }
}

fn names_a_modern_version(e: &ClientInitializeError) -> bool {
    let ClientInitializeError::JsonRpcError(error) = e else {
        return false;
    };
    error.code.0 == crate::mcp_http::era::code::UNSUPPORTED_PROTOCOL_VERSION as i32
        && error
            .data
            .as_ref()
            .and_then(|data| {
                crate::mcp_http::era::unsupported_version_list(&serde_json::json!({"data": data}))
            })
            .is_some_and(|supported| {
                supported
                    .iter()
                    .any(|v| MODERN_VERSIONS.contains(&v.as_str()))
            })
}

/// `server/discover` only (rmcp retries once at a version a -32022 names).
pub async fn discover<T>(transport: T, tried: &str) -> Result<Connected, DiscoverFailure>
where
    T: Transport<RoleClient> + 'static,
{
    let (tap, seen) = DiscoverTap::new(transport);
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: modern_versions(),
    };
    match ProbeClient.serve_with_lifecycle(tap, lifecycle).await {
        Ok(client) => Ok(Connected {
            client,
            supported_versions: seen.take(),
        }),
        Err(ClientInitializeError::NoCompatibleProtocolVersion {
            server_supported, ..
        }) => Err(DiscoverFailure::NoCommonVersion {
            server: server_supported.iter().map(ToString::to_string).collect(),
        }),
        Err(e) => Err(DiscoverFailure::Other(classify::from_init_error(tried, &e))),
    }
}

/// Discover, then `initialize` on the same stream when the answer says "legacy server"
/// (rmcp's auto start-up; for stdio, where a second connection means a second process).
pub async fn auto_on_one_stream<T>(transport: T, place: &str) -> Result<Connected, ProbeError>
where
    T: Transport<RoleClient> + 'static,
{
    let (tap, seen) = DiscoverTap::new(transport);
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: modern_versions(),
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    };
    let tried = format!("{} / {}", discover_step(place), initialize_step(place));
    let client = ProbeClient
        .serve_with_lifecycle(tap, lifecycle)
        .await
        .map_err(|e| from_start_error(&tried, &e))?;
    let modern = client
        .peer_info()
        .is_some_and(|i| !i.protocol_version.has_initialize());
    Ok(Connected {
        client,
        supported_versions: if modern { seen.take() } else { Vec::new() },
    })
}

/// Opens a connection as `era` says; `connect` makes a fresh transport for each step.
pub async fn negotiate<T, F>(
    era: EraPreference,
    mut connect: F,
    place: &str,
    progress: impl Fn(&str),
) -> Result<Connected, ProbeError>
where
    T: Transport<RoleClient> + 'static,
    F: FnMut() -> T,
{
    let initialize_tried = initialize_step(place);
    if era == EraPreference::Legacy {
        progress(&initialize_tried);
        return initialize(connect(), &initialize_tried).await;
    }
    let discover_tried = discover_step(place);
    progress(&discover_tried);
    let failure = match discover(connect(), &discover_tried).await {
        Ok(connected) => return Ok(connected),
        Err(failure) => failure,
    };
    match (era::after_discover(&discover_tried, failure), era) {
        (AfterDiscover::Fail(e), _) => Err(e),
        (AfterDiscover::Fallback { discover }, EraPreference::Modern) => {
            Err(era::not_modern(&discover_tried, &discover))
        }
        (AfterDiscover::Fallback { discover: why }, _) => {
            tracing::debug!(%why, "server/discover gave no modern answer; initialize");
            progress(&initialize_tried);
            match initialize_or_refusal(connect(), &initialize_tried).await {
                Ok(connected) => Ok(connected),
                // The handshake refused in favour of a version we speak: the first discover
                // failed for another reason (a slow start, a transient error). Once more,
                // as the Python SDK does; its failure is final.
                Err((_, true)) => {
                    progress(&discover_tried);
                    discover(connect(), &discover_tried)
                        .await
                        .map_err(
                            |failure| match era::after_discover(&discover_tried, failure) {
                                AfterDiscover::Fail(e)
                                | AfterDiscover::Fallback { discover: e } => e,
                            },
                        )
                }
                Err((e, false)) => Err(e),
            }
        }
    }
}

/// A start-up failure; a version mismatch names both sides' versions.
fn from_start_error(tried: &str, e: &ClientInitializeError) -> ProbeError {
    match e {
        ClientInitializeError::NoCompatibleProtocolVersion {
            server_supported, ..
        } => {
            let server: Vec<String> = server_supported.iter().map(ToString::to_string).collect();
            era::no_common_version(tried, &server)
        }
        other => classify::from_init_error(tried, other),
    }
}

/// The versions a `server/discover` answer listed, copied out by [`DiscoverTap`].
#[derive(Clone, Default)]
pub struct SeenVersions(Arc<Mutex<Vec<String>>>);

impl SeenVersions {
    fn record(&self, versions: &[ProtocolVersion]) {
        if let Ok(mut v) = self.0.lock() {
            // Bounded here already: the answer itself is bounded by the transport.
            *v = era::bound_versions(&versions.iter().map(ToString::to_string).collect::<Vec<_>>());
        }
    }

    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// A transport that passes everything through and records the `supportedVersions` of a
/// `server/discover` answer.
pub struct DiscoverTap<T> {
    inner: T,
    seen: SeenVersions,
}

impl<T> DiscoverTap<T> {
    fn new(inner: T) -> (Self, SeenVersions) {
        let seen = SeenVersions::default();
        (
            Self {
                inner,
                seen: seen.clone(),
            },
            seen,
        )
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for DiscoverTap<T> {
    type Error = T::Error;

    fn name() -> std::borrow::Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        let message = self.inner.receive().await;
        if let Some(ServerJsonRpcMessage::Response(response)) = &message
            && let ServerResult::DiscoverResult(result) = &response.result
        {
            self.seen.record(&result.supported_versions);
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp_http::era::LATEST_LEGACY;

    #[test]
    fn rmcp_versions_are_the_shared_era_names() {
        let ours: Vec<String> = modern_versions().iter().map(ToString::to_string).collect();
        assert_eq!(
            ours,
            MODERN_VERSIONS.iter().rev().copied().collect::<Vec<_>>()
        );
        assert_eq!(
            ProtocolVersion::LATEST_WITH_INITIALIZE.as_str(),
            LATEST_LEGACY
        );
        assert!(discover_step("POST u").contains("2026-07-28"));
        assert!(initialize_step("POST u").contains("2025-11-25"));
    }
}
