//! A legacy SSE server (server-everything `sse`) served as Streamable HTTP by
//! `mcp_http::sse_upstream::router`, in-process: clients list and call tools as they
//! would directly, each session on its own upstream connection.

use std::time::Duration;

use mcp_operator::mcp_http::sse_upstream;
use serde_json::json;

use super::client::{McpClient, http_client};
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_server_lists_and_calls_tools_over_streamable_http() {
    let upstream = support::server_everything("sse");
    let sse_url = url::Url::parse(&upstream.url("/sse")).unwrap();
    let app = sse_upstream::router(sse_url, http_client(), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://127.0.0.1:{port}/mcp");

    let mut first = McpClient::new(&url);
    let mut second = McpClient::new(&url);
    let init = first.initialize().await;
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    second.initialize().await;
    for (n, client) in [&first, &second].into_iter().enumerate() {
        let echoed = client
            .call_tool(json!(1), "echo", json!({"message": format!("session {n}")}))
            .await;
        assert_eq!(echoed["content"][0]["text"], format!("Echo: session {n}"));
    }
    let sum = first
        .call_tool(json!(2), "get-sum", json!({"a": 2, "b": 3}))
        .await;
    assert!(sum.to_string().contains('5'), "{sum}");

    // The official Python client sees the same tools through the translation as directly.
    let direct_url = upstream.url("/sse");
    let bridged = tokio::task::spawn_blocking(move || {
        support::python_client_tools(&url, "streamable-http", &[])
    });
    let direct =
        tokio::task::spawn_blocking(move || support::python_client_tools(&direct_url, "sse", &[]));
    let (bridged, direct) = tokio::time::timeout(Duration::from_secs(120), async {
        (bridged.await.unwrap(), direct.await.unwrap())
    })
    .await
    .expect("python clients finished");
    assert!(!direct.is_empty());
    assert_eq!(bridged, direct);
    assert_eq!(first.delete().await, 200);
}
