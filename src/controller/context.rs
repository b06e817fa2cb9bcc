//! [`Context`]: what every reconcile shares — the client, the Event recorder, metrics, the
//! leader flag guarding writes, the policy and server caches, the operator's probe token
//! and the probe concurrency limit.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use kube::{Client, runtime::reflector::Store};
use tokio::sync::Semaphore;

use super::{error::Error, events::Events, metrics::Metrics};
use crate::api::McpServer;

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
}

impl Context {
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
