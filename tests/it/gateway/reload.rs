//! Live reload: a changed file applies to the next call on an open session; a broken file
//! keeps the last good configuration and is reported without its content.

use serde_json::json;

use super::harness::{GatewayProcess, Mcp, config};
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_policy_applies_on_the_same_session_and_garbage_is_ignored() {
    let upstream = support::server_everything("streamableHttp");
    let gw =
        GatewayProcess::start(&upstream.url("/mcp"), &config(json!({"auth": "None"})), &[]).await;
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    let session = c.session.clone();
    assert_eq!(
        c.call("echo", json!({"message": "1"})).await.text(),
        "Echo: 1"
    );

    gw.write_config(&config(json!({"auth": "None", "policy": {"deny": ["echo"]}})).to_string());
    gw.wait_metric("mcp_gateway_config_reloads_total{result=\"success\"}", 2.0)
        .await;
    let refused = c.call("echo", json!({"message": "2"})).await;
    assert_eq!(refused.rule(), "Denied", "{refused:?}");
    assert!(
        !c.list_tools()
            .await
            .tool_names()
            .contains(&"echo".to_owned())
    );

    gw.write_config("{ \"server\": GARBAGE-CONTENT-7781 ");
    gw.wait_metric("mcp_gateway_config_reloads_total{result=\"failure\"}", 1.0)
        .await;
    assert_eq!(
        c.call("echo", json!({"message": "3"})).await.rule(),
        "Denied"
    );
    assert_eq!(c.call("get-sum", json!({"a": 1, "b": 1})).await.status, 200);
    assert_eq!(c.session, session, "same session throughout");
    let stderr = gw.stderr();
    assert!(
        stderr.contains("not valid; keeping the last good one"),
        "{stderr}"
    );
    assert!(!stderr.contains("GARBAGE-CONTENT-7781"), "{stderr}");
    let m = gw.metrics().await;
    assert!(m.contains("mcp_gateway_active_sessions 1"), "{m}");
}
