//! The operator side of ServiceAccount tokens: the task of `src/controller/token_review.rs`
//! keeps the ClusterRoleBinding `mcp-operator-gateways` listing the gateway
//! ServiceAccounts of exactly the servers targeted by McpBindings with ServiceAccount
//! subjects, and only those ServiceAccounts the operator created and controls (never a
//! user-chosen `serviceAccountName`). It runs as the operator's ServiceAccount under
//! every object of `config/rbac` (the embedded API server's RBAC mode), creates nothing
//! until a subject is needed, follows servers and bindings as they come and go, and
//! writes nothing while nothing changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use mcp_operator::api::{McpBinding, McpServer, crd};
use mcp_operator::apiserver::{ApiServer, ApiServerOptions};
use mcp_operator::controller::token_review::{CLUSTER_ROLE, CLUSTER_ROLE_BINDING, run};
use serde_json::{Value, json};

use crate::support;
use crate::support::eventually::{assert_unchanged, eventually};

const OPERATOR_NS: &str = "mcp-operator-system";

async fn create_all(client: &Client) {
    let dir = support::repo_path("config/rbac");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    let pp = PostParams::default();
    for path in files {
        let value: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let ns = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let c = client.clone();
        match value["kind"].as_str().unwrap() {
            "ClusterRole" => drop(
                Api::<ClusterRole>::all(c)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ClusterRoleBinding" => drop(
                Api::<ClusterRoleBinding>::all(c)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "Role" => drop(
                Api::<Role>::namespaced(c, &ns)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "RoleBinding" => drop(
                Api::<RoleBinding>::namespaced(c, &ns)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            "ServiceAccount" => drop(
                Api::<ServiceAccount>::namespaced(c, &ns)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap(),
            ),
            other => panic!("{}: unexpected kind {other}", path.display()),
        }
    }
}

async fn subjects(admin: &Client) -> Option<(Vec<String>, String)> {
    let crb = Api::<ClusterRoleBinding>::all(admin.clone())
        .get_opt(CLUSTER_ROLE_BINDING)
        .await
        .unwrap()?;
    assert_eq!(crb.role_ref.name, CLUSTER_ROLE);
    let names = crb
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| format!("{}/{}", s.namespace.unwrap_or_default(), s.name))
        .collect();
    Some((names, crb.metadata.resource_version.unwrap()))
}

/// Polls until the binding lists exactly `want` (15 s deadline); its resourceVersion.
async fn wait_subjects(admin: &Client, want: &[&str]) -> String {
    eventually(
        &format!("the ClusterRoleBinding to list {want:?}"),
        Duration::from_secs(15),
        async || match subjects(admin).await {
            Some((names, rv)) if names == want => Ok(rv),
            other => Err(other),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_keeps_the_gateways_tokenreview_binding() {
    let api = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let admin = api.client().unwrap();
    for crd in crd::all() {
        Api::<CustomResourceDefinition>::all(admin.clone())
            .create(&PostParams::default(), &crd)
            .await
            .unwrap();
    }
    for ns in [OPERATOR_NS, "agents", "other"] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    create_all(&admin).await;
    let operator = api
        .service_account_client(OPERATOR_NS, "mcp-operator")
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run(operator, vec![None], stop_rx));

    let servers = |ns: &str| Api::<McpServer>::namespaced(admin.clone(), ns);
    let bindings = |ns: &str| Api::<McpBinding>::namespaced(admin.clone(), ns);
    let pp = PostParams::default();
    let server = |name: &str, labels: Value, sa: Option<&str>| -> McpServer {
        let mut container = json!({"image": "ghcr.io/example/mcp:1", "port": 3000});
        if let Some(sa) = sa {
            container["serviceAccountName"] = json!(sa);
        }
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": name, "labels": labels},
            "spec": {"transport": "StreamableHttp", "container": container},
        }))
        .unwrap()
    };
    let binding = |name: &str, spec: Value| -> McpBinding {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap()
    };
    // Plays the McpServer controller: the gateway ServiceAccount `<server>` it creates,
    // labelled and controlled by the server. Only such ServiceAccounts are ever listed.
    let own_account = |server: &McpServer| -> ServiceAccount {
        serde_json::from_value(json!({
            "metadata": {
                "name": server.metadata.name, "namespace": server.metadata.namespace,
                "labels": {"app.kubernetes.io/managed-by": "mcp-operator"},
                "ownerReferences": [{"apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
                    "name": server.metadata.name, "uid": server.metadata.uid, "controller": true}],
            },
        }))
        .unwrap()
    };
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), "agents");
    let memory = servers("agents")
        .create(&pp, &server("memory", json!({}), None))
        .await
        .unwrap();
    accounts.create(&pp, &own_account(&memory)).await.unwrap();
    // A user-chosen ServiceAccount (item 12): never given TokenReview rights.
    servers("agents")
        .create(
            &pp,
            &server("search", json!({"tier": "web"}), Some("search-sa")),
        )
        .await
        .unwrap();
    let files = servers("agents")
        .create(&pp, &server("files", json!({"tier": "web"}), None))
        .await
        .unwrap();
    accounts.create(&pp, &own_account(&files)).await.unwrap();
    servers("other")
        .create(&pp, &server("memory", json!({}), None))
        .await
        .unwrap();
    // A binding without ServiceAccount subjects needs no TokenReview: nothing is created.
    bindings("agents")
        .create(
            &pp,
            &binding("tokens", json!({"servers": [{"name": "memory"}]})),
        )
        .await
        .unwrap();
    assert_unchanged(
        "the ClusterRoleBinding (none without subjects)",
        Duration::from_millis(800),
        None,
        async || subjects(&admin).await,
    )
    .await;

    let sa = json!([{"kind": "ServiceAccount", "name": "bot"}]);
    bindings("agents")
        .create(
            &pp,
            &binding(
                "bot",
                json!({"servers": [{"name": "memory"}], "subjects": sa}),
            ),
        )
        .await
        .unwrap();
    wait_subjects(&admin, &["agents/memory"]).await;
    bindings("agents")
        .create(
            &pp,
            &binding(
                "web",
                json!({"serverSelector": {"matchLabels": {"tier": "web"}}, "subjects": sa}),
            ),
        )
        .await
        .unwrap();
    let rv = wait_subjects(&admin, &["agents/files", "agents/memory"]).await;

    // Settled: no write while nothing changes.
    assert_unchanged(
        "the ClusterRoleBinding's resourceVersion",
        Duration::from_millis(1500),
        Some(rv),
        async || subjects(&admin).await.map(|(_, rv)| rv),
    )
    .await;

    // Servers and bindings leaving drop their gateways; the emptied binding stays.
    servers("agents")
        .delete("files", &DeleteParams::default())
        .await
        .unwrap();
    wait_subjects(&admin, &["agents/memory"]).await;
    bindings("agents")
        .delete("bot", &DeleteParams::default())
        .await
        .unwrap();
    wait_subjects(&admin, &[]).await;

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task stops")
        .unwrap();
}
