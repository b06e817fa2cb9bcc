//! [`Context`]: what every reconcile shares — the client, the Event recorder, metrics, the
//! leader flag guarding writes, the server cache and the operator's probe token. (The
//! McpServer reconcile adds its prober: `server::ServerContext`.)

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use kube::{Client, runtime::reflector::Store};

use super::{
    api_server_egress::ApiServerEgress,
    error::Error,
    events::Events,
    metrics::Metrics,
    shared::{ProbeToken, ServiceResolver, resolve_service_url},
};
use crate::api::McpServer;

/// Shared state of one controller.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Event recorder.
    pub events: Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// True while this replica may write (holds the Lease, or election is off).
    pub leader: Arc<AtomicBool>,
    /// Cache of McpServers in the watched scope.
    pub servers: Store<McpServer>,
    /// Image of the gateway sidecar and install-bridge init container.
    pub operator_image: String,
    /// The probe token.
    pub probe_token: ProbeToken,
    /// Set by `mcp-operator dev`: Services resolve to local addresses (probes, status.url).
    pub service_addresses: Option<Arc<dyn ServiceResolver>>,
    /// The API server's egress rules (read only under an egress policy, cached).
    pub api_server_egress: Arc<ApiServerEgress>,
    /// Consecutive failed reconciles per object, for backoff.
    pub retries: Arc<super::retry::Retries>,
}

impl Context {
    /// `url` with a `*.svc` host replaced by the Service's address when a
    /// [`ServiceResolver`] is set; unchanged otherwise.
    pub fn resolve_url(&self, url: Option<String>) -> Option<String> {
        let url = url?;
        let resolved = self
            .service_addresses
            .as_deref()
            .and_then(|r| resolve_service_url(r, &url));
        Some(resolved.unwrap_or(url))
    }

    /// Err([`Error::NotLeader`]) unless this replica may write right now.
    pub fn may_write(&self) -> Result<(), Error> {
        if self.leader.load(Ordering::Acquire) {
            self.metrics.wrote();
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }
}
