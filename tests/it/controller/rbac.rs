//! The operator runs under exactly the ClusterRole and Roles in config/rbac (as its
//! ServiceAccount, with leader election) and is never refused.

use super::{
    api_server::{API_SERVER_RULES, create_api_server_endpoints, wait_egress},
    examples::all_children,
    *,
};

#[tokio::test]
async fn operator_works_under_the_shipped_rbac() {
    let peer = crate::support::server_everything("streamableHttp");
    let (api, admin) = cluster().await;
    namespace(&admin, OPERATOR_NS).await;
    let ns = "agents";
    namespace(&admin, ns).await;
    create_api_server_endpoints(&admin).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        apply_yaml(&admin, OPERATOR_NS, &std::fs::read_to_string(file).unwrap()).await;
    }
    let client = api
        .service_account_client(OPERATOR_NS, "mcp-operator")
        .expect("ServiceAccount client");
    let mut cfg = config();
    cfg.pod_name = Some("operator-0".into());
    // Leader election is left out: the embedded API server refuses kube-lease-manager's
    // apply patches (see controller::leader), unrelated to RBAC.
    let operator = Operator::start(client, cfg);

    let server = create_server(
        &admin,
        ns,
        "memory",
        json!({
            "transport": "Stdio",
            "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]},
        }),
    )
    .await;
    all_children(&admin, &server).await;
    make_available(&admin, ns, "memory").await;
    wait_condition(&admin, ns, "memory", "Available", "True", None).await;
    wait_event(&admin, ns, "memory", "Created").await;
    // Under an egress policy the operator reads the API server's endpoints in `default`
    // (the Role there) for the NetworkPolicy.
    create_policy(
        &admin,
        ns,
        "egress",
        json!({"targetRefs": [{"name": "memory"}], "egress": {"allowDns": false}}),
    )
    .await;
    wait_egress(&admin, ns, "memory", &API_SERVER_RULES).await;
    create_server(&admin, ns, "remote", remote_spec(&peer.url("/mcp"))).await;
    wait_condition(&admin, ns, "remote", "ToolsDiscovered", "True", None).await;
    let metrics = operator.metrics.render();
    assert!(
        !metrics.contains("reason=\"Forbidden\""),
        "a request was refused:\n{metrics}"
    );
    operator.stop().await.expect("clean shutdown");
}
