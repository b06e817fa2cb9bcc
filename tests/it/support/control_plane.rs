//! The real control plane of the real-cluster tier (tests/it/real_cluster): etcd,
//! kube-apiserver and kube-controller-manager v1.33, built from source by `make
//! control-plane` into `.peers/control-plane/bin/`. A missing binary fails the test with
//! "run `make control-plane`", never a skip.
//!
//! Started by the library's starter, `mcp_operator::dev::control_plane` (the playground's
//! `mcp-operator dev --control-plane`): its certificates, signing key, static tokens,
//! component flags, readiness waits and keeper. What is the tests' own: an audit log
//! ([`AUDIT_POLICY`]), no root-CA publisher (the differential tests compare a namespace's
//! ConfigMaps with the embedded server's), a temporary directory the keeper removes, one
//! control plane per test-binary run, started by the first test that asks
//! ([`control_plane`]), and a namespace per test ([`RealCluster::new`]).
//!
//! Teardown without `Drop` (statics are never dropped): the starter's keeper, a small `sh`
//! whose stdin is a pipe only this process holds. When the test binary exits — normally,
//! on a panic, or killed by SIGKILL — the kernel closes the pipe; the keeper stops the
//! processes (SIGTERM, then SIGKILL to the whole group after at most 5 s) and removes the
//! temporary directory (keys, tokens, etcd data).

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use mcp_operator::dev::control_plane::{self as starter, Options};
use serde_json::json;

pub use mcp_operator::dev::control_plane::ProcessGroup;

use super::peers::peers_dir;

/// What the API server's audit log records: every request at `Metadata` level (verb,
/// user, object, response code) except those of the control plane's own components and
/// health and discovery paths, so that tests can count an operator's writes and refusals.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:apiserver, system:kube-controller-manager]
- level: None
  userGroups: [system:serviceaccounts:kube-system]
- level: None
  nonResourceURLs: ['/readyz*', '/livez*', '/healthz*', '/version', '/openapi*', '/api', '/apis', '/apis/*']
- level: Metadata
";

/// `.peers/control-plane/bin` (under `$MCP_OPERATOR_PEERS` when set).
pub fn control_plane_bin() -> PathBuf {
    peers_dir().join("control-plane/bin")
}

/// A running control plane, shared by every test of this run: the starter's
/// (`url`, `kubeconfig`, `ca_file`, `dir`, `startup` by [`Deref`]) and its audit log.
pub struct ControlPlane {
    started: starter::ControlPlane,
    /// The API server's audit log (JSON lines, [`AUDIT_POLICY`]): who asked what, and the
    /// answer's code.
    pub audit_log: PathBuf,
}

impl Deref for ControlPlane {
    type Target = starter::ControlPlane;

    fn deref(&self) -> &starter::ControlPlane {
        &self.started
    }
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane of this run, started on first use (blocking, on a thread of its own).
/// Panics — failing the test — when it cannot start, e.g. `make control-plane` was not run.
pub fn control_plane() -> &'static ControlPlane {
    let started = CONTROL_PLANE.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?
                .block_on(start())
        })
        .join()
        .unwrap_or_else(|_| Err("the control-plane start panicked".into()))
    });
    match started {
        Ok(cp) => cp,
        Err(e) => panic!("real control plane: {e}"),
    }
}

impl ControlPlane {
    /// A new admin client (one per test: a client is bound to the runtime it first runs on).
    pub async fn client(&self) -> kube::Client {
        self.started
            .client()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// What one test gets: an admin client, the kubeconfig, and a namespace of its own.
pub struct RealCluster {
    /// Admin client.
    pub client: kube::Client,
    /// The admin kubeconfig (for kubectl).
    pub kubeconfig: PathBuf,
    /// A namespace created for this test.
    pub namespace: String,
}

impl RealCluster {
    /// Starts the shared control plane if needed and creates a namespace named after `test`.
    pub async fn new(test: &str) -> RealCluster {
        let cp = control_plane();
        let client = cp.client().await;
        let namespace = namespace_name(test);
        create_namespace(&client, &namespace).await;
        RealCluster {
            client,
            kubeconfig: cp.kubeconfig.clone(),
            namespace,
        }
    }

    /// The pinned kubectl (`make peers`) pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let kubectl = super::peers::peer_path("bin/kubectl");
        let mut cmd = Command::new(kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}

/// Creates namespace `name` (on any API server, real or embedded); panics on failure.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

/// Creates namespace `name` unless it exists (namespaces several tests of one run share,
/// such as `mcp-operator-system`); panics on any other failure.
pub async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// `<test>-<n>`: a DNS label unique in this run.
pub fn namespace_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut base: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(50);
    format!("{}-{n}", base.trim_matches('-'))
}

/// Starts the control plane in a temporary directory the keeper removes.
async fn start() -> Result<ControlPlane, String> {
    let dir = tempfile::Builder::new()
        .prefix("mcp-control-plane-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let options = Options {
        audit_policy: Some(AUDIT_POLICY.to_owned()),
        root_ca_publisher: false,
        remove_on_exit: true,
    };
    match starter::ControlPlane::start_with(&control_plane_bin(), &dir, &options).await {
        Ok(started) => {
            let audit_log = started.audit_log.clone().ok_or("no audit log")?;
            Ok(ControlPlane { started, audit_log })
        }
        Err(e) => {
            // The keeper removes it too when one started; none did when a binary is missing.
            let _ = std::fs::remove_dir_all(&dir);
            Err(format!("{e:#}"))
        }
    }
}

/// Installs the shipped CRDs as a user does — `kubectl apply --server-side -f crds/`, so
/// the files are read as YAML 1.1, like kubectl and helm read them — and waits until each
/// is Established; returns them as the server has them. Idempotent.
pub async fn install_shipped_crds(
    kubeconfig: &Path,
    client: &kube::Client,
) -> Vec<CustomResourceDefinition> {
    let out = Command::new(super::peers::peer_path("bin/kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(super::repo_path("crds"))
        .stdin(Stdio::null())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "the real API server refuses the shipped CRDs (kubectl apply --server-side -f crds/):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = mcp_operator::api::crd::all()
        .into_iter()
        .map(|crd| crd.metadata.name.expect("CRD name"))
        .collect();
    super::eventually::eventually(
        "every shipped CRD Established (last seen: the first that is not)",
        Duration::from_secs(60),
        async || {
            let mut installed = Vec::new();
            for name in &names {
                let crd = api.get(name).await.expect("CRD readable");
                if crd_condition(&crd, "Established") != Some("True") {
                    return Err(format!("{name}: {:?}", crd.status));
                }
                installed.push(crd);
            }
            Ok(installed)
        },
    )
    .await
}

/// The status of a CRD's condition `kind`.
pub fn crd_condition<'a>(crd: &'a CustomResourceDefinition, kind: &str) -> Option<&'a str> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}
