//! End-to-end scenarios: real MCP servers run by the operator's own pods, driven only
//! through a kubeconfig, as a user would. By default each scenario starts a playground
//! (`mcp-operator dev` in-process: embedded API server, operator, local pod runner) and
//! talks to it through the kubeconfig it writes. With `MCP_E2E_KUBECONFIG=<file>` (what
//! `make e2e` sets) the same scenarios run against that cluster instead, where the
//! operator must already be installed (see docs/dev.md, "End-to-end tests on kind"):
//! server URLs are then reached through `kubectl port-forward`, logs through
//! `kubectl logs`, and "no process left" becomes "no pod left".
//!
//! Scenarios: [`examples`] every stdio/HTTP/SSE example Ready with its tool count ·
//! [`binding`] a binding's `mcp.json` used unmodified by the official Python SDK client
//! · [`policy`] a denied tool refused and audited · [`pinning`] a changed tool
//! definition raises ToolsChanged and is refused under Enforce · [`deletion`] deleting
//! an McpServer stops its processes · [`eras`] a modern-only (2026-07-28) server Ready
//! with its tools and era.

mod binding;
mod control_plane;
mod deletion;
mod eras;
mod examples;
mod pinning;
mod policy;

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Pod},
    events::v1::Event,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use mcp_operator::{
    api::{McpServer, common::find_condition},
    dev::{
        host, manifests,
        playground::{Playground, PlaygroundOptions},
    },
};
use serde_json::{Value, json};

use crate::support::{peers_dir, python, repo_path};

/// Where the scenarios run.
enum Backend {
    Playground(Box<Playground>, tempfile::TempDir),
    Cluster,
}

/// A scenario's target: a client and kubeconfig, and a namespace of its own.
pub(crate) struct Target {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub ns: String,
    backend: Backend,
}

impl Target {
    /// A fresh target with namespace `ns` (suffixed on a cluster, which may hold an
    /// earlier run's).
    pub async fn start(ns: &str) -> Target {
        mcp_operator::telemetry::init_logging(mcp_operator::telemetry::LogFormat::Plain);
        let (kubeconfig, backend, ns) = match std::env::var_os("MCP_E2E_KUBECONFIG") {
            Some(path) => {
                let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
                (
                    PathBuf::from(path),
                    Backend::Cluster,
                    format!("{ns}-{suffix}"),
                )
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("mcp-e2e-")
                    .tempdir()
                    .expect("temp dir");
                let playground = Playground::start(PlaygroundOptions {
                    dir: dir.path().to_path_buf(),
                    operator_binary: PathBuf::from(env!("CARGO_BIN_EXE_mcp-operator")),
                    peers: host::peers_dir(Some(&peers_dir())),
                })
                .await
                .expect("playground starts");
                let kubeconfig = playground.kubeconfig().to_path_buf();
                (
                    kubeconfig,
                    Backend::Playground(Box::new(playground), dir),
                    ns.to_owned(),
                )
            }
        };
        let config = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig readable");
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig valid");
        let client = Client::try_from(config).expect("client");
        manifests::ensure_namespace(&client, &ns)
            .await
            .expect("namespace");
        Target {
            client,
            kubeconfig,
            ns,
            backend,
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster)
    }

    /// Server-side applies a YAML stream in the scenario's namespace.
    pub async fn apply_yaml(&self, yaml: &str) {
        let docs: Vec<manifests::Document> = manifests::parse(yaml)
            .expect("valid YAML")
            .into_iter()
            .map(|object| manifests::Document {
                source: PathBuf::from("<test>"),
                object,
            })
            .collect();
        manifests::apply(&self.client, &docs, &self.ns)
            .await
            .expect("manifests apply");
    }

    /// Server-side applies the files `examples/<name>`.
    pub async fn apply_examples(&self, names: &[&str]) {
        let paths: Vec<PathBuf> = names
            .iter()
            .map(|n| repo_path(&format!("examples/{n}")))
            .collect();
        let docs = manifests::load(&paths).expect("examples load");
        manifests::apply(&self.client, &docs, &self.ns)
            .await
            .expect("examples apply");
    }

