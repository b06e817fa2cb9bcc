//! A server that speaks only the MCP 2026-07-28 era (it refuses the `initialize`
//! handshake with -32022, like the TypeScript SDK v2's `legacy: 'reject'`), run by the
//! operator's own pod behind its gateway: the controller's probe negotiates the modern era
//! through the gateway and shows the server Ready with its tools and its era (the ERA
//! column of `kubectl get mcpserver -o wide`).

use super::*;

/// An McpServer running `tiny_modern_server.js` over Streamable HTTP behind the gateway.
fn tiny_modern_server(name: &str) -> String {
    let script = std::fs::read_to_string(repo_path("tests/it/e2e/tiny_modern_server.js"))
        .expect("tiny_modern_server.js");
    let server = json!({
        "apiVersion": "mcp-operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": {"name": name},
        "spec": {
            "transport": "StreamableHttp",
            "container": {
                "image": "node:22-alpine",
                "command": ["node", "-e", script],
                "env": [{"name": "PORT", "value": "3001"}],
                "port": 3001,
                "path": "/mcp",
                "podSecurityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            },
            "gateway": {"auth": "None"},
            "probe": {"interval": "10s", "timeout": "10s", "retries": 2, "retryDelay": "1s"},
        },
    });
    serde_yaml::to_string(&server).expect("YAML")
}

/// `kubectl get mcpserver modern-only ARGS…` in the scenario's namespace (on a blocking
/// thread: the playground's API server runs on the test's runtime).
async fn kubectl_get(t: &Target, args: &[&str]) -> String {
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig")
        .arg(&t.kubeconfig)
        .args(["-n", &t.ns, "get", "mcpserver", "modern-only"])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("kubectl task")
        .expect("running kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl get {args:?}: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_modern_only_server_is_ready_with_its_tools_and_era() {
    let t = Target::start("e2e-eras").await;
    t.apply_yaml(&tiny_modern_server("modern-only")).await;
    let server = t.ready("modern-only", 90).await;
    let status = server.status.expect("status");
    let info = status.server_info.expect("serverInfo");
    assert_eq!(
        info.era,
        Some(mcp_operator::api::server::ProtocolEra::Modern),
        "{info:?}"
    );
    assert_eq!(info.protocol_version, "2026-07-28");
    assert_eq!(info.supported_versions, ["2026-07-28"]);
    assert_eq!(info.name, "tiny-modern");
    let tools: Vec<&str> = status.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tools, ["add", "echo"]);
    assert_eq!(status.tool_count, Some(2));
    // `kubectl get -o wide` has an ERA column; the default view does not.
    let wide = kubectl_get(&t, &["-o", "wide"]).await;
    let header = wide.lines().next().unwrap_or_default();
    assert!(header.contains("ERA") && wide.contains("Modern"), "{wide}");
    let narrow = kubectl_get(&t, &[]).await;
    assert!(!narrow.contains("ERA"), "{narrow}");
    t.stop().await;
}
