//! [`TestCluster`]: one test body, two API servers. A controller test written against a
//! `TestCluster` runs on the embedded API server (`src/apiserver`, a fresh one per test)
//! and on the real control plane of the real-cluster tier ([`super::control_plane`], shared
//! by the run, a namespace per test). The test picks the server; the body sees an admin
//! client, its namespace, ServiceAccount tokens from the TokenRequest API, kubectl, and
//! the operator's identity ([`TestCluster::operator_client`]).
//!
//! On the real control plane only one operator runs at a time ([`TestCluster::real`] holds
//! a slot for the test's life): operators share cluster-scoped objects (the ClusterRoleBinding
//! of gateways that review tokens, the leader Lease in `mcp-operator-system`), and one
//! operator starting would rewrite what another one's test is checking. What the real
//! control plane adds — its audit log — is read with [`TestCluster::audit_mark`] and
//! [`TestCluster::audit_since`].

use std::path::PathBuf;
use std::process::{Command, Stdio};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use mcp_operator::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

use super::control_plane::{ControlPlane, control_plane, create_namespace};
use super::repo_path;

/// The namespace of the shipped RBAC (config/rbac): the operator's ServiceAccount, its
/// Lease and probe token live there.
pub const OPERATOR_NAMESPACE: &str = "mcp-operator-system";
/// The operator's ServiceAccount in config/rbac.
pub const OPERATOR_ACCOUNT: &str = "mcp-operator";

/// Which API server a [`TestCluster`] talks to.
pub enum Server {
    /// Ours, in memory, started for this test.
    Embedded(ApiServerHandle),
    /// etcd, kube-apiserver and kube-controller-manager v1.33, shared by the run.
    Real(&'static ControlPlane),
}

/// An API server with the CRDs installed, an admin client and a namespace for one test.
pub struct TestCluster {
    pub server: Server,
    /// Admin (RBAC does not apply).
    pub client: kube::Client,
    /// This test's namespace (created).
    pub ns: String,
    /// Embedded: a kubeconfig file for kubectl (removed with the server).
    kubeconfig: PathBuf,
    _slot: Option<MutexGuard<'static, ()>>,
}

/// One operator test at a time on the real control plane.
static REAL_SLOT: Mutex<()> = Mutex::const_new(());
/// The shipped CRDs are installed once per run on the real control plane.
static REAL_CRDS: OnceCell<()> = OnceCell::const_new();
/// The shipped RBAC (config/rbac) is applied once per run on the real control plane.
static REAL_RBAC: OnceCell<()> = OnceCell::const_new();

impl TestCluster {
    /// A fresh embedded API server with the CRDs (from the code) and namespace `ns`.
    pub async fn embedded(ns: &str) -> TestCluster {
        mcp_operator::telemetry::init_logging(mcp_operator::telemetry::LogFormat::Plain);
        let server = ApiServer::start(ApiServerOptions::default())
            .await
            .expect("embedded API server starts");
        let client = server.client().expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in mcp_operator::api::crd::all() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD created");
        }
        create_namespace(&client, ns).await;
        let kubeconfig = server.kubeconfig_path().expect("kubeconfig written");
        TestCluster {
            server: Server::Embedded(server),
            client,
            ns: ns.to_owned(),
            kubeconfig,
            _slot: None,
        }
    }

    /// The run's real control plane, with the shipped CRDs (`kubectl apply --server-side -f
    /// crds/`, once per run) and a new namespace named after `test`. Holds the operator
    /// slot until dropped: tests that start operators on the real control plane run one
    /// after the other.
    pub async fn real(test: &str) -> TestCluster {
        let slot = REAL_SLOT.lock().await;
        let mut cluster = TestCluster::real_shared(test).await;
        cluster._slot = Some(slot);
        cluster
    }

    /// [`TestCluster::real`] without the operator slot, for tests that start no operator.
    pub async fn real_shared(test: &str) -> TestCluster {
        let cp = control_plane();
        let client = cp.client().await;
        REAL_CRDS
            .get_or_init(async || {
                super::control_plane::install_shipped_crds(&cp.kubeconfig, &client).await;
            })
            .await;
        let ns = super::control_plane::namespace_name(test);
        create_namespace(&client, &ns).await;
        TestCluster {
            server: Server::Real(cp),
            client,
            ns,
            kubeconfig: cp.kubeconfig.clone(),
            _slot: None,
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self.server, Server::Real(_))
    }

    /// The embedded server's handle (None on the real control plane).
    pub fn embedded_handle(&self) -> Option<&ApiServerHandle> {
        match &self.server {
            Server::Embedded(handle) => Some(handle),
            Server::Real(_) => None,
        }
    }

