//! A gateway's own ServiceAccount token, as the operator's RBAC leaves it, is accepted by
//! the API server for TokenReview — exactly for the gateways of servers that an McpBinding
//! with ServiceAccount subjects targets — and the review authenticates the subject's
//! token for audience `mcp-operator.dev` only. The gateway's [`TokenReviewer`] runs
//! in-process with a client holding the gateway ServiceAccount's token.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use mcp_operator::controller::token_review::CLUSTER_ROLE_BINDING;
use mcp_operator::gateway::{metrics::Metrics as GatewayMetrics, token_review::TokenReviewer};

use super::{
    binding::{create_binding, gateway_spec},
    *,
};
use crate::support::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_gateway_reviews_service_account_tokens() {
    gateway_reviews_service_account_tokens(&TestCluster::embedded("token-review").await).await;
}

/// The body of [`a_targeted_gateway_reviews_service_account_tokens`], on either server.
pub(crate) async fn gateway_reviews_service_account_tokens(c: &TestCluster) {
    let client = c.client.clone();
    let ns = c.ns.as_str();
    let mark = c.audit_mark();
    // The ClusterRole the operator binds gateways to comes with the shipped RBAC.
    c.install_shipped_rbac().await;
    let operator = Operator::start(c.operator_client().await, config_for(c));
    let agent: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "agent"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &agent)
        .await
        .expect("ServiceAccount agent created");
    create_server(&client, ns, "memory", gateway_spec()).await;
    create_server(&client, ns, "other", gateway_spec()).await;
    create_binding(
        &client,
        ns,
        "agent",
        json!({"servers": [{"name": "memory"}],
               "subjects": [{"kind": "ServiceAccount", "name": "agent"}]}),
    )
    .await;
    // The operator lists the targeted gateway's ServiceAccount (and only it).
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    eventually(
        "the gateways' ClusterRoleBinding lists memory",
        60,
        || async {
            let crb = crbs.get_opt(CLUSTER_ROLE_BINDING).await.ok()??;
            let subjects: Vec<(String, String)> = crb
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.namespace.unwrap_or_default(), s.name))
                .collect();
            (subjects == [(ns.to_owned(), "memory".to_owned())]).then_some(())
        },
    )
    .await;

    // A ServiceAccount token of the subject, for the gateways' audience.
    let token = c.token(ns, "agent", &[AUDIENCE]).await;
    let api_token = c.token(ns, "agent", &[]).await;
    let memory_gateway = c.service_account_client(ns, "memory").await;
    let reviewer = TokenReviewer::new(memory_gateway, Arc::new(GatewayMetrics::default()));
    let expected = format!("system:serviceaccount:{ns}:agent");
    // RBAC caches of the real server follow the new binding within a moment.
    let user = eventually("memory's gateway reviews the agent's token", 30, || async {
        TokenReviewer::new(
            c.service_account_client(ns, "memory").await,
            Arc::new(GatewayMetrics::default()),
        )
        .review(&token)
        .await
    })
    .await;
    assert_eq!(&*user, expected.as_str());
    assert_eq!(
        reviewer.review(&token).await.as_deref(),
        Some(expected.as_str())
    );
    // A token for the API server's audience is not one for the gateways.
    assert_eq!(reviewer.review(&api_token).await, None);
    assert_eq!(reviewer.review("not-a-token").await, None);
    // The gateway of a server no binding targets may not review tokens at all.
    let other_metrics = Arc::new(GatewayMetrics::default());
    let other = TokenReviewer::new(
        c.service_account_client(ns, "other").await,
        other_metrics.clone(),
    );
    assert_eq!(other.review(&token).await, None);
    assert_eq!(
        other_metrics
            .token_reviews_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the API server refused other's gateway"
    );
    if let Some(records) = c.audit_since(mark) {
        let other_user = format!("system:serviceaccount:{ns}:other");
        let memory_user = format!("system:serviceaccount:{ns}:memory");
        let reviews = |user: &str, code: u16| {
            records
                .iter()
                .filter(|r| r.user == user && r.resource == "tokenreviews" && r.code == code)
                .count()
        };
        assert!(
            reviews(&memory_user, 201) >= 1,
            "memory's reviews answered 201"
        );
        assert_eq!(reviews(&other_user, 403), 1, "other's review refused (403)");
    }
    assert_operator_never_refused(c, &operator, mark);
    operator.stop().await.expect("clean shutdown");
}

const AUDIENCE: &str = mcp_operator::gateway::token_review::AUDIENCE;
