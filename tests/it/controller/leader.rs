//! Two operators with leader election: only the holder writes; stopping it hands over
//! within the lease duration.

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use mcp_operator::controller::leader::LeaseSettings;

use super::{examples::all_children, *};
use crate::support::TestCluster;

fn elected(c: &TestCluster, identity: &str) -> RunConfig {
    let mut cfg = config_for(c);
    cfg.pod_name = Some(identity.into());
    let mut lease = LeaseSettings::new(OPERATOR_NS, identity);
    lease.duration_secs = 3;
    lease.grace_secs = 1;
    cfg.leader_election = Some(lease);
    cfg
}

async fn holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    leases
        .get_opt("mcp-operator-leader")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn only_the_leader_writes_and_hands_over() {
    let c = TestCluster::embedded("ha").await;
    namespace(&c.client, OPERATOR_NS).await;
    leader_hands_over(&c).await;
}

/// The body of [`only_the_leader_writes_and_hands_over`], on either server (the Lease
/// lives in the operator's namespace, which must exist).
pub(crate) async fn leader_hands_over(c: &TestCluster) {
    let client = c.client.clone();
    let ns = c.ns.as_str();
    let mark = c.audit_mark();
    let a = Operator::start(c.operator_client().await, elected(c, "a"));
    eventually("a holds the Lease", 30, || async {
        (holder(&client).await.as_deref() == Some("a")).then_some(())
    })
    .await;
    let b = Operator::start(c.operator_client().await, elected(c, "b"));
    let server = create_server(
        &client,
        ns,
        "memory",
        json!({
            "transport": "Stdio",
            "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]},
        }),
    )
    .await;
    all_children(&client, &server).await;
    wait_condition(&client, ns, "memory", "Accepted", "True", None).await;
    assert!(a.metrics.writes() > 0);
    assert_eq!(b.metrics.writes(), 0, "the standby never writes");

    a.stop().await.expect("a stops");
    eventually("b takes the Lease within its duration", 6, || async {
        (holder(&client).await.as_deref() == Some("b")).then_some(())
    })
    .await;
    let servers: Api<McpServer> = Api::namespaced(client.clone(), ns);
    servers
        .patch(
            "memory",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    eventually("b reconciles the change", 60, || async {
        let d = deployments.get("memory").await.ok()?;
        (d.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    assert!(b.metrics.writes() > 0);
    assert_operator_never_refused(c, &b, mark);
    b.stop().await.expect("b stops");
}