    /// The pinned kubectl (`make peers`) as admin, namespace flag not set.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(super::peer_path("bin/kubectl"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl with `args` (on a blocking thread: the embedded server may share this
    /// test's runtime); its stdout, panicking with stderr when it fails.
    pub async fn kubectl_output(&self, args: &[&str]) -> String {
        let mut cmd = self.kubectl();
        cmd.args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("kubectl thread")
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A token of ServiceAccount `ns/name` from the TokenRequest API (the ServiceAccount
    /// must exist), for `audiences` (empty: the API server's own), valid for an hour.
    pub async fn token(&self, ns: &str, name: &str, audiences: &[&str]) -> String {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for ServiceAccount {ns}/{name}: {e}"))
            .status
            .expect("TokenRequest status")
            .token
    }

    /// A client authenticating with `token` (RBAC applies).
    pub async fn client_with_token(&self, token: &str) -> kube::Client {
        match &self.server {
            Server::Embedded(handle) => {
                let url: http::Uri = handle.url().parse().expect("URL");
                let mut config = kube::Config::new(url);
                let value =
                    http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
                config.headers.push((http::header::AUTHORIZATION, value));
                kube::Client::try_from(config).expect("client")
            }
            Server::Real(cp) => {
                let text = format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    \
                     server: {}\n    certificate-authority: {}\nusers:\n- name: user\n  user:\n    \
                     token: {token}\ncontexts:\n- name: real\n  context:\n    cluster: real\n    \
                     user: user\ncurrent-context: real\n",
                    cp.url,
                    cp.ca_file.display()
                );
                let kc = Kubeconfig::from_yaml(&text).expect("kubeconfig");
                let config =
                    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                        .await
                        .expect("config");
                kube::Client::try_from(config).expect("client")
            }
        }
    }

    /// A client authenticating as ServiceAccount `ns/name` with a TokenRequest token.
    pub async fn service_account_client(&self, ns: &str, name: &str) -> kube::Client {
        let token = self.token(ns, name, &[]).await;
        self.client_with_token(&token).await
    }

    /// Applies every manifest of config/rbac (server-side, as admin; on the real control
    /// plane once per run): the ClusterRoles, Roles and bindings the operator ships with,
    /// for ServiceAccount `mcp-operator-system/mcp-operator`.
    pub async fn install_shipped_rbac(&self) {
        match &self.server {
            Server::Embedded(_) => apply_shipped_rbac(self.client.clone()).await,
            Server::Real(_) => {
                REAL_RBAC
                    .get_or_init(|| apply_shipped_rbac(self.client.clone()))
                    .await;
            }
        }
    }

    /// The operator's client as the test means to run it: on the real control plane the
    /// operator's ServiceAccount under the shipped RBAC (installed on first use), so every
    /// refusal shows in the audit log; on the embedded server the admin client (its RBAC
    /// is checked by `controller::rbac`).
    pub async fn operator_client(&self) -> kube::Client {
        match &self.server {
            Server::Embedded(_) => self.client.clone(),
            Server::Real(_) => {
                self.install_shipped_rbac().await;
                self.service_account_client(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
                    .await
            }
        }
    }

    /// Where the audit log ends now (0 on the embedded server, which keeps none).
    pub fn audit_mark(&self) -> u64 {
        match &self.server {
            Server::Embedded(_) => 0,
            Server::Real(cp) => std::fs::metadata(&cp.audit_log).map_or(0, |m| m.len()),
        }
    }

    /// The audit records written after `mark` (None on the embedded server).
    pub fn audit_since(&self, mark: u64) -> Option<Vec<AuditRecord>> {
        let Server::Real(cp) = &self.server else {
            return None;
        };
        let bytes = std::fs::read(&cp.audit_log).expect("audit log readable");
        let start = usize::try_from(mark).unwrap_or(usize::MAX).min(bytes.len());
        Some(
            String::from_utf8_lossy(&bytes[start..])
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .map(|v| AuditRecord::from_json(&v))
                .collect(),
        )
    }
}

/// One line of the API server's audit log, the fields the tests read.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub user: String,
    pub verb: String,
    /// `resource[/subresource]`.
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    pub uri: String,
}

impl AuditRecord {
    fn from_json(v: &Value) -> AuditRecord {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let mut resource = s("/objectRef/resource").to_owned();
        if let Some(sub) = v.pointer("/objectRef/subresource").and_then(Value::as_str) {
            resource = format!("{resource}/{sub}");
        }
        AuditRecord {
            user: s("/user/username").to_owned(),
            verb: s("/verb").to_owned(),
            resource,
            namespace: s("/objectRef/namespace").to_owned(),
            name: s("/objectRef/name").to_owned(),
            code: v
                .pointer("/responseStatus/code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or_default(),
            uri: s("/requestURI").to_owned(),
        }
    }

    /// A request that changes state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// The user name of ServiceAccount `ns/name`.
pub fn service_account_user(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

async fn apply_shipped_rbac(client: kube::Client) {
    super::control_plane::ensure_namespace(&client, OPERATOR_NAMESPACE).await;
    let dir = repo_path("config/rbac");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/rbac")
        .map(|e| e.expect("entry").path())
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .filter(|f| f.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("RBAC manifest readable");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if !value.is_null() {
                apply(&client, &value).await;
            }
        }
    }
}

/// Server-side applies `object` (field manager `tests`, forced) as `client`.
pub async fn apply(client: &kube::Client, object: &Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovery of {api_version} {kind}: {e}"));
    let name = object["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply("tests").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}
