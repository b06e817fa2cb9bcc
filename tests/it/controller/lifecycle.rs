//! Spec changes reach the affected children; disabling a remote server's gateway deletes
//! its children; deleting the McpServer garbage-collects everything.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::api::DeleteParams;

use super::{examples::all_children, *};
use crate::support::TestCluster;

fn memory_spec(replicas: i32) -> Value {
    json!({
        "transport": "Stdio",
        "replicas": replicas,
        "container": {"image": "node:22-alpine", "command": ["npx", "-y", "@modelcontextprotocol/server-memory"]},
    })
}

async fn gone<K>(client: &Client, ns: &str, name: &str)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    eventually(&format!("{} {ns}/{name} deleted", K::kind(&())), 60, || {
        let api = api.clone();
        async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
    })
    .await;
}

async fn all_gone(client: &Client, ns: &str, name: &str) {
    gone::<Deployment>(client, ns, name).await;
    gone::<Service>(client, ns, name).await;
    gone::<Secret>(client, ns, &format!("{name}-gateway")).await;
    gone::<ServiceAccount>(client, ns, name).await;
    gone::<Role>(client, ns, &format!("{name}-gateway")).await;
    gone::<RoleBinding>(client, ns, &format!("{name}-gateway")).await;
    gone::<NetworkPolicy>(client, ns, name).await;
}

#[tokio::test]
async fn spec_changes_update_prune_and_delete_children() {
    spec_changes_and_deletion(&TestCluster::embedded("lifecycle").await).await;
}

/// The body of [`spec_changes_update_prune_and_delete_children`], on either server. The
/// operator is stopped before the McpServer is deleted: the children go because the
/// garbage collector (ours, or kube-controller-manager's) follows their ownerReferences.
pub(crate) async fn spec_changes_and_deletion(c: &TestCluster) {
    let client = c.client.clone();
    let ns = c.ns.as_str();
    let mark = c.audit_mark();
    let operator = Operator::start(c.operator_client().await, config_for(c));
    let servers: Api<McpServer> = Api::namespaced(client.clone(), ns);

    let memory = create_server(&client, ns, "memory", memory_spec(1)).await;
    all_children(&client, &memory).await;
    let patch = json!({"spec": {"replicas": 3, "container": {"image": "node:23-alpine"}}});
    servers
        .patch("memory", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    eventually("Deployment follows replicas and image", 60, || async {
        let d = deployments.get("memory").await.ok()?;
        let spec = d.spec?;
        let image = spec
            .template
            .spec?
            .containers
            .iter()
            .find(|c| c.name == "mcp")?
            .image
            .clone();
        (spec.replicas == Some(3) && image.as_deref() == Some("node:23-alpine")).then_some(())
    })
    .await;
    wait_event(&client, ns, "memory", "Updated").await;

    let remote = create_server(
        &client,
        ns,
        "catalogue",
        json!({"transport": "StreamableHttp", "remote": {"url": "http://127.0.0.1:9/mcp"}, "probe": {"disabled": true}}),
    )
    .await;
    all_children(&client, &remote).await;
    let patch = json!({"spec": {"gateway": {"enabled": false}}});
    servers
        .patch("catalogue", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    all_gone(&client, ns, "catalogue").await;
    // The children go before the status says so (the real server is slower to show it).
    let st = eventually(
        "catalogue's status names no Deployment or Service",
        60,
        || async {
            let s = wait_condition(&client, ns, "catalogue", "Accepted", "True", None).await;
            let st = s.status?;
            (st.deployment_name.is_none() && st.service_name.is_none()).then_some(st)
        },
    )
    .await;
    assert_eq!(st.url.as_deref(), Some("http://127.0.0.1:9/mcp"));
    assert!(find_condition(&st.conditions, "Available").is_none());
    wait_event(&client, ns, "catalogue", "Deleted").await;

    assert_operator_never_refused(c, &operator, mark);
    operator.stop().await.expect("clean shutdown");
    servers
        .delete("memory", &DeleteParams::default())
        .await
        .unwrap();
    all_gone(&client, ns, "memory").await;
}

#[tokio::test]
async fn readyz_turns_ready_once_every_watch_synced() {
    let (_server, client) = cluster().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config = config();
    config.admin_addr = Some(([127, 0, 0, 1], port).into());
    let operator = Operator::start(client.clone(), config);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    eventually("/readyz answers 200", 20, || {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
    operator.stop().await.expect("clean stop");
}
