//! Shared mode: many client sessions on one process never see each other's responses,
//! although every session uses the same request ids.

use serde_json::json;

use super::client::McpClient;
use super::{Bridge, everything_cmd};

const SESSIONS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sessions_on_one_process_get_only_their_own_responses() {
    let bridge = Bridge::start(&[], &everything_cmd(), &[]);
    let url = bridge.mcp_url();
    let mut tasks = Vec::new();
    for n in 0..SESSIONS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = McpClient::new(&url);
            client.initialize().await;
            for call in 1..=3 {
                let message = format!("session {n} call {call}");
                let answer = client
                    .request(
                        json!(call),
                        "tools/call",
                        json!({"name":"echo","arguments":{"message":message}}),
                    )
                    .await;
                let response = answer.response();
                assert_eq!(
                    response["id"],
                    json!(call),
                    "session {n}: wrong id in {response}"
                );
                assert_eq!(
                    response["result"]["content"][0]["text"],
                    json!(format!("Echo: {message}")),
                    "session {n} got someone else's answer"
                );
            }
            // String ids that look like the numeric ones must not be confused with them.
            let answer = client.request(json!("1"), "tools/list", json!({})).await;
            assert_eq!(answer.response()["id"], json!("1"));
            assert!(answer.response()["result"]["tools"].is_array());
            assert_eq!(client.delete().await, 200);
        }));
    }
    for task in tasks {
        task.await.expect("session task");
    }
    assert_eq!(bridge.metric("mcp_bridge_sessions_active").await, 0);
    assert_eq!(bridge.metric("mcp_bridge_child_restarts_total").await, 0);
}

#[tokio::test]
async fn sessions_are_required_and_deleted_sessions_are_gone() {
    let bridge = Bridge::start(&[], &everything_cmd(), &[]);
    let mut client = McpClient::new(&bridge.mcp_url());
    let no_session = client
        .post_raw(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await
        .unwrap();
    assert_eq!(no_session.status(), 400);
    let init = client.initialize().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(
        client
            .notify("notifications/roots/list_changed", json!({}))
            .await,
        202
    );
    let answer = client.request(json!(5), "ping", json!({})).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{answer:?}"
    );
    assert_eq!(client.delete().await, 200);
    let gone = client
        .post_raw(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}
