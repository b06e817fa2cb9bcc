//! The local pod runner: plays kubelet and the Deployment controller on this machine.
//! It watches Deployments (and the Secrets, ConfigMaps and Services their pods use) and,
//! for every replica, runs the pod's containers as host processes ([`pod`]), on a
//! loopback address of its own ([`crate::dev::addresses`]); it writes each Deployment's
//! status back (replicas, ready/available counts, conditions) — the embedded API server
//! serves no Pods, and the Deployment's status is what the operator reads. A changed pod
//! template replaces the pods (stop, then start: the Recreate strategy), fewer replicas
//! or a deleted Deployment stop them, and stopping the runner stops everything.
//!
//! Not supported (documented in docs/dev.md): images (commands run on the host), resource
//! limits, security contexts, exec/grpc probes (they pass), network policies, more than
//! one replica behind a Service address (the Service reaches replica 0).
//!
//! Layout: [`spec`] container → process (pure) · [`volumes`] · [`process`] process groups
//! · [`probe`] · [`pod`] one replica · [`status`] Deployment status (pure).

pub mod pod;
pub mod probe;
pub mod process;
pub mod spec;
pub mod status;
pub mod volumes;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    core::{Selector, SelectorExt},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use self::{
    pod::{Pod, PodConfig},
    process::HostEnv,
};
use super::addresses::LoopbackAddresses;

/// Issues ServiceAccount tokens for projected token volumes.
pub trait TokenIssuer: Send + Sync {
    /// A bearer token authenticating as ServiceAccount `namespace/name`.
    fn issue(&self, namespace: &str, name: &str) -> String;
}

/// How the runner runs pods.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Pod directories go under `<root>/pods/<namespace>/<pod>`.
    pub root: PathBuf,
    /// The operator's image: its containers run `operator_binary`.
    pub operator_image: String,
    pub operator_binary: PathBuf,
    pub host: HostEnv,
    /// Mints tokens for projected ServiceAccount token volumes; None writes empty tokens.
    pub tokens: Option<Arc<dyn TokenIssuer>>,
    /// The API server's URL, for the kubeconfig of containers with a token.
    pub api_url: Option<String>,
    /// The CA of an https API server, for that kubeconfig (None: plain http).
    pub api_ca: Option<PathBuf>,
    pub addresses: Arc<LoopbackAddresses>,
}

/// What pods share: the configuration, the object caches and an HTTP client for probes.
pub struct RunnerShared {
    pub operator_image: String,
    pub operator_binary: PathBuf,
    pub host: HostEnv,
    pub tokens: Option<Arc<dyn TokenIssuer>>,
    pub api_url: Option<String>,
    pub api_ca: Option<PathBuf>,
    pub stores: Stores,
    pub http: reqwest::Client,
}

/// Caches of the objects pods read.
#[derive(Clone)]
pub struct Stores {
    deployments: Store<Deployment>,
    secrets: Store<Secret>,
    config_maps: Store<ConfigMap>,
    services: Store<Service>,
}

impl Stores {
    /// The Secrets and ConfigMaps of `namespace`.
    pub fn objects<'a>(&'a self, namespace: &'a str) -> NamespaceObjects<'a> {
        NamespaceObjects {
            stores: self,
            namespace,
        }
    }
}

/// [`spec::Objects`] over the caches, for one namespace.
pub struct NamespaceObjects<'a> {
    stores: &'a Stores,
    namespace: &'a str,
}

impl spec::Objects for NamespaceObjects<'_> {
    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self
            .stores
            .secrets
            .get(&reflector::ObjectRef::new(name).within(self.namespace))?;
        let mut out: BTreeMap<String, Vec<u8>> = s
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.clone().unwrap_or_default() {
            out.insert(k, v.into_bytes());
        }
        Some(out)
    }

    fn config_map(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let c = self
            .stores
            .config_maps
            .get(&reflector::ObjectRef::new(name).within(self.namespace))?;
        let mut out: BTreeMap<String, Vec<u8>> = c
            .binary_data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in c.data.clone().unwrap_or_default() {
            out.insert(k, v.into_bytes());
        }
        Some(out)
    }
}

