//! The shipped CRDs on a real API server: structural-schema rules, CEL compilation and cost
//! budget, names — everything the real server checks before it serves a kind.

use kube::Api;
use mcp_operator::api::McpServer;

use super::{condition, install_crds, shipped_crds};
use crate::support::RealCluster;

#[tokio::test]
async fn shipped_crds_install_and_become_established() {
    let cluster = RealCluster::new("crds-install").await;
    let installed = install_crds(&cluster).await;
    assert_eq!(installed.len(), shipped_crds().len());
    assert_eq!(
        installed.len(),
        3,
        "crds/ holds McpServer, McpPolicy, McpBinding"
    );
    for crd in &installed {
        let name = crd.metadata.name.as_deref().unwrap_or_default();
        assert_eq!(condition(crd, "NamesAccepted"), Some("True"), "{name}");
        assert_eq!(
            condition(crd, "NonStructuralSchema"),
            None,
            "{name}: the real server finds the schema non-structural: {:?}",
            crd.status
        );
        let accepted = crd.status.as_ref().and_then(|s| s.accepted_names.as_ref());
        assert_eq!(
            accepted.map(|n| n.kind.as_str()),
            Some(crd.spec.names.kind.as_str()),
            "{name}"
        );
    }
    // The kind is served: a typed list through the real discovery and REST path works.
    let servers: Api<McpServer> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = servers
        .list(&Default::default())
        .await
        .expect("McpServers listed");
    assert!(list.items.is_empty());
}
