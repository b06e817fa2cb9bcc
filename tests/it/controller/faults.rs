//! The operator survives injected faults (500s, 409s, dropped watches, 410) and converges.

use mcp_operator::apiserver::{FaultKind, FaultRule};

use super::{examples::all_children, *};

#[tokio::test]
async fn operator_converges_through_injected_faults() {
    let (api, client) = cluster().await;
    let ns = "faults";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    // Seeded probabilities rather than every-nth schedules: periodic traffic (probe
    // retries, status writes) can fall into lockstep with an every-nth rule so that one
    // server's retry always draws the fault; a seeded draw stays reproducible without that.
    let rules = [
        FaultRule::new(FaultKind::Error500)
            .verbs(["patch"])
            .probability(0.1, 7),
        FaultRule::new(FaultKind::Error500)
            .verbs(["list"])
            .resource("mcppolicies")
            .probability(0.2, 11),
        FaultRule::new(FaultKind::Conflict)
            .verbs(["patch"])
            .times(5),
        FaultRule::new(FaultKind::DropWatch {
            after: Duration::from_millis(300),
        })
        .verbs(["watch"])
        .times(5),
        FaultRule::new(FaultKind::WatchGone)
            .verbs(["watch"])
            .resource("mcpservers")
            .times(2),
    ];
    let ids: Vec<_> = rules.into_iter().map(|r| api.faults().set(r)).collect();
    let spec = json!({
        "transport": "Stdio",
        "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]},
    });
    for i in 0..3 {
        create_server(&client, ns, &format!("s{i}"), spec.clone()).await;
    }
    for i in 0..3 {
        let name = format!("s{i}");
        let server = wait_condition(&client, ns, &name, "Accepted", "True", None).await;
        all_children(&client, &server).await;
        make_available(&client, ns, &name).await;
        wait_condition(&client, ns, &name, "Available", "True", None).await;
    }
    assert!(
        ids.iter().any(|id| api.faults().fired(*id) > 0),
        "faults fired"
    );
    for id in ids {
        api.faults().remove(id);
    }
    operator.stop().await.expect("clean shutdown");
}

/// A failed write is counted under the step that failed (`Apply`) and under what the API
/// answered (`ApiError` for a 500), and the reconcile retries until it converges.
#[tokio::test]
async fn a_failed_write_is_counted_by_step_and_by_reason() {
    let (api, client) = cluster().await;
    let ns = "failed-step";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    let fault = api.faults().set(
        FaultRule::new(FaultKind::Error500)
            .verbs(["patch"])
            .resource("deployments")
            .times(1),
    );
    let spec = json!({
        "transport": "Stdio",
        "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]},
    });
    create_server(&client, ns, "s", spec).await;
    let server = wait_condition(&client, ns, "s", "Accepted", "True", None).await;
    all_children(&client, &server).await;
    assert_eq!(api.faults().fired(fault), 1, "the fault fired once");
    let metrics = operator.metrics.render();
    assert!(
        metrics.contains("mcp_operator_reconcile_failed_steps_total{step=\"Apply\"} 1"),
        "the failed apply is counted by its step:\n{metrics}"
    );
    assert!(
        metrics.contains("mcp_operator_reconcile_errors_total{reason=\"ApiError\"} 1"),
        "and by what the API answered:\n{metrics}"
    );
    api.faults().remove(fault);
    operator.stop().await.expect("clean shutdown");
}
