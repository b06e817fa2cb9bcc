//! Every McpServer in examples/ reconciles to its children and status; remote servers
//! (loopback peers instead of GitHub) are probed into Reachable/ToolsDiscovered/inventory.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::Resource;
use mcp_operator::api::server::Phase;
use serde::de::DeserializeOwned;

use super::*;
use crate::support::TestCluster;

/// Waits for child `name` of kind `K` and checks it is owned by `server` and labelled.
pub(super) async fn owned_child<K>(client: &Client, server: &McpServer, name: &str) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let ns = server.namespace().unwrap();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let child = eventually(&format!("{} {ns}/{name}", K::kind(&())), 60, || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok().flatten() }
    })
    .await;
    let uid = server.uid().unwrap();
    assert!(
        child
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true)),
        "{} {name} is controlled by McpServer {}",
        K::kind(&()),
        server.name_any()
    );
    let labels = child.labels();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("mcp-operator")
    );
    assert_eq!(
        labels.get("app.kubernetes.io/instance"),
        Some(&server.name_any())
    );
    child
}

/// Every child a server with a pod gets.
pub(super) async fn all_children(client: &Client, server: &McpServer) {
    let name = server.name_any();
    owned_child::<Deployment>(client, server, &name).await;
    owned_child::<Service>(client, server, &name).await;
    owned_child::<Secret>(client, server, &format!("{name}-gateway")).await;
    owned_child::<ServiceAccount>(client, server, &name).await;
    owned_child::<Role>(client, server, &format!("{name}-gateway")).await;
    owned_child::<RoleBinding>(client, server, &format!("{name}-gateway")).await;
    owned_child::<NetworkPolicy>(client, server, &name).await;
}

#[tokio::test]
async fn every_example_reconciles_to_its_children_and_status() {
    every_example_reconciles(&TestCluster::embedded("examples").await).await;
}

/// The body of [`every_example_reconciles_to_its_children_and_status`], on either API
/// server (`real_cluster::controller` runs it on the real control plane, the operator
/// under the shipped RBAC). The test plays the Deployment controller on both.
pub(crate) async fn every_example_reconciles(c: &TestCluster) {
    let client = c.client.clone();
    let ns = c.ns.as_str();
    let mark = c.audit_mark();
    let operator = Operator::start(c.operator_client().await, config_for(c));
    let mut names = Vec::new();
    for file in [
        "01-stdio-everything.yaml",
        "02-stdio-memory.yaml",
        "03-stdio-filesystem.yaml",
        "04-streamablehttp-everything.yaml",
        "05-sse-everything.yaml",
        "07-uvx-time.yaml",
        "09-binding.yaml",
    ] {
        names.extend(apply_example(&client, ns, file).await);
    }
    assert!(names.len() >= 6, "the examples define servers: {names:?}");
    for name in &names {
        let server = wait_condition(&client, ns, name, "Accepted", "True", None).await;
        all_children(&client, &server).await;
        make_available(&client, ns, name).await;
        let server =
            wait_condition(&client, ns, name, "Available", "True", Some("Available")).await;
        let status = server.status.unwrap();
        let accepted = find_condition(&status.conditions, "Accepted").unwrap();
        assert_eq!(accepted.status, "True", "{name}: {accepted:?}");
        assert_eq!(status.observed_generation, server.metadata.generation);
        assert_eq!(
            status.url.as_deref(),
            Some(format!("http://{name}.{ns}.svc:8080/mcp").as_str())
        );
        assert_eq!(status.deployment_name.as_deref(), Some(name.as_str()));
        assert_eq!(status.service_name.as_deref(), Some(name.as_str()));
        assert!(find_condition(&status.conditions, "Ready").is_some());
        assert!(
            find_condition(&status.conditions, "ToolsPinned").is_none(),
            "no pinning policy"
        );
        let created = wait_event(&client, ns, name, "Created").await;
        assert!(
            created.contains("Deployment") || created.contains("Service") || !created.is_empty()
        );
        // What `kubectl describe` and `kubectl get events` read: core v1 Events selected
        // by involvedObject.
        wait_core_event(&client, ns, name, "Created", &created).await;
    }
    let described = c
        .kubectl_output(&["describe", "mcpserver", &names[0], "-n", ns])
        .await;
    let events = described
        .split_once("\nEvents:")
        .unwrap_or_else(|| panic!("kubectl describe shows no Events section:\n{described}"))
        .1;
    assert!(
        events.contains("Created") && events.contains("mcp-operator"),
        "kubectl describe mcpserver {} shows the operator's Events:\n{described}",
        names[0]
    );
    assert_operator_never_refused(c, &operator, mark);
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn remote_servers_are_probed_directly() {
    let peer = crate::support::server_everything("streamableHttp");
    let html = html_server().await;
    let closed = crate::support::free_port();
    let (_api, client) = cluster().await;
    let ns = "remote";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "everything", remote_spec(&peer.url("/mcp"))).await;
    create_server(&client, ns, "html", remote_spec(&html.url("/mcp"))).await;
    create_server(
        &client,
        ns,
        "closed",
        remote_spec(&format!("http://127.0.0.1:{closed}/mcp")),
    )
    .await;

    let good = wait_condition(&client, ns, "everything", "ToolsDiscovered", "True", None).await;
    let status = good.status.unwrap();
    let reachable = find_condition(&status.conditions, "Reachable").unwrap();
    assert_eq!(reachable.status, "True");
    assert!(
        find_condition(&status.conditions, "Available").is_none(),
        "remote: no Available"
    );
    assert_eq!(status.phase, Some(Phase::Ready));
    assert!(status.tool_count.unwrap() > 0);
    assert_eq!(
        status.tools.len() as i32,
        status.tool_count.unwrap().min(128)
    );
    assert!(
        status
            .tools
            .iter()
            .all(|t| t.sha256.len() == 64 && t.exposed)
    );
    assert!(status.tools_digest.is_some());
    assert!(status.server_info.is_some());
    assert!(status.capabilities.unwrap().tools);
    assert_eq!(status.consecutive_failures, Some(0));
    assert_eq!(status.url.as_deref(), Some(peer.url("/mcp").as_str()));
    assert!(status.deployment_name.is_none());

    let html_server = wait_condition(
        &client,
        ns,
        "html",
        "Reachable",
        "False",
        Some("NotMcpServer"),
    )
    .await;
    let st = html_server.status.unwrap();
    assert_eq!(st.consecutive_failures, Some(1));
    assert_eq!(
        find_condition(&st.conditions, "Ready").unwrap().reason,
        "NotMcpServer"
    );
    wait_condition(
        &client,
        ns,
        "closed",
        "Reachable",
        "False",
        Some("ConnectionFailed"),
    )
    .await;
    let note = wait_event(&client, ns, "closed", "ProbeFailed").await;
    assert!(note.contains("ConnectionFailed"), "{note}");
    operator.stop().await.expect("clean shutdown");
}
