//! The controller and the MCP protocol eras: a modern-only server (TypeScript SDK v2,
//! `legacy: 'reject'`: it refuses the `initialize` handshake) is Ready with its tools, and
//! status shows the era, the negotiated version and the server's supported versions —
//! the `Era` column of `kubectl get mcpserver -o wide`.

use mcp_operator::api::server::{Phase, ProtocolEra};

use super::*;

#[tokio::test]
async fn a_modern_only_server_is_ready_with_its_tools_and_era() {
    let peer = crate::prober::eras::ts_era_server(true);
    let (_api, client) = cluster().await;
    let ns = "eras";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "modern-only", remote_spec(&peer.url("/mcp"))).await;

    let server = wait_condition(&client, ns, "modern-only", "Ready", "True", None).await;
    let status = server.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Ready));
    let info = status.server_info.expect("serverInfo");
    assert_eq!(info.era, Some(ProtocolEra::Modern), "{info:?}");
    assert_eq!(info.protocol_version, "2026-07-28");
    assert_eq!(info.supported_versions, ["2026-07-28"]);
    assert_eq!(info.name, "ts-modern-only");
    assert_eq!(status.tool_count, Some(3));
    let tools: Vec<&str> = status.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tools, ["add", "echo", "region_echo"]);
    assert!(
        status
            .tools
            .iter()
            .all(|t| t.exposed && t.sha256.len() == 64)
    );
    operator.stop().await.expect("clean shutdown");
}

#[test]
fn kubectl_get_o_wide_shows_the_era() {
    use kube::CustomResourceExt as _;
    let crd = McpServer::crd();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let era = columns
        .iter()
        .find(|c| c.name == "Era")
        .expect("an Era printer column");
    assert_eq!(era.json_path, ".status.serverInfo.era");
    assert_eq!(era.priority, Some(1), "only with -o wide");
}