    pub fn servers(&self) -> Api<McpServer> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Merge-patches McpServer `name`'s spec (as the field manager of the manifests).
    pub async fn patch_server(&self, name: &str, patch: Value) {
        self.servers()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("McpServer patched");
    }

    /// Waits until McpServer `name` is Ready and returns it.
    pub async fn ready(&self, name: &str, secs: u64) -> McpServer {
        self.wait_server(name, secs, "Ready=True", |s| {
            condition(s, "Ready").is_some_and(|(st, _)| st == "True")
        })
        .await
    }

    /// Waits until `check` holds for McpServer `name`; the panic shows its status and
    /// the gateway's log.
    pub async fn wait_server(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        check: impl Fn(&McpServer) -> bool,
    ) -> McpServer {
        let found =
            crate::support::eventually::poll(Duration::from_secs(secs), async || {
                match self.servers().get_opt(name).await.ok().flatten() {
                    Some(s) if check(&s) => Ok(s),
                    other => Err(other.and_then(|s| s.status)),
                }
            })
            .await;
        match found {
            Ok(server) => server,
            Err(missed) => panic!(
                "{}/{name}: waiting for {what}: {missed}\nmcp log:\n{}\ngateway log:\n{}",
                self.ns,
                tail(&self.logs(name, "mcp").await, 40),
                tail(&self.logs(name, "gateway").await, 20),
            ),
        }
    }

    /// What container `container` of server `name`'s pods printed.
    pub async fn logs(&self, name: &str, container: &str) -> String {
        match &self.backend {
            Backend::Playground(p, _) => p.logs(&self.ns, name, container),
            Backend::Cluster => self
                .kubectl(&[
                    "logs",
                    &format!("deploy/{name}"),
                    "-c",
                    container,
                    "--tail=-1",
                ])
                .unwrap_or_default(),
        }
    }

    /// The server's gateway audit records (JSON lines with `"target": "audit"`).
    pub async fn audit_records(&self, name: &str) -> Vec<Value> {
        self.logs(name, "gateway")
            .await
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    }

    /// Waits until nothing runs for server `name` any more: no process (playground) or
    /// no pod and no Deployment (cluster).
    pub async fn wait_stopped(&self, name: &str, secs: u64) {
        crate::support::eventually::eventually(
            &format!("{}/{name} to stop running", self.ns),
            Duration::from_secs(secs),
            async || {
                let left = self.running(name).await;
                if left.is_empty() { Ok(()) } else { Err(left) }
            },
        )
        .await
    }

    /// What still runs for server `name`: pids (playground) or pod names (cluster), and
    /// its Deployment.
    pub async fn running(&self, name: &str) -> Vec<String> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let mut left: Vec<String> = match deployments.get_opt(name).await {
            Ok(Some(_)) => vec![format!("Deployment {name}")],
            _ => Vec::new(),
        };
        match &self.backend {
            Backend::Playground(p, _) => left.extend(
                p.processes(&self.ns, name)
                    .into_iter()
                    .map(|pid| format!("pid {pid}")),
            ),
            Backend::Cluster => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
                let lp =
                    ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"));
                if let Ok(list) = pods.list(&lp).await {
                    left.extend(list.into_iter().map(|p| format!("pod {}", p.name_any())));
                }
            }
        }
        left
    }

    /// Live processes of server `name` (playground only; a cluster gives pod names).
    pub async fn process_count(&self, name: &str) -> usize {
        self.running(name)
            .await
            .iter()
            .filter(|s| !s.starts_with("Deployment"))
            .count()
    }

    /// An `mcp.json` usable from this machine: unchanged on the playground (status URLs
    /// are loopback addresses), each URL through a `kubectl port-forward` on a cluster.
    /// Returns the file and the port-forwards to keep alive.
    pub async fn local_mcp_json(
        &self,
        mcp_json: &Value,
        dir: &Path,
    ) -> (PathBuf, Vec<PortForward>) {
        let mut doc = mcp_json.clone();
        let mut forwards = Vec::new();
        if self.is_cluster() {
            let servers = doc["mcpServers"].as_object_mut().expect("mcpServers");
            for entry in servers.values_mut() {
                let url = url::Url::parse(entry["url"].as_str().expect("url")).expect("URL");
                let host = url.host_str().unwrap_or_default();
                let svc = host.split('.').next().unwrap_or_default().to_owned();
                let pf =
                    PortForward::start(&self.kubeconfig, &self.ns, &svc, url.port().unwrap_or(80));
                let mut local = url.clone();
                local.set_host(Some("127.0.0.1")).expect("host");
                local.set_port(Some(pf.port)).expect("port");
                entry["url"] = json!(local.to_string());
                forwards.push(pf);
            }
        }
        let path = dir.join("mcp.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("JSON"))
            .expect("mcp.json written");
        (path, forwards)
    }

    fn kubectl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.ns)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the playground (every process) or deletes the namespace on a cluster.
    pub async fn stop(self) {
        match self.backend {
            Backend::Playground(p, _dir) => p.stop().await,
            Backend::Cluster => {
                let _ = Api::<Namespace>::all(self.client.clone())
                    .delete(&self.ns, &DeleteParams::default())
                    .await;
            }
        }
    }
}

