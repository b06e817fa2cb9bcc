//! The playground, in-process: the embedded API server with the CRDs installed, the
//! operator (`run_with`, Services resolving to loopback addresses) and the pod runner,
//! plus a kubeconfig for kubectl and kube clients. `mcp-operator dev` and the end-to-end
//! tests both start one. [`Playground::stop`] stops the pods (no process is left), the
//! operator and the API server. [`Playground::start_on_control_plane`] starts the same on
//! a real etcd, kube-apiserver and kube-controller-manager ([`super::control_plane`])
//! instead of the embedded API server.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tokio::{sync::oneshot, task::JoinHandle};

use super::{
    addresses::LoopbackAddresses,
    control_plane::ControlPlane,
    host,
    manifests::{self, Applied, FIELD_MANAGER},
    runner::{Runner, RunnerConfig, TokenIssuer, pod::log_path, process},
};
use crate::{
    api::crd,
    apiserver::{ApiServer, ApiServerHandle, ApiServerOptions},
    controller::run::{RunConfig, run_with},
};

/// The image name the playground's operator puts in pods; the runner runs the operator
/// binary for it.
pub const DEV_IMAGE: &str = "ghcr.io/mcp-operator/mcp-operator:dev";
/// The operator's namespace in the playground.
pub const OPERATOR_NAMESPACE: &str = "mcp-operator-system";

/// How to start a playground.
#[derive(Clone, Debug)]
pub struct PlaygroundOptions {
    /// Where pod directories, logs, shims and the kubeconfig go.
    pub dir: PathBuf,
    /// The `mcp-operator` binary the operator image stands for.
    pub operator_binary: PathBuf,
    /// The pinned peers folder (see [`host`]); None runs the host's tools as they are.
    pub peers: Option<PathBuf>,
}

/// A running playground.
pub struct Playground {
    api: Server,
    client: Client,
    dir: PathBuf,
    kubeconfig: PathBuf,
    addresses: Arc<LoopbackAddresses>,
    operator_stop: Option<oneshot::Sender<()>>,
    operator: JoinHandle<()>,
    runner: Option<Runner>,
}

/// The API server under the playground.
#[derive(Clone)]
enum Server {
    Embedded(Arc<ApiServerHandle>),
    Real(Arc<ControlPlane>),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Embedded(api) => api.url(),
            Server::Real(cp) => cp.url.clone(),
        }
    }
}

struct Tokens(Server);

impl TokenIssuer for Tokens {
    fn issue(&self, namespace: &str, name: &str) -> String {
        match &self.0 {
            Server::Embedded(api) => api.service_account_token(namespace, name),
            // TokenRequest to the real API server (the ServiceAccount must exist).
            Server::Real(cp) => cp.service_account_token(namespace, name),
        }
    }
}

