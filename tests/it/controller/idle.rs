//! A settled cluster sees zero writes, and user objects stay exactly as applied.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service},
};

use super::*;
use crate::support::TestCluster;

/// resourceVersions of every object the operator touches in `ns`.
async fn versions(client: &Client, ns: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    macro_rules! kind {
        ($ty:ty) => {
            for o in Api::<$ty>::namespaced(client.clone(), ns)
                .list(&Default::default())
                .await
                .unwrap()
            {
                out.push((
                    format!("{}/{}", stringify!($ty), o.name_any()),
                    o.resource_version().unwrap_or_default(),
                ));
            }
        };
    }
    kind!(McpServer);
    kind!(Deployment);
    kind!(Service);
    kind!(Secret);
    out.sort();
    out
}

#[tokio::test]
async fn settled_cluster_sees_zero_writes() {
    settled_operator_makes_no_writes(&TestCluster::embedded("idle").await).await;
}

/// The body of [`settled_cluster_sees_zero_writes`], on either server; on the real
/// control plane the API server's audit log counts the operator's writes too.
pub(crate) async fn settled_operator_makes_no_writes(c: &TestCluster) {
    let peer = crate::support::server_everything("streamableHttp");
    let client = c.client.clone();
    let ns = c.ns.as_str();
    let start = c.audit_mark();
    let operator = Operator::start(c.operator_client().await, config_for(c));
    let container_spec = json!({
        "transport": "Stdio",
        "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]},
        "probe": {"interval": "1h"},
    });
    let created = create_server(&client, ns, "memory", container_spec.clone()).await;
    create_server(&client, ns, "remote", remote_spec(&peer.url("/mcp"))).await;
    let mut bad = container_spec.clone();
    bad["container"]["env"] =
        json!([{"name": "T", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]);
    create_server(&client, ns, "bad", bad).await;
    make_available(&client, ns, "memory").await;
    wait_condition(&client, ns, "memory", "Available", "True", None).await;
    // Probes run beside the reconciles: the first one's report (its gateway has no
    // pod here) lands after Available.
    wait_condition(&client, ns, "memory", "Reachable", "False", None).await;
    wait_condition(&client, ns, "remote", "ToolsDiscovered", "True", None).await;
    wait_condition(
        &client,
        ns,
        "bad",
        "Accepted",
        "False",
        Some("SecretNotFound"),
    )
    .await;

    // Settled: no write for a full second.
    crate::support::eventually::settle(
        "the operator's writes",
        Duration::from_secs(1),
        Duration::from_secs(60),
        async || operator.metrics.writes(),
    )
    .await;
    let before = versions(&client, ns).await;
    let writes_before = operator.metrics.writes();
    let mark = c.audit_mark();
    // The measured period: watched throughout, so a write fails at once.
    crate::support::eventually::assert_unchanged(
        "the operator's writes",
        Duration::from_secs(3),
        writes_before,
        async || operator.metrics.writes(),
    )
    .await;
    if let Some(records) = c.audit_since(mark) {
        let user = crate::support::test_cluster::service_account_user(OPERATOR_NS, "mcp-operator");
        let writes: Vec<_> = records
            .iter()
            .filter(|r| r.user == user && r.is_write())
            .collect();
        assert!(
            writes.is_empty(),
            "the API server saw writes while idle: {writes:#?}"
        );
        let settled_writes = c
            .audit_since(start)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.user == user && r.is_write())
            .count();
        assert!(
            settled_writes > 0,
            "the audit log counts the operator's writes"
        );
    }
    assert_eq!(
        operator.metrics.writes(),
        writes_before,
        "writes while idle"
    );
    assert_eq!(
        versions(&client, ns).await,
        before,
        "objects changed while idle"
    );

    let now = get_server(&client, ns, "memory").await;
    assert_eq!(now.spec, created.spec, "spec as applied");
    assert_eq!(now.metadata.labels, created.metadata.labels);
    assert_eq!(now.metadata.annotations, created.metadata.annotations);
    assert_eq!(now.metadata.finalizers, None, "no finalizers");
    assert_eq!(now.metadata.generation, created.metadata.generation);
    assert_operator_never_refused(c, &operator, start);
    operator.stop().await.expect("clean shutdown");
}
