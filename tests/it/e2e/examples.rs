//! Every example that runs a server (stdio via npx and uvx, Streamable HTTP, legacy SSE),
//! with the baseline policy, reaches Ready with the tool count its pinned version offers,
//! at a URL this machine can reach.

use super::*;

/// (server, tools). server-everything offers 13 tools to a client without sampling,
/// elicitation and roots (the prober, over HTTP/SSE) and 17 through the bridge, which
/// declares those capabilities towards its process.
const EXPECTED: &[(&str, i32)] = &[
    ("everything", 17),
    ("memory", 9),
    ("filesystem", 14),
    ("everything-http", 13),
    ("everything-sse", 13),
    ("time", 2),
];

#[tokio::test]
async fn every_example_server_reaches_ready_with_its_tools() {
    let t = Target::start("e2e-examples").await;
    t.apply_examples(&[
        "01-stdio-everything.yaml",
        "02-stdio-memory.yaml",
        "03-stdio-filesystem.yaml",
        "04-streamablehttp-everything.yaml",
        "05-sse-everything.yaml",
        "07-uvx-time.yaml",
        "08-policy-baseline.yaml",
    ])
    .await;
    for (name, tools) in EXPECTED {
        let server = t.ready(name, 60).await;
        let status = server.status.expect("status");
        assert_eq!(
            status.tool_count,
            Some(*tools),
            "{name}: {:?}",
            status.tools
        );
        assert_eq!(
            status.tools.len(),
            usize::try_from(*tools).unwrap(),
            "{name}"
        );
        assert_eq!(status.applied_policies, ["baseline"], "{name}");
        let url = url::Url::parse(status.url.as_deref().expect("status.url")).expect("URL");
        if !t.is_cluster() {
            // The Service's own loopback address: reachable from this machine.
            let ip: std::net::Ipv4Addr = url.host_str().unwrap().parse().expect("an IPv4 host");
            assert!(
                ip.is_loopback() && ip != std::net::Ipv4Addr::LOCALHOST,
                "{url}"
            );
        }
        assert_eq!((url.port(), url.path()), (Some(8080), "/mcp"), "{name}");
    }
    // The baseline policy hides destructive tools.
    let memory = t
        .servers()
        .get("memory")
        .await
        .expect("memory")
        .status
        .unwrap();
    let hidden: Vec<_> = memory
        .tools
        .iter()
        .filter(|tool| !tool.exposed)
        .map(|tool| (tool.name.as_str(), format!("{:?}", tool.reason)))
        .collect();
    assert!(
        hidden.contains(&("delete_entities", "Some(Denied)".to_owned())),
        "memory's hidden tools: {hidden:?}"
    );
    t.stop().await;
}
