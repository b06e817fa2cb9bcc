//! A crash of the stdio server mid-call: exactly the calls in flight fail with a clear
//! JSON-RPC error, the process is restarted, and the same sessions keep working.

use serde_json::json;

use super::client::McpClient;
use super::{Bridge, test_server_cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_the_calls_in_flight_then_sessions_recover() {
    let mut bridge = Bridge::start(&[], &test_server_cmd(), &[]);
    let url = bridge.mcp_url();
    let mut slow_a = McpClient::new(&url);
    let mut slow_b = McpClient::new(&url);
    let mut crasher = McpClient::new(&url);
    let mut idle = McpClient::new(&url);
    for c in [&mut slow_a, &mut slow_b, &mut crasher, &mut idle] {
        c.initialize().await;
    }
    let pid_before = idle.call_tool(json!(1), "pid", json!({})).await;

    let a = tokio::spawn(async move {
        let answer = slow_a
            .request(
                json!(1),
                "tools/call",
                json!({"name":"slow","arguments":{"seconds":600}}),
            )
            .await;
        (slow_a, answer)
    });
    let b = tokio::spawn(async move {
        let answer = slow_b
            .request(
                json!(1),
                "tools/call",
                json!({"name":"slow","arguments":{"seconds":600}}),
            )
            .await;
        (slow_b, answer)
    });
    bridge
        .wait_metric("mcp_bridge_child_calls_in_flight", |n| n == 2)
        .await;
    let crash = crasher
        .request(
            json!(7),
            "tools/call",
            json!({"name":"crash","arguments":{}}),
        )
        .await;

    let (slow_a, answer_a) = a.await.unwrap();
    let (_slow_b, answer_b) = b.await.unwrap();
    for (answer, id) in [(&crash, 7), (&answer_a, 1), (&answer_b, 1)] {
        let response = answer.response();
        assert_eq!(response["id"], id, "{response}");
        let error = &response["error"];
        assert_eq!(error["code"], -32002, "{response}");
        assert!(
            error["message"].as_str().unwrap().contains("exited"),
            "{error}"
        );
    }

    bridge
        .wait_metric("mcp_bridge_child_up", |up| up == 1)
        .await;
    assert_eq!(bridge.metric("mcp_bridge_child_restarts_total").await, 1);
    // The idle session saw nothing and keeps working on the new process.
    let pid_after = idle.call_tool(json!(2), "pid", json!({})).await;
    assert_ne!(
        pid_before["structuredContent"],
        pid_after["structuredContent"]
    );
    let echoed = slow_a
        .call_tool(json!(2), "echo", json!({"message":"still here"}))
        .await;
    assert_eq!(echoed["structuredContent"]["result"], "still here");
}
