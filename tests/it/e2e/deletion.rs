//! Scaling an McpServer to zero stops its pod; deleting it removes its Deployment
//! (garbage collection of owned children) and every process of its pod: bridge, server,
//! gateway, and what they started.

use super::*;

#[tokio::test]
async fn deleting_a_server_stops_its_processes() {
    let t = Target::start("e2e-deletion").await;
    t.apply_yaml(&tiny_server("doomed", "Echoes the text back."))
        .await;
    t.apply_yaml(&tiny_server("survivor", "Echoes the text back."))
        .await;
    t.ready("doomed", 60).await;
    t.ready("survivor", 60).await;
    if !t.is_cluster() {
        // gateway, bridge and node at least.
        let n = t.process_count("doomed").await;
        assert!(n >= 3, "doomed runs {n} processes");
    }
    t.patch_server("doomed", json!({"spec": {"replicas": 0}}))
        .await;
    eventually("doomed scaled to zero: no process left", 60, || async {
        (t.process_count("doomed").await == 0).then_some(())
    })
    .await;
    t.patch_server("doomed", json!({"spec": {"replicas": 1}}))
        .await;
    eventually("doomed scaled back up", 60, || async {
        (t.process_count("doomed").await > 0).then_some(())
    })
    .await;
    t.ready("doomed", 60).await;
    t.servers()
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("McpServer deleted");
    t.wait_stopped("doomed", 60).await;
    assert!(
        t.process_count("survivor").await > 0,
        "the other server keeps running"
    );
    t.ready("survivor", 10).await;
    t.stop().await;
}
