//! The controller runtime (`mcp-operator run`, src/controller) running in-process against
//! the embedded API server: children, status, probes, Events, RBAC, idleness, leader
//! election and injected faults. The tests play the Deployment controller (they patch
//! Deployment status) and use loopback MCP peers for probes. This file holds helpers.

mod api_server;
mod bad_input;
pub(crate) mod binding;
mod binding_gateway;
mod eras;
pub(crate) mod examples;
mod faults;
pub(crate) mod idle;
pub(crate) mod leader;
pub(crate) mod lifecycle;
mod policy;
mod probe_queue;
mod rbac;
pub(crate) mod token_review;

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use k8s_openapi::{
    api::{apps::v1::Deployment, events::v1::Event},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use mcp_operator::{
    api::{McpPolicy, McpServer, common::find_condition, crd},
    apiserver::{ApiServer, ApiServerHandle, ApiServerOptions},
    controller::{
        error::Error,
        metrics::Metrics,
        run::{RunConfig, run_with},
    },
    gateway::config::GatewayConfig,
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

/// Namespace of the operator (Lease, probe token).
const OPERATOR_NS: &str = "mcp-operator-system";
/// Image given to the builders.
const IMAGE: &str = "ghcr.io/mcp-operator/mcp-operator:test";

/// A fresh embedded API server with the CRDs installed, and an admin client.
pub(crate) async fn cluster() -> (ApiServerHandle, Client) {
    mcp_operator::telemetry::init_logging(mcp_operator::telemetry::LogFormat::Plain);
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("server starts");
    let client = server.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD created");
    }
    (server, client)
}

/// An operator running in-process; stopped (gracefully) by [`Operator::stop`].
pub(crate) struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Operator {
    pub(crate) fn start(client: Client, config: RunConfig) -> Self {
        let metrics = config.metrics.clone();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(run_with(client, config, async move {
            let _ = rx.await;
        }));
        Self {
            stop: Some(tx),
            task,
            metrics,
        }
    }

    pub(crate) async fn stop(mut self) -> Result<(), Error> {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("operator stops within 30 s")
            .expect("operator task does not panic")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operator's defaults, except that remote servers on loopback (the test peers) may
/// be probed; everything else the default denies stays denied.
pub(crate) fn config() -> RunConfig {
    let mut config = RunConfig::new(OPERATOR_NS, IMAGE);
    config.probe_destinations = mcp_operator::prober::DestinationPolicy::allow_loopback();
    config
}

/// The operator's configuration for `c`: [`config`], watching only the test's namespace
/// on the real control plane (one control plane serves the whole run).
pub(crate) fn config_for(c: &crate::support::TestCluster) -> RunConfig {
    let mut config = config();
    if c.is_real() {
        config.watch_namespaces = vec![c.ns.clone()];
    }
    config
}

/// No request of the operator was refused: no reconcile failed as Forbidden, and on the
/// real control plane the audit log since `mark` holds requests of the operator's
/// ServiceAccount and none answered 403.
pub(crate) fn assert_operator_never_refused(
    c: &crate::support::TestCluster,
    operator: &Operator,
    mark: u64,
) {
    let metrics = operator.metrics.render();
    assert!(
        !metrics.contains("reason=\"Forbidden\""),
        "a request was refused:\n{metrics}"
    );
    let Some(records) = c.audit_since(mark) else {
        return;
    };
    let user = crate::support::test_cluster::service_account_user(OPERATOR_NS, "mcp-operator");
    let mine: Vec<_> = records.iter().filter(|r| r.user == user).collect();
    assert!(
        mine.len() > 10,
        "the audit log shows the operator's requests as {user}: {} of {}",
        mine.len(),
        records.len()
    );
    let refused: Vec<_> = mine.iter().filter(|r| r.code == 403).collect();
    assert!(
        refused.is_empty(),
        "the real API server refused the operator (shipped RBAC) {} times: {refused:#?}",
        refused.len()
    );
}

/// Waits for a core v1 Event with `reason` and `message` about McpServer `name`, selected
/// as `kubectl describe` selects them (field selector on involvedObject).
pub(crate) async fn wait_core_event(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let params = kube::api::ListParams::default().fields(&format!(
        "involvedObject.kind=McpServer,involvedObject.name={name},involvedObject.namespace={ns}"
    ));
    eventually(
        &format!("core v1 Event {reason} about {ns}/{name}"),
        60,
        || {
            let api = api.clone();
            let params = params.clone();
            async move {
                api.list(&params)
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .any(|e| {
                        e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message)
                    })
                    .then_some(())
            }
        },
    )
    .await
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

/// Creates namespace `ns` (no error when it exists).
pub(crate) async fn namespace(client: &Client, ns: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
    let _ = api.create(&PostParams::default(), &obj).await;
}

/// Creates every object of a YAML stream in `ns`; returns the McpServers' names.
async fn apply_yaml(client: &Client, ns: &str, yaml: &str) -> Vec<String> {
    let mut servers = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value.clone()).expect("object");
        let kind = obj.types.as_ref().expect("typed").kind.clone();
        let (group, version) = match obj.types.as_ref().unwrap().api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (
                String::new(),
                obj.types.as_ref().unwrap().api_version.clone(),
            ),
        };
        let (plural, namespaced) = match kind.as_str() {
            "McpServer" => ("mcpservers", true),
            "McpPolicy" => ("mcppolicies", true),
            "McpBinding" => ("mcpbindings", true),
            "Secret" => ("secrets", true),
            "ServiceAccount" => ("serviceaccounts", true),
            "Role" => ("roles", true),
            "RoleBinding" => ("rolebindings", true),
            "ClusterRole" => ("clusterroles", false),
            "ClusterRoleBinding" => ("clusterrolebindings", false),
            "Kustomization" => continue,
            other => panic!("unexpected kind {other}"),
        };
        let ar = ApiResource {
            group: group.clone(),
            version: version.clone(),
            api_version: obj.types.as_ref().unwrap().api_version.clone(),
            kind: kind.clone(),
            plural: plural.to_owned(),
        };
        let ns = obj
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| ns.to_owned());
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), &ns, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {kind} {}: {e}", obj.name_any()));
        if kind == "McpServer" {
            servers.push(obj.name_any());
        }
    }
    servers
}

