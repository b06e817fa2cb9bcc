//! Probes run off the reconcile workers (issue 16): servers that never answer do not
//! hold up healthy ones, and the probe queue shows in /metrics.

use super::*;

/// A remote server (no gateway) at `url` whose probe gives up after `timeout`.
fn remote(url: &str, timeout: &str) -> Value {
    json!({
        "transport": "StreamableHttp",
        "remote": {"url": url},
        "gateway": {"enabled": false},
        "probe": {"timeout": timeout, "retries": 0, "interval": "1h"},
    })
}

fn gauge(page: &str, name: &str) -> Option<i64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// One reconcile worker and three servers whose probes hang for 30 s each: were a probe
/// to run inside the reconcile, the healthy server created after them would wait 90 s
/// for the worker. It is Ready within 20 s, while the three probes are still in flight.
#[tokio::test]
async fn unreachable_servers_do_not_delay_healthy_ones() {
    let peer = crate::support::server_everything("streamableHttp");
    let hole = crate::support::black_hole().await;
    let (_api, client) = cluster().await;
    let ns = "probe-queue";
    namespace(&client, ns).await;
    let mut config = config();
    config.reconcile_concurrency = 1;
    config.probe_concurrency = 4;
    let operator = Operator::start(client.clone(), config);
    for i in 0..3 {
        create_server(
            &client,
            ns,
            &format!("dead-{i}"),
            remote(&hole.url("/mcp"), "30s"),
        )
        .await;
    }
    // The dead servers' probes have started (or, run inside reconciles, hold the worker).
    eventually("the three dead servers are accepted", 20, || async {
        let mut accepted = 0;
        for i in 0..3 {
            let s = get_server(&client, ns, &format!("dead-{i}")).await;
            let conds = s.status.map(|st| st.conditions).unwrap_or_default();
            accepted += usize::from(find_condition(&conds, "Accepted").is_some());
        }
        (accepted == 3).then_some(())
    })
    .await;
    create_server(&client, ns, "healthy", remote(&peer.url("/mcp"), "10s")).await;
    eventually("the healthy server is Ready", 20, || async {
        let s = get_server(&client, ns, "healthy").await;
        let conds = s.status.map(|st| st.conditions).unwrap_or_default();
        find_condition(&conds, "Ready")
            .is_some_and(|c| c.status == "True")
            .then_some(())
    })
    .await;
    // The dead servers are still being probed: not one has a report yet.
    for i in 0..3 {
        let s = get_server(&client, ns, &format!("dead-{i}")).await;
        let last = s.status.and_then(|st| st.last_probe);
        assert!(last.is_none(), "dead-{i} was probed already: {last:?}");
    }
    let page = operator.metrics.render();
    assert_eq!(
        gauge(&page, "mcp_operator_probes_in_flight"),
        Some(3),
        "{page}"
    );
    assert_eq!(
        gauge(&page, "mcp_operator_probe_queue_depth"),
        Some(0),
        "{page}"
    );
}

/// With one permit in total, the dead servers' probes queue behind each other, and
/// the queue depth says so.
#[tokio::test]
async fn waiting_probes_are_counted_as_queue_depth() {
    let hole = crate::support::black_hole().await;
    let (_api, client) = cluster().await;
    let ns = "probe-depth";
    namespace(&client, ns).await;
    let mut config = config();
    config.probe_concurrency = 1;
    let operator = Operator::start(client.clone(), config);
    for i in 0..3 {
        create_server(
            &client,
            ns,
            &format!("dead-{i}"),
            remote(&hole.url("/mcp"), "30s"),
        )
        .await;
    }
    eventually("one probe in flight, two queued", 20, || async {
        let page = operator.metrics.render();
        (gauge(&page, "mcp_operator_probes_in_flight") == Some(1)
            && gauge(&page, "mcp_operator_probe_queue_depth") == Some(2))
        .then_some(())
    })
    .await;
}
