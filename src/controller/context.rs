//! [`Context`]: what every reconcile shares — the client, the Event recorder, metrics, the
//! leader flag guarding writes, the policy and server caches, the operator's probe token
//! and the probe concurrency limit.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use kube::{Client, runtime::reflector::Store};
use tokio::sync::Semaphore;

use super::{api_server::ApiServerEgress, error::Error, events::Events, metrics::Metrics};
use crate::{api::McpServer, prober::DestinationPolicy};

/// Field manager of every write (children and status).
pub const FIELD_MANAGER: &str = "mcp-operator";

/// The operator's probe token: the bearer it shows gateways. Only its SHA-256 goes into
/// gateway configurations.
#[derive(Clone)]
pub struct ProbeToken {
    /// The token (a secret: never logged or put in an Event).
    pub token: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

impl std::fmt::Debug for ProbeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbeToken(sha256={})", self.sha256)
    }
}

/// How the prober reaches `*.svc` URLs from outside the cluster: through the API
/// server's service proxy.
#[derive(Clone, Debug)]
pub struct ServiceProxy {
    /// Base URL of the API server, e.g. `https://127.0.0.1:6443`.
    pub api_server: String,
}

/// Where a Service's clients connect when there is no cluster network: `mcp-operator dev`
/// gives every Service a loopback address. Unset (the production path), `*.svc` URLs are
/// used as they are.
pub trait ServiceResolver: Send + Sync {
    /// The address serving Service `namespace/name`; stable for the Service's life, and
    /// known before its pods run.
    fn resolve(&self, namespace: &str, name: &str) -> Option<std::net::IpAddr>;
}

/// `http://<name>.<ns>.svc[.cluster.local]:<port>/<path>` with the host replaced by the
/// address `resolver` gives that Service; None for other URLs or unknown Services.
pub fn resolve_service_url(resolver: &dyn ServiceResolver, url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let (name, namespace) = host
        .strip_suffix(".svc")
        .or_else(|| host.strip_suffix(".svc.cluster.local"))?
        .split_once('.')?;
    let ip = resolver.resolve(namespace, name)?;
    parsed.set_ip_host(ip).ok()?;
    Some(parsed.to_string())
}

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
    /// Bounds concurrent probes across all reconciles.
    pub probe_limit: Arc<Semaphore>,
    /// Set when running outside the cluster.
    pub service_proxy: Option<ServiceProxy>,
    /// Set by `mcp-operator dev`: Services resolve to local addresses (probes, status.url).
    pub service_addresses: Option<Arc<dyn ServiceResolver>>,
    /// The API server's egress rules (read only under an egress policy or for a remote
    /// probe, cached).
    pub api_server_egress: Arc<ApiServerEgress>,
    /// Where probes of remote servers (without a gateway) may connect; the API server's
    /// addresses are denied on top (`--probe-denied-cidrs`, `--probe-allowed-cidrs`).
    pub probe_destinations: Arc<DestinationPolicy>,
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl ServiceResolver for Fixed {
        fn resolve(&self, namespace: &str, name: &str) -> Option<std::net::IpAddr> {
            (namespace == "agents" && name == "memory").then(|| [127, 0, 3, 4].into())
        }
    }

    #[test]
    fn service_urls_resolve_to_the_given_address() {
        assert_eq!(
            resolve_service_url(&Fixed, "http://memory.agents.svc:8080/mcp").as_deref(),
            Some("http://127.0.3.4:8080/mcp")
        );
        assert_eq!(
            resolve_service_url(&Fixed, "http://memory.agents.svc.cluster.local:8080/mcp")
                .as_deref(),
            Some("http://127.0.3.4:8080/mcp")
        );
        assert_eq!(
            resolve_service_url(&Fixed, "http://other.agents.svc:8080/mcp"),
            None
        );
        assert_eq!(resolve_service_url(&Fixed, "https://example.com/mcp"), None);
    }
}