/// A `kubectl port-forward svc/<name>` on a random local port; stopped on drop.
pub(crate) struct PortForward {
    child: Child,
    pub port: u16,
}

impl PortForward {
    fn start(kubeconfig: &Path, ns: &str, svc: &str, port: u16) -> PortForward {
        let local = crate::support::free_port();
        let child = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "-n",
                ns,
                "port-forward",
                &format!("svc/{svc}"),
                &format!("{local}:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl port-forward starts");
        assert!(
            crate::support::wait_for_port(local, Duration::from_secs(30)),
            "port-forward to svc/{svc} did not listen"
        );
        PortForward { child, port: local }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pinned kubectl when installed, else the machine's.
fn kubectl() -> PathBuf {
    let pinned = peers_dir().join("bin/kubectl");
    if pinned.exists() {
        pinned
    } else {
        PathBuf::from("kubectl")
    }
}

/// (status, reason) of condition `type_`.
pub(crate) fn condition(server: &McpServer, type_: &str) -> Option<(String, String)> {
    let status = server.status.as_ref()?;
    find_condition(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// Runs `tests/it/e2e/mcp_json_client.py` (official Python SDK client) with `mcp_json`:
/// lists `server`'s tools, makes `calls`; returns its JSON output.
pub(crate) fn python_client(mcp_json: &Path, server: &str, calls: Value) -> Value {
    let out = Command::new(python())
        .arg(repo_path("tests/it/e2e/mcp_json_client.py"))
        .arg(mcp_json)
        .arg(server)
        .arg(calls.to_string())
        .output()
        .expect("running mcp_json_client.py");
    assert!(
        out.status.success(),
        "mcp_json_client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mcp_json_client.py prints JSON")
}

/// Polls `check` until it returns Some, panicking with `what` after `secs`
/// ([`crate::support::eventually::eventually`] with a timeout in seconds).
pub(crate) async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    crate::support::eventually::eventually(what, Duration::from_secs(secs), async || check().await)
        .await
}

/// Reasons of the Events about McpServer `name`.
pub(crate) async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// An McpServer running `tests/it/e2e/tiny_server.js` with `node -e`, gateway auth
/// `None`, probed every 10 s; `description` becomes the `echo` tool's.
pub(crate) fn tiny_server(name: &str, description: &str) -> String {
    let script =
        std::fs::read_to_string(repo_path("tests/it/e2e/tiny_server.js")).expect("tiny_server.js");
    let server = json!({
        "apiVersion": "mcp-operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": {"name": name},
        "spec": {
            "transport": "Stdio",
            "container": {
                "image": "node:22-alpine",
                "command": ["node", "-e", script],
                "env": [{"name": "TOOL_DESCRIPTION", "value": description}],
                "podSecurityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            },
            "gateway": {"auth": "None"},
            "probe": {"interval": "10s", "timeout": "10s", "retries": 2, "retryDelay": "1s"},
        },
    });
    serde_yaml::to_string(&server).expect("YAML")
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
