//! The controller suite on the real control plane: the bodies of `tests/it/controller`
//! run through [`TestCluster::real`], the operator in-process as ServiceAccount
//! `mcp-operator-system/mcp-operator` under the shipped RBAC (config/rbac), watching the
//! test's namespace. Without kubelet no pod runs: the tests play the Deployment controller
//! (they write Deployment status), as on the embedded server. Each body ends by reading
//! the real API server's audit log: the operator's requests are there, none answered 403.
//! `TestCluster::real` runs these tests one at a time (operators share cluster-scoped
//! objects).

use crate::controller::{binding, examples, idle, leader, lifecycle, token_review};
use crate::support::TestCluster;

/// Every example's children and status, Events as `kubectl describe mcpserver` shows them.
#[tokio::test]
async fn every_example_reconciles_under_the_shipped_rbac() {
    let c = TestCluster::real("examples").await;
    examples::every_example_reconciles(&c).await;
}

/// Spec changes reach the children; deleting the McpServer (operator stopped) leaves the
/// children to kube-controller-manager's garbage collector.
#[tokio::test]
async fn children_follow_the_spec_and_the_real_garbage_collector_removes_them() {
    let c = TestCluster::real("lifecycle").await;
    lifecycle::spec_changes_and_deletion(&c).await;
}

/// Two operators on a real Lease: only the holder writes; stopping it hands over.
#[tokio::test]
async fn leader_election_hands_over_on_a_real_lease() {
    let c = TestCluster::real("ha").await;
    leader::leader_hands_over(&c).await;
}

/// A binding's token rotates; the previous one stays accepted for the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_tokens_rotate() {
    let c = TestCluster::real("rotation").await;
    binding::tokens_rotate(&c).await;
}

/// A targeted gateway's ServiceAccount may create TokenReviews; the real TokenReview
/// authenticates the binding subject's token for the gateways' audience only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_service_account_token_review() {
    let c = TestCluster::real("token-review").await;
    token_review::gateway_reviews_service_account_tokens(&c).await;
}

/// A settled operator writes nothing: its metrics, the objects' resourceVersions and the
/// API server's audit log agree.
#[tokio::test]
async fn settled_operator_makes_no_writes() {
    let c = TestCluster::real("idle").await;
    idle::settled_operator_makes_no_writes(&c).await;
}