/// Creates the objects of `examples/<file>` in `ns`.
async fn apply_example(client: &Client, ns: &str, file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let yaml = std::fs::read_to_string(&path).expect("example readable");
    apply_yaml(client, ns, &yaml).await
}

/// Creates an McpServer from a JSON spec.
pub(crate) async fn create_server(client: &Client, ns: &str, name: &str, spec: Value) -> McpServer {
    let server: McpServer = serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("valid McpServer");
    Api::<McpServer>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &server)
        .await
        .expect("McpServer created")
}

/// A remote server without gateway (probed directly), quick probe settings.
fn remote_spec(url: &str) -> Value {
    json!({
        "transport": "StreamableHttp",
        "remote": {"url": url},
        "gateway": {"enabled": false},
        "probe": {"timeout": "5s", "retries": 0, "interval": "1h"},
    })
}

/// Plays the Deployment controller: marks Deployment `name` available.
pub(crate) async fn make_available(client: &Client, ns: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("Deployment {ns}/{name} marked available"),
        60,
        || {
            let api = api.clone();
            async move { try_make_available(&api, name).await.then_some(()) }
        },
    )
    .await;
}

/// One attempt of [`make_available`] (false when the Deployment is missing or a request
/// failed, e.g. an injected fault).
async fn try_make_available(api: &Api<Deployment>, name: &str) -> bool {
    let Ok(Some(d)) = api.get_opt(name).await else {
        return false;
    };
    let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(1);
    let status = json!({"status": {
        "observedGeneration": d.metadata.generation,
        "replicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas, "updatedReplicas": replicas,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .is_ok()
}

pub(crate) async fn get_server(client: &Client, ns: &str, name: &str) -> McpServer {
    Api::<McpServer>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("McpServer exists")
}

/// Waits until condition `type_` of server `name` has `status` (and `reason` if given).
pub(crate) async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> McpServer {
    crate::support::eventually::eventually(
        &format!("{ns}/{name} {type_}={status} {reason:?}"),
        Duration::from_secs(60),
        async || {
            let s = get_server(client, ns, name).await;
            let conds = s
                .status
                .as_ref()
                .map(|st| st.conditions.clone())
                .unwrap_or_default();
            if find_condition(&conds, type_)
                .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
            {
                Ok(s)
            } else {
                Err(s.status)
            }
        },
    )
    .await
}

/// Events (events.k8s.io/v1) about `name` in `ns`, as (reason, note).
pub(crate) async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .expect("events listed")
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Waits for an Event with `reason` about `name`.
pub(crate) async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> String {
    eventually(&format!("Event {reason} about {ns}/{name}"), 60, || async {
        events_for(client, ns, name)
            .await
            .into_iter()
            .find(|(r, _)| r == reason)
            .map(|(_, note)| note)
    })
    .await
}

/// A small HTTP server that answers every request with an HTML page (not MCP).
async fn html_server() -> crate::support::Stub {
    let router = axum::Router::new()
        .fallback(|| async { axum::response::Html("<html><body>hello</body></html>") });
    crate::support::serve(router).await
}

/// Creates an McpPolicy from a JSON spec.
async fn create_policy(client: &Client, ns: &str, name: &str, spec: Value) {
    let policy: McpPolicy = serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1",
        "kind": "McpPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("valid McpPolicy");
    Api::<McpPolicy>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &policy)
        .await
        .expect("McpPolicy created");
}

/// The decoded `config.json` of Secret `<server>-gateway`, if it exists.
pub(crate) async fn gateway_config(
    client: &Client,
    ns: &str,
    server: &str,
) -> Option<GatewayConfig> {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
        .get_opt(&format!("{server}-gateway"))
        .await
        .ok()??;
    let bytes = secret.data?.get("config.json")?.0.clone();
    Some(serde_json::from_slice(&bytes).expect("config.json is a GatewayConfig"))
}

/// Waits until the gateway configuration of `server` exists and satisfies `ok`.
pub(crate) async fn wait_gateway(
    client: &Client,
    ns: &str,
    server: &str,
    what: &str,
    ok: impl Fn(&GatewayConfig) -> bool,
) -> GatewayConfig {
    eventually(
        &format!("gateway config of {ns}/{server}: {what}"),
        60,
        || {
            let ok = &ok;
            async move { gateway_config(client, ns, server).await.filter(|c| ok(c)) }
        },
    )
    .await
}
