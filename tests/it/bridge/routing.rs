//! Shared mode routing beyond responses: progress notifications reach the session whose
//! request asked for them, a client's cancellation reaches its own call only, and server
//! requests (sampling) go to the session that caused them, or are refused to the server
//! when it cannot be known.

use serde_json::json;

use super::client::McpClient;
use super::{Bridge, everything_cmd, test_server_cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_session_that_asked_for_it() {
    let bridge = Bridge::start(&[], &everything_cmd(), &[]);
    let mut tasks = Vec::new();
    for n in 0..3 {
        let url = bridge.mcp_url();
        tasks.push(tokio::spawn(async move {
            let mut client = McpClient::new(&url);
            client.initialize().await;
            let steps = 2 + n;
            let params = json!({"name":"trigger-long-running-operation",
                "arguments":{"duration": 0.5, "steps": steps},
                "_meta":{"progressToken":"same-token"}});
            let answer = client.request(json!(1), "tools/call", params).await;
            assert!(
                answer.content_type.starts_with("text/event-stream"),
                "{answer:?}"
            );
            let progress = answer.notifications("notifications/progress");
            assert_eq!(progress.len(), steps, "session {n}: {:?}", answer.messages);
            for p in progress {
                assert_eq!(p["params"]["progressToken"], "same-token");
                assert_eq!(p["params"]["total"], json!(steps));
            }
            assert_eq!(answer.response()["id"], 1);
            assert!(answer.response().get("result").is_some());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_reaches_only_its_own_call() {
    let mut bridge = Bridge::start(&[], &test_server_cmd(), &[]);
    let url = bridge.mcp_url();
    let mut canceller = McpClient::new(&url);
    let mut other = McpClient::new(&url);
    let mut observer = McpClient::new(&url);
    for c in [&mut canceller, &mut other, &mut observer] {
        c.initialize().await;
    }
    let cancelled = tokio::spawn({
        let url = url.clone();
        let session = canceller.session.clone();
        async move {
            let mut c = McpClient::new(&url);
            c.session = session;
            c.request(
                json!(1),
                "tools/call",
                json!({"name":"slow","arguments":{"seconds":600}}),
            )
            .await
        }
    });
    bridge
        .wait_metric("mcp_bridge_child_calls_in_flight", |n| n == 1)
        .await;
    let finishing = tokio::spawn(async move {
        other
            .call_tool(json!(1), "slow", json!({"seconds": 1}))
            .await
    });
    bridge
        .wait_metric("mcp_bridge_child_calls_in_flight", |n| n == 2)
        .await;
    assert_eq!(
        canceller
            .notify(
                "notifications/cancelled",
                json!({"requestId": 1, "reason": "test"})
            )
            .await,
        202
    );
    let finished = finishing.await.unwrap();
    assert_eq!(
        finished["structuredContent"]["result"], "slept 1.0",
        "the other session's call was hit"
    );
    crate::support::eventually::eventually(
        "the server to see the cancellation",
        std::time::Duration::from_secs(20),
        async || {
            let count = observer
                .call_tool(json!(9), "cancelled_calls", json!({}))
                .await;
            if count["structuredContent"]["result"] == 1 {
                Ok(())
            } else {
                Err(count)
            }
        },
    )
    .await;
    cancelled.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_goes_to_the_calling_session_or_is_refused() {
    let mut bridge = Bridge::start(&[], &everything_cmd(), &[]);
    let url = bridge.mcp_url();
    let mut caller = McpClient::new(&url);
    caller.initialize_with(json!({"sampling": {}})).await;

    // Only the caller has a call in flight: the sampling request reaches it, on the
    // call's own stream, and its answer reaches the server.
    let mut stream = caller
        .request_stream(
            json!(1),
            "tools/call",
            json!({"name":"trigger-sampling-request","arguments":{"prompt":"hi","maxTokens":5}}),
        )
        .await;
    let request = stream.next().await.expect("sampling request");
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    let reply = json!({"role":"assistant","content":{"type":"text","text":"sampled by the test"},"model":"test","stopReason":"endTurn"});
    assert_eq!(caller.respond(request["id"].clone(), reply).await, 202);
    let mut response = None;
    while let Some(m) = stream.next().await {
        if m.get("result").is_some() || m.get("error").is_some() {
            response = Some(m);
        }
    }
    let response = response.expect("tool response");
    assert_eq!(response["id"], 1);
    assert!(
        response.to_string().contains("sampled by the test"),
        "{response}"
    );

    // Two sessions with calls in flight: the bridge cannot know whose request it is and
    // refuses it to the server, which reports the failure to the caller.
    let mut busy = McpClient::new(&url);
    busy.initialize().await;
    let busy_call = tokio::spawn(async move {
        busy.request(
            json!(1),
            "tools/call",
            json!({"name":"trigger-long-running-operation","arguments":{"duration":3,"steps":1}}),
        )
        .await
    });
    bridge
        .wait_metric("mcp_bridge_child_calls_in_flight", |n| n == 1)
        .await;
    let refused = caller
        .request(
            json!(2),
            "tools/call",
            json!({"name":"trigger-sampling-request","arguments":{"prompt":"hi","maxTokens":5}}),
        )
        .await;
    assert!(refused.notifications("sampling/createMessage").is_empty());
    assert!(
        refused
            .response()
            .to_string()
            .contains("cannot tell which client session"),
        "{:?}",
        refused.messages
    );
    assert!(
        busy_call
            .await
            .unwrap()
            .notifications("sampling/createMessage")
            .is_empty()
    );
}