/// The running runner; [`Runner::stop`] stops every pod.
pub struct Runner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Runner {
    /// Starts watching and running pods.
    pub fn start(client: Client, config: RunnerConfig) -> Runner {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(client, config, stop_rx));
        Runner { stop, task }
    }

    /// Stops every pod (their processes are gone when this returns) and the watches.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Mirrors `api` into a store; `changed` is notified on every event.
fn mirror<K>(api: Api<K>, changed: Arc<Notify>) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::debug!(%error, "pod runner watch");
            }
            changed.notify_one();
        }
    });
    (reader, task)
}

/// One Deployment's pods and the status last written.
#[derive(Default)]
struct Workload {
    pods: Vec<Pod>,
    written: Option<Value>,
}

async fn run(client: Client, config: RunnerConfig, mut stop: watch::Receiver<bool>) {
    let changed = Arc::new(Notify::new());
    let (deployments, t1) = mirror(Api::<Deployment>::all(client.clone()), changed.clone());
    let (secrets, t2) = mirror(Api::<Secret>::all(client.clone()), changed.clone());
    let (config_maps, t3) = mirror(Api::<ConfigMap>::all(client.clone()), changed.clone());
    let (services, t4) = mirror(Api::<Service>::all(client.clone()), changed.clone());
    let watches = [t1, t2, t3, t4];
    let stores = Stores {
        deployments,
        secrets,
        config_maps,
        services,
    };
    let shared = Arc::new(RunnerShared {
        operator_image: config.operator_image.clone(),
        operator_binary: config.operator_binary.clone(),
        host: config.host.clone(),
        tokens: config.tokens.clone(),
        api_url: config.api_url.clone(),
        api_ca: config.api_ca.clone(),
        stores: stores.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default(),
    });
    let ready = async {
        let _ = stores.deployments.wait_until_ready().await;
        let _ = stores.secrets.wait_until_ready().await;
        let _ = stores.config_maps.wait_until_ready().await;
        let _ = stores.services.wait_until_ready().await;
    };
    tokio::select! {
        () = ready => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    let mut workloads: BTreeMap<(String, String), Workload> = BTreeMap::new();
    while !*stop.borrow() {
        sync(&client, &config, &shared, &mut workloads).await;
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let all = workloads.into_values().flat_map(|w| w.pods).map(Pod::stop);
    futures::future::join_all(all).await;
    for t in watches {
        t.abort();
    }
}

/// Short hash of a pod template: pods of another template are replaced.
fn template_hash(d: &Deployment) -> String {
    let template = d.spec.as_ref().map(|s| &s.template);
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..5])
}

/// Brings the pods in line with the Deployments, refreshes volumes, writes statuses.
async fn sync(
    client: &Client,
    config: &RunnerConfig,
    shared: &Arc<RunnerShared>,
    workloads: &mut BTreeMap<(String, String), Workload>,
) {
    let deployments: BTreeMap<(String, String), Arc<Deployment>> = shared
        .stores
        .deployments
        .state()
        .into_iter()
        .map(|d| ((d.namespace().unwrap_or_default(), d.name_any()), d))
        .collect();
    let gone: Vec<_> = workloads
        .keys()
        .filter(|k| !deployments.contains_key(*k))
        .cloned()
        .collect();
    for key in gone {
        if let Some(w) = workloads.remove(&key) {
            futures::future::join_all(w.pods.into_iter().map(Pod::stop)).await;
        }
    }
    for (key, d) in &deployments {
        let w = workloads.entry(key.clone()).or_default();
        converge(config, shared, d, w).await;
        for pod in &w.pods {
            pod.refresh_volumes(shared);
        }
        write_status(client, d, w).await;
    }
}

