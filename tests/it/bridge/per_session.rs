//! PerSession mode: every session gets its own process from the warm pool, the pool
//! refills, and a deleted session's process is stopped.

use std::time::Duration;

use serde_json::json;

use super::client::McpClient;
use super::{Bridge, test_server_cmd};

fn pid_of(result: &serde_json::Value) -> u64 {
    result["structuredContent"]["result"].as_u64().expect("pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_their_own_processes_and_the_pool_refills() {
    let mut bridge = Bridge::start(
        &["--session-mode", "PerSession", "--warm-pool", "2"],
        &test_server_cmd(),
        &[],
    );
    bridge
        .wait_metric("mcp_bridge_warm_pool_ready", |n| n == 2)
        .await;
    let url = bridge.mcp_url();
    let mut first = McpClient::new(&url);
    let mut second = McpClient::new(&url);
    first.initialize().await;
    second.initialize().await;
    let pid_first = pid_of(&first.call_tool(json!(1), "pid", json!({})).await);
    let pid_second = pid_of(&second.call_tool(json!(1), "pid", json!({})).await);
    assert_ne!(pid_first, pid_second, "two sessions share a process");
    assert_eq!(bridge.metric("mcp_bridge_warm_pool_taken_total").await, 2);
    bridge
        .wait_metric("mcp_bridge_warm_pool_ready", |n| n == 2)
        .await;

    assert_eq!(first.delete().await, 200);
    let proc_dir = format!("/proc/{pid_first}");
    crate::support::eventually::eventually(
        &format!("process {pid_first} to end with its session"),
        Duration::from_secs(20),
        async || {
            if !std::path::Path::new(&proc_dir).exists() {
                return Ok(());
            }
            let status = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
            if status.contains(") Z ") {
                Ok(()) // exited, not reaped yet
            } else {
                Err(status)
            }
        },
    )
    .await;
    let echoed = second
        .call_tool(json!(2), "echo", json!({"message":"alive"}))
        .await;
    assert_eq!(echoed["structuredContent"]["result"], "alive");
}