impl Playground {
    /// Starts everything on the embedded API server and waits until the operator runs.
    pub async fn start(options: PlaygroundOptions) -> anyhow::Result<Playground> {
        let dir = prepare_dir(&options.dir)?;
        let api = Arc::new(
            ApiServer::start(ApiServerOptions::default())
                .await
                .context("starting the embedded API server")?,
        );
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)?;
        let client = api.client()?;
        Self::start_with(options, dir, Server::Embedded(api), client, kubeconfig).await
    }

    /// Starts everything on a real control plane whose binaries are in `bin` (`make
    /// control-plane` → `.peers/control-plane/bin`): the operator and the pod runner use
    /// its admin credentials; pods get ServiceAccount tokens by TokenRequest and a
    /// kubeconfig with its CA.
    pub async fn start_on_control_plane(
        options: PlaygroundOptions,
        bin: &Path,
    ) -> anyhow::Result<Playground> {
        let dir = prepare_dir(&options.dir)?;
        let cp = ControlPlane::start(bin, &dir)
            .await
            .context("starting the real control plane")?;
        tracing::info!(
            url = %cp.url,
            seconds = cp.startup.as_secs_f64(),
            "real control plane started (etcd, kube-apiserver, kube-controller-manager)"
        );
        let kubeconfig = dir.join("kubeconfig");
        std::fs::copy(&cp.kubeconfig, &kubeconfig)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let client = cp.client().await?;
        Self::start_with(options, dir, Server::Real(Arc::new(cp)), client, kubeconfig).await
    }

    async fn start_with(
        options: PlaygroundOptions,
        dir: PathBuf,
        api: Server,
        client: Client,
        kubeconfig: PathBuf,
    ) -> anyhow::Result<Playground> {
        install_crds(&client).await?;
        if let Server::Real(_) = api {
            wait_established(&client).await?;
        }
        for ns in ["default", OPERATOR_NAMESPACE] {
            manifests::ensure_namespace(&client, ns).await?;
        }
        let addresses = Arc::new(LoopbackAddresses::default());
        let mut config = RunConfig::new(OPERATOR_NAMESPACE, DEV_IMAGE);
        config.pod_name = Some("mcp-operator-dev".into());
        config.service_addresses = Some(addresses.clone());
        // Every server of the playground, remote examples included, listens on loopback:
        // the production default would refuse to probe them.
        config.probe_destinations = crate::prober::DestinationPolicy::allow_all();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let operator_client = client.clone();
        let operator = tokio::spawn(async move {
            let stopped = async move {
                let _ = stop_rx.await;
            };
            if let Err(error) = run_with(operator_client, config, stopped).await {
                tracing::error!(%error, "the operator stopped");
            }
        });
        let host = host::prepare(&dir, options.peers.as_deref())?;
        let runner = Runner::start(
            client.clone(),
            RunnerConfig {
                root: dir.clone(),
                operator_image: DEV_IMAGE.to_owned(),
                operator_binary: options.operator_binary.clone(),
                host,
                tokens: Some(Arc::new(Tokens(api.clone()))),
                api_url: Some(api.url()),
                api_ca: match &api {
                    Server::Embedded(_) => None,
                    Server::Real(cp) => Some(cp.ca_file.clone()),
                },
                addresses: addresses.clone(),
            },
        );
        Ok(Playground {
            api,
            client,
            dir,
            kubeconfig,
            addresses,
            operator_stop: Some(stop_tx),
            operator,
            runner: Some(runner),
        })
    }

    /// An admin client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig file (admin, namespace `default`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        self.api.url()
    }

    /// The playground's directory (pods, logs, shims, kubeconfig).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address book Services resolve through.
    pub fn addresses(&self) -> &LoopbackAddresses {
        &self.addresses
    }

    /// A ServiceAccount token accepted by the API server (embedded: minted; real:
    /// TokenRequest, blocking, empty when it fails).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        Tokens(self.api.clone()).issue(namespace, name)
    }

    /// Whether this playground runs on the real control plane.
    pub fn is_real_control_plane(&self) -> bool {
        matches!(self.api, Server::Real(_))
    }

    /// Reads and server-side applies manifests (see [`manifests`]).
    pub async fn apply(
        &self,
        paths: &[PathBuf],
        default_namespace: &str,
    ) -> anyhow::Result<Vec<Applied>> {
        let docs = manifests::load(paths)?;
        manifests::apply(&self.client, &docs, default_namespace).await
    }

    /// What container `container` of Deployment `namespace/deployment`'s pods printed
    /// (every pod, old ones included, in name order).
    pub fn logs(&self, namespace: &str, deployment: &str, container: &str) -> String {
        let Ok(entries) = std::fs::read_dir(self.dir.join("pods").join(namespace)) else {
            return String::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(deployment))
                    .is_some_and(|rest| rest.starts_with('-') && rest.matches('-').count() == 2)
            })
            .collect();
        dirs.sort();
        dirs.iter()
            .filter_map(|d| std::fs::read_to_string(log_path(d, container)).ok())
            .collect()
    }

    /// Pids of live processes started for Deployment `namespace/deployment`'s pods
    /// (descendants included; Linux only, empty elsewhere).
    pub fn processes(&self, namespace: &str, deployment: &str) -> Vec<u32> {
        process::marked_processes(&format!("{namespace}/{deployment}/"))
    }

    /// Stops the pods, the operator and the API server.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(runner) = self.runner.take() {
            runner.stop().await;
        }
        if let Some(stop) = self.operator_stop.take() {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(10), &mut self.operator)
                .await
                .is_err()
            {
                self.operator.abort();
            }
        }
        if let Server::Real(cp) = &self.api {
            let cp = cp.clone();
            let _ = tokio::task::spawn_blocking(move || cp.stop()).await;
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        // Pods not stopped gracefully are killed: their process groups go when the
        // runner's tasks are dropped with the runtime.
        self.operator.abort();
    }
}

/// Creates and canonicalizes the playground's directory, after killing processes an
/// earlier playground left behind.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    let reaped = process::reap_orphans();
    if reaped > 0 {
        tracing::warn!(
            reaped,
            "killed processes left by an earlier playground that did not stop cleanly"
        );
    }
    Ok(dir)
}

/// Server-side applies the CRDs and waits until they are served.
async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("installing CRD {name}"))?;
    }
    Ok(())
}

/// Waits until the real API server serves every CRD (condition `Established`).
async fn wait_established(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for crd in crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let established = api.get_opt(&name).await.ok().flatten().is_some_and(|c| {
                c.status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("CRD {name} not established after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
