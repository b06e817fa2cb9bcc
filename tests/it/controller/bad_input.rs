//! Bad input becomes a condition with a reason and an Event, and other servers keep being
//! served: a missing Secret, a policy violation, an unreachable remote, a non-MCP server.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};

use super::*;

#[tokio::test]
async fn bad_input_is_reported_and_others_keep_being_served() {
    let html = html_server().await;
    let closed = crate::support::free_port();
    let (_api, client) = cluster().await;
    let ns = "bad";
    namespace(&client, ns).await;
    apply_example(&client, ns, "08-policy-baseline.yaml").await;
    let operator = Operator::start(client.clone(), config());

    let allowed = json!({
        "transport": "Stdio",
        "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"],
            "securityContext": {"runAsUser": 1000},
            "resources": {"limits": {"memory": "256Mi"}}},
    });
    create_server(&client, ns, "good", allowed.clone()).await;
    let mut needs_secret = allowed.clone();
    needs_secret["container"]["env"] = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}}]);
    create_server(&client, ns, "needs-secret", needs_secret).await;
    let mut forbidden = allowed.clone();
    forbidden["container"]["image"] = json!("busybox:latest");
    create_server(&client, ns, "forbidden", forbidden).await;
    create_server(
        &client,
        ns,
        "unreachable",
        remote_spec(&format!("http://127.0.0.1:{closed}/mcp")),
    )
    .await;
    create_server(&client, ns, "not-mcp", remote_spec(&html.url("/"))).await;

    let s = wait_condition(
        &client,
        ns,
        "needs-secret",
        "Accepted",
        "False",
        Some("SecretNotFound"),
    )
    .await;
    assert_eq!(
        s.status.unwrap().phase,
        Some(mcp_operator::api::server::Phase::Failed)
    );
    let note = wait_event(&client, ns, "needs-secret", "SecretNotFound").await;
    assert!(note.contains("api-token"), "{note}");
    let s = wait_condition(
        &client,
        ns,
        "forbidden",
        "Accepted",
        "False",
        Some("PolicyViolation"),
    )
    .await;
    let msg = find_condition(&s.status.unwrap().conditions, "Accepted")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("baseline"), "names the policy: {msg}");
    wait_event(&client, ns, "forbidden", "PolicyViolation").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    assert!(
        deployments.get_opt("forbidden").await.unwrap().is_none(),
        "not deployed"
    );
    wait_condition(
        &client,
        ns,
        "unreachable",
        "Reachable",
        "False",
        Some("ConnectionFailed"),
    )
    .await;
    wait_event(&client, ns, "unreachable", "ProbeFailed").await;
    wait_condition(
        &client,
        ns,
        "not-mcp",
        "Reachable",
        "False",
        Some("NotMcpServer"),
    )
    .await;
    wait_event(&client, ns, "not-mcp", "ProbeFailed").await;

    // The good server is served throughout, with the policy applied.
    let good = wait_condition(&client, ns, "good", "Accepted", "True", None).await;
    assert_eq!(
        good.status.unwrap().applied_policies,
        vec!["baseline".to_owned()]
    );
    make_available(&client, ns, "good").await;
    wait_condition(&client, ns, "good", "Available", "True", None).await;

    // Fixing the input recovers: the Secret appears.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "api-token", "namespace": ns},
        "stringData": {"token": "s3cr3t-value"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_condition(&client, ns, "needs-secret", "Accepted", "True", None).await;
    for (_, note) in events_for(&client, ns, "needs-secret").await {
        assert!(!note.contains("s3cr3t-value"), "no credential in Events");
    }
    operator.stop().await.expect("clean shutdown");
}
