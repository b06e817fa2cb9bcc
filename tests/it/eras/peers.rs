//! Each era peer does what its name says, over Streamable HTTP and stdio: a dual server
//! answers both eras, a modern-only one refuses the handshake with -32022, the legacy-only
//! one fails a pinned modern client, and each client driver reports the version it
//! negotiated. Our servers check `Mcp-Param-Region` against the body (-32020), so the
//! routing headers are really exercised through the paths.

use serde_json::{Value, json};

use crate::support::era_peers::{ClientRun, EraClient, EraServer, Target};

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

#[track_caller]
fn works(run: &ClientRun, version: &str, what: &str) {
    assert!(run.ok(), "{what}: {run:?}");
    assert_eq!(
        run.protocol_version.as_deref(),
        Some(version),
        "{what}: {run:?}"
    );
    assert_eq!(run.tools, ["echo", "add", "region_echo"], "{what}: {run:?}");
}

#[track_caller]
fn refused_as_unsupported(run: &ClientRun, what: &str) {
    let error = run.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("Unsupported protocol version"),
        "{what}: expected a -32022 refusal, got {run:?}"
    );
}

/// Dual and modern-only servers of one SDK, over both transports, with that SDK's client
/// pinned to each era.
fn serve_their_eras(dual: EraServer, modern_only: EraServer, legacy: EraClient, pinned: EraClient) {
    for server in [dual, modern_only] {
        let http = server.http();
        let url = http.url("/mcp");
        let stdio = server.stdio_cmd();
        for (target, via) in [
            (Target::Url(&url), "http"),
            (Target::Stdio(&stdio), "stdio"),
        ] {
            let what = format!("{} over {via}", server.name());
            let call = server.sample_call();
            let modern = pinned.run(target, Some(&call));
            works(&modern, MODERN, &what);
            assert_eq!(
                modern.result_text(),
                Some("eu-west: hi"),
                "{what}: {modern:?}"
            );
            let legacy_run = legacy.run(target, None);
            if server == dual {
                works(&legacy_run, LEGACY, &what);
            } else {
                refused_as_unsupported(&legacy_run, &what);
            }
        }
    }
}

#[test]
fn typescript_sdk_servers_serve_their_eras() {
    serve_their_eras(
        EraServer::TsDual,
        EraServer::TsModernOnly,
        EraClient::TsLegacy,
        EraClient::TsPinned,
    );
}

#[test]
fn python_sdk_servers_serve_their_eras() {
    serve_their_eras(
        EraServer::PyDual,
        EraServer::PyModernOnly,
        EraClient::PythonLegacy,
        EraClient::PythonPinned,
    );
}

#[test]
fn auto_clients_fall_back_on_the_legacy_only_server_and_pinned_ones_fail() {
    let server = EraServer::Everything.http();
    let url = server.url("/mcp");
    for client in [EraClient::PythonAuto, EraClient::TsAuto] {
        let run = client.run(
            Target::Url(&url),
            Some(&EraServer::Everything.sample_call()),
        );
        assert!(run.ok(), "{}: {run:?}", client.name());
        assert_eq!(
            run.protocol_version.as_deref(),
            Some(LEGACY),
            "{}",
            client.name()
        );
        assert!(run.tools.iter().any(|t| t == "get-sum"), "{run:?}");
        assert_eq!(
            run.result_text(),
            Some("The sum of 2 and 3 is 5."),
            "{run:?}"
        );
    }
    for client in [EraClient::PythonPinned, EraClient::TsPinned] {
        let run = client.run(Target::Url(&url), None);
        assert!(
            !run.ok(),
            "{} negotiated with a legacy-only server: {run:?}",
            client.name()
        );
    }
}

#[test]
fn inspector_2_reports_the_era_it_negotiated() {
    let server = EraServer::TsDual.http();
    let url = server.url("/mcp");
    let call = EraServer::TsDual.sample_call();
    for (client, version) in [
        (EraClient::InspectorModern, MODERN),
        (EraClient::InspectorLegacy, LEGACY),
        (EraClient::InspectorAuto, MODERN),
    ] {
        let run = client.run(Target::Url(&url), Some(&call));
        works(&run, version, client.name());
        assert_eq!(run.result_text(), Some("eu-west: hi"), "{run:?}");
    }
    let stdio = EraServer::TsModernOnly.stdio_cmd();
    let run = EraClient::InspectorModern.run(Target::Stdio(&stdio), None);
    works(&run, MODERN, "inspector modern, ts modern-only over stdio");
    let run = EraClient::InspectorLegacy.run(Target::Stdio(&stdio), None);
    assert!(
        !run.ok(),
        "inspector legacy on a modern-only server: {run:?}"
    );
}

/// A modern `tools/call` of `region_echo` with the given `Mcp-Param-Region` header.
async fn region_call(url: &str, region_header: Option<&str>) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "region_echo", "arguments": {"region": "eu-west", "text": "hi"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                             "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut req = crate::gateway::harness::http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "region_echo")
        .body(body.to_string());
    if let Some(region) = region_header {
        req = req.header("mcp-param-region", region);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text)
        .ok()
        .or_else(|| {
            crate::gateway::harness::sse_messages(&text)
                .into_iter()
                .next()
        })
        .unwrap_or(Value::Null);
    (status, value)
}

#[test]
fn the_servers_check_mcp_param_headers_against_the_body() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for server in [EraServer::TsModernOnly, EraServer::PyDual] {
        let peer = server.http();
        let url = peer.url("/mcp");
        rt.block_on(async {
            let (status, ok) = region_call(&url, Some("eu-west")).await;
            assert_eq!(status, 200, "{}: {ok}", server.name());
            assert_eq!(
                ok["result"]["content"][0]["text"],
                "eu-west: hi",
                "{}: {ok}",
                server.name()
            );
            for header in [Some("us-east"), None] {
                let (_, refused) = region_call(&url, header).await;
                assert_eq!(
                    refused["error"]["code"],
                    -32020,
                    "{} with Mcp-Param-Region {header:?}: {refused}",
                    server.name()
                );
            }
        });
    }
}
