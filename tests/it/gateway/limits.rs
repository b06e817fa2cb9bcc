//! Limits: rate limit (429 + Retry-After, then recovery), request size (413), response
//! size (JSON-RPC error instead of the body, for JSON and SSE answers), call timeout
//! (JSON-RPC error, and `notifications/cancelled` reaches the server), and the
//! concurrent-calls limit (-32005 while full, calls pass again once it frees).

use std::time::Duration;

use serde_json::json;

use super::harness::{GatewayProcess, Mcp, config, python_server_with_gateway_tools};
use crate::support;
use crate::support::eventually::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_then_recovers() {
    let upstream = support::server_everything("streamableHttp");
    // 12 per minute: one token every 5 s; burst 2 = initialize + one more request.
    let cfg = config(json!({
        "auth": "None",
        "policy": {"rateLimit": {"requestsPerMinute": 12, "burst": 2, "per": "Binding"}}
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    assert_eq!(c.request("ping", json!({})).await.status, 200);
    let limited = c.request("ping", json!({})).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.rule(), "RateLimited");
    assert_eq!(limited.error_code(), -32029);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    // Notifications are not counted.
    let n = c
        .post(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}))
        .await;
    assert_ne!(n.status, 429);
    // Recovery: the bucket refills.
    eventually(
        "the rate limit to recover",
        Duration::from_secs(30),
        async || {
            let a = c.request("ping", json!({})).await;
            if a.status == 200 {
                return Ok(());
            }
            assert_eq!(a.status, 429, "{a:?}");
            Err(a)
        },
    )
    .await;
    let r = gw
        .wait_audit("the 429", |r| r["rule"] == "RateLimited")
        .await;
    assert_eq!(r["outcome"], "denied");
    assert_eq!(r["method"], "ping");
    assert!(gw.metric("mcp_gateway_rate_limited_total").await >= 1.0);
}

fn limits_config() -> serde_json::Value {
    config(json!({
        "auth": "None",
        "policy": {"limits": {"maxRequestBytes": 4096, "maxResponseBytes": 20000, "callTimeoutMs": 1500}}
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_and_call_timeout_over_sse_answers() {
    // Streamable HTTP with SSE answers and sessions (cancellation needs the session).
    let upstream = python_server_with_gateway_tools("streamable-http");
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &limits_config(), &[]).await;
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    check_sizes(&mut c).await;

    let t = c.call("slow", json!({"seconds": 30})).await;
    assert_eq!(t.rule(), "Timeout", "{t:?}");
    assert_eq!(t.error_code(), -32008);
    // The server saw notifications/cancelled for that call, in the same session.
    eventually(
        "the upstream to see the cancellation",
        Duration::from_secs(20),
        async || {
            let n = c.call("cancelled_count", json!({})).await;
            if n.text().parse::<u64>().unwrap_or(0) >= 1 {
                Ok(())
            } else {
                Err(n)
            }
        },
    )
    .await;
    assert_eq!(c.call("slow", json!({"seconds": 0})).await.text(), "done");
    let r = gw
        .wait_audit("the timeout", |r| r["rule"] == "Timeout")
        .await;
    assert_eq!(r["outcome"], "error");
    assert_eq!(r["tool"], "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_and_call_timeout_over_json_answers() {
    let upstream = python_server_with_gateway_tools("stateless-json");
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &limits_config(), &[]).await;
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    check_sizes(&mut c).await;
    let t = c.call("slow", json!({"seconds": 30})).await;
    assert_eq!(t.rule(), "Timeout", "{t:?}");
}

async fn check_sizes(c: &mut Mcp) {
    assert_eq!(
        c.call("echo", json!({"message": "small"})).await.text(),
        "small"
    );
    let big_request = c.call("echo", json!({"message": "x".repeat(5000)})).await;
    assert_eq!(big_request.status, 413, "{big_request:?}");
    assert_eq!(big_request.rule(), "TooLarge");
    assert_eq!(big_request.error_code(), -32013);
    assert_eq!(c.call("big", json!({"size": 100})).await.text().len(), 100);
    let big_response = c.call("big", json!({"size": 50_000})).await;
    assert_eq!(big_response.status, 200, "{big_response:?}");
    assert_eq!(big_response.rule(), "TooLarge", "{big_response:?}");
    // The session still works afterwards.
    assert_eq!(
        c.call("echo", json!({"message": "after"})).await.text(),
        "after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_calls_refuses_while_full() {
    let upstream = python_server_with_gateway_tools("streamable-http");
    let cfg = config(json!({"auth": "None", "policy": {"limits": {"maxConcurrentCalls": 1}}}));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    // The slow call and our probing calls race for the one slot: when the slow call
    // loses (it is refused itself), try again. The slow call has a client (and so a
    // connection) of its own, opened before the race: a new connection's set-up would
    // otherwise lose it every time.
    let mut saw_overloaded = false;
    for attempt in 0..5u64 {
        let mut slow_client = Mcp::new(&gw.url(), None);
        slow_client.session = c.session.clone();
        slow_client.next_id = 10_000 + 2 * attempt;
        assert_eq!(
            slow_client
                .call("echo", json!({"message": "warm"}))
                .await
                .text(),
            "warm"
        );
        let slow =
            tokio::spawn(async move { slow_client.call("slow", json!({"seconds": 4})).await });
        // A head start, growing per attempt, so the probes do not start in the same
        // instant as the slow call (under load the probe won every time). It only tunes
        // the race: what the test asserts still comes from the answers.
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
        while !slow.is_finished() {
            let a = c.call("echo", json!({"message": "x"})).await;
            if a.error_code() == -32005 {
                assert_eq!(a.rule(), "Overloaded");
                saw_overloaded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let slow = slow.await.unwrap();
        if saw_overloaded {
            assert_eq!(slow.text(), "done", "{slow:?}");
            break;
        }
        assert_eq!(
            slow.rule(),
            "Overloaded",
            "the slow call ended without a refusal either way: {slow:?}"
        );
    }
    assert!(
        saw_overloaded,
        "no call was refused while the slow one was in flight"
    );
    assert_eq!(
        c.call("echo", json!({"message": "free"})).await.text(),
        "free"
    );
    gw.wait_metric("mcp_gateway_denied_total{rule=\"Overloaded\"}", 1.0)
        .await;
}
