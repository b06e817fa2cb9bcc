//! What every controller of the operator shares, and nothing else: a leaf module (it
//! imports no other controller module). Scoping (an `Api` per watched namespace), the
//! kube-runtime controller settings, readiness (a cache has synced), jitter, the
//! operator's identity towards the API server (field manager, probe token, how `*.svc`
//! URLs are reached) and writing a status with server-side apply.

use std::time::Duration;

use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use tokio::sync::watch;

/// Field manager of every write (children and status).
pub const FIELD_MANAGER: &str = "mcp-operator";

/// Default of `--reconcile-concurrency`: enough to keep a 2-core operator busy, few
/// enough that 1,000 servers changing at once do not open 1,000 API connections.
pub const DEFAULT_RECONCILE_CONCURRENCY: u16 = 16;

/// Triggers for one object within this window are coalesced into one reconcile (a new
/// server's seven children each trigger one).
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The kube-runtime controller settings every controller of the operator uses.
pub fn controller_config(concurrency: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(concurrency.max(1))
        .debounce(DEBOUNCE)
}

/// An Api over `ns`, or over every namespace when None (the scope of one controller).
pub fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Completes once `store` has seen its first complete list. Polls rather than waiting
/// once: kube-runtime's readiness signal wakes only the last of several waiters (the
/// Controller's own runner waits on it too), so a single `wait_until_ready` can sleep
/// forever.
pub async fn synced<K>(store: &kube::runtime::reflector::Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready());
        if wait.await.is_ok() {
            return;
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `d` times a random factor in [0.9, 1.1].
pub fn jittered(d: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u16;
    d.mul_f64(0.9 + 0.2 * f64::from(random) / f64::from(u16::MAX))
}

/// Writes `status` of `object` with server-side apply on the status subresource. The
/// caller decides whether it changed and whether this replica may write.
pub async fn write_status<K, S>(client: &Client, object: &K, status: &S) -> Result<(), kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
    S: Serialize,
{
    let ns = object.namespace().unwrap_or_default();
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": object.name_any(), "namespace": ns},
        "status": status,
    });
    Api::<K>::namespaced(client.clone(), &ns)
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

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

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