/// Starts and stops the pods of `d` to match its spec.
async fn converge(
    config: &RunnerConfig,
    shared: &Arc<RunnerShared>,
    d: &Deployment,
    w: &mut Workload,
) {
    let deleting = d.metadata.deletion_timestamp.is_some();
    let desired = d
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(1, |r| usize::try_from(r).unwrap_or(0));
    let desired = if deleting { 0 } else { desired };
    let hash = template_hash(d);
    // Recreate: pods of an old template and surplus replicas stop before new ones start,
    // so a replacement can take its predecessor's address and ports.
    let (keep, old): (Vec<Pod>, Vec<Pod>) = std::mem::take(&mut w.pods)
        .into_iter()
        .enumerate()
        .partition(|(i, p)| *i < desired && p.config.template_hash == hash)
        .map_pair();
    futures::future::join_all(old.into_iter().map(Pod::stop)).await;
    w.pods = keep;
    let Some(spec) = d.spec.as_ref() else { return };
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    while w.pods.len() < desired {
        let replica = w.pods.len();
        let ip = if replica == 0 {
            let service = service_for(&shared.stores, &ns, spec.template.metadata.as_ref())
                .unwrap_or_else(|| name.clone());
            config.addresses.service(&ns, &service)
        } else {
            config.addresses.pod(&ns, &name, replica)
        };
        let pod_name = format!("{name}-{hash}-{replica}");
        let pod = PodConfig {
            namespace: ns.clone(),
            deployment: name.clone(),
            dir: config.root.join("pods").join(&ns).join(&pod_name),
            name: pod_name,
            uid: uuid::Uuid::new_v4().to_string(),
            ip,
            template: spec.template.clone(),
            template_hash: hash.clone(),
        };
        w.pods.push(Pod::start(pod, shared.clone()));
    }
}

/// The name of the Service selecting pods with `meta`'s labels (the first by name).
fn service_for(
    stores: &Stores,
    ns: &str,
    meta: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> Option<String> {
    let labels = meta.and_then(|m| m.labels.clone()).unwrap_or_default();
    let mut names: Vec<String> = stores
        .services
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns))
        .filter(|s| {
            let selector = s.spec.as_ref().and_then(|sp| sp.selector.clone());
            selector.is_some_and(|sel| !sel.is_empty() && Selector::from_iter(sel).matches(&labels))
        })
        .map(|s| s.name_any())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// Writes `d`'s status when it changed.
async fn write_status(client: &Client, d: &Deployment, w: &mut Workload) {
    let desired = d
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(1, |r| usize::try_from(r).unwrap_or(0));
    let hash = template_hash(d);
    let pods: Vec<_> = w
        .pods
        .iter()
        .map(|p| (p.status(), p.config.template_hash == hash))
        .collect();
    let stored = d.status.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let previous = w.written.as_ref().or(stored.as_ref());
    let now = Timestamp::now().to_string();
    let status = status::deployment_status(d.metadata.generation, desired, &pods, previous, &now);
    if !status::changed(w.written.as_ref(), &status) {
        return;
    }
    let api: Api<Deployment> = Api::namespaced(client.clone(), &d.namespace().unwrap_or_default());
    match api
        .patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
    {
        Ok(_) => w.written = Some(status),
        Err(error) => tracing::debug!(%error, deployment = %d.name_any(), "status not written"),
    }
}

/// `(Vec<(i, T)>, Vec<(i, T)>)` → `(Vec<T>, Vec<T>)`.
trait MapPair<T> {
    fn map_pair(self) -> (Vec<T>, Vec<T>);
}

impl<T> MapPair<T> for (Vec<(usize, T)>, Vec<(usize, T)>) {
    fn map_pair(self) -> (Vec<T>, Vec<T>) {
        (
            self.0.into_iter().map(|(_, t)| t).collect(),
            self.1.into_iter().map(|(_, t)| t).collect(),
        )
    }
}
