//! The playground on the real control plane (`mcp-operator dev --control-plane BIN`):
//! real etcd, kube-apiserver and kube-controller-manager (`make control-plane`) under the
//! in-process operator and the local pod runner. Examples 02, 04, 08 and 09 reach Ready
//! with their tool counts, the operator's Events are on the real server, and a binding's
//! `mcp.json` works through the gateways, and the gateway's Event about a refused call
//! reaches the real API server, written with the ServiceAccount token the runner got by
//! TokenRequest over the https kubeconfig with the CA. Stopping leaves no process.

use k8s_openapi::api::core::v1::Secret;

use super::*;
use crate::support::control_plane_bin;

const NS: &str = "e2e-control-plane";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_runs_the_examples_on_the_real_control_plane() {
    if std::env::var_os("MCP_E2E_KUBECONFIG").is_some() {
        // `make e2e` targets a cluster of its own; this scenario is about the playground.
        eprintln!(
            "e2e::control_plane: the playground's scenario, not run against MCP_E2E_KUBECONFIG"
        );
        return;
    }
    mcp_operator::telemetry::init_logging(mcp_operator::telemetry::LogFormat::Plain);
    let dir = tempfile::Builder::new()
        .prefix("mcp-e2e-cp-")
        .tempdir()
        .expect("temp dir");
    let started = std::time::Instant::now();
    let playground = Playground::start_on_control_plane(
        PlaygroundOptions {
            dir: dir.path().to_path_buf(),
            operator_binary: PathBuf::from(env!("CARGO_BIN_EXE_mcp-operator")),
            peers: host::peers_dir(Some(&peers_dir())),
        },
        &control_plane_bin(),
    )
    .await
    .expect("playground on the real control plane starts (run `make control-plane`)");
    assert!(playground.is_real_control_plane());
    assert!(
        playground.url().starts_with("https://"),
        "{}",
        playground.url()
    );
    let client = playground.client();
    manifests::ensure_namespace(&client, NS)
        .await
        .expect("namespace");
    let examples: Vec<PathBuf> = [
        "02-stdio-memory.yaml",
        "04-streamablehttp-everything.yaml",
        "08-policy-baseline.yaml",
        "09-binding.yaml",
    ]
    .iter()
    .map(|f| repo_path("examples").join(f))
    .collect();
    playground
        .apply(&examples, NS)
        .await
        .expect("examples applied");

    let servers: Api<McpServer> = Api::namespaced(client.clone(), NS);
    for (name, tools) in [("memory", 9), ("everything-http", 13)] {
        let status = eventually(&format!("{name} Ready"), 120, || async {
            let server = servers.get_opt(name).await.ok().flatten()?;
            condition(&server, "Ready")
                .is_some_and(|(s, _)| s == "True")
                .then_some(server.status?)
        })
        .await;
        assert_eq!(status.tool_count, Some(tools), "{name}: {:?}", status.tools);
        assert_eq!(status.applied_policies, ["baseline"], "{name}");
    }
    eprintln!(
        "control plane + memory and everything-http Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let reasons = event_reasons(&client, NS, "memory").await;
    assert!(
        reasons.iter().any(|(r, _)| r == "Created"),
        "the operator's Events on the real server: {reasons:?}"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let mcp_json: Value = eventually("Secret research-agent-mcp with mcp.json", 60, || async {
        let secret = secrets.get_opt("research-agent-mcp").await.ok().flatten()?;
        let doc: Value = serde_json::from_slice(&secret.data?.get("mcp.json")?.0).ok()?;
        let servers = doc["mcpServers"].as_object()?;
        (servers.len() == 2 && servers.values().all(|s| s["url"].is_string())).then_some(doc)
    })
    .await;
    let path = dir.path().join("mcp.json");
    std::fs::write(&path, serde_json::to_vec(&mcp_json).unwrap()).unwrap();
    let out = python_client(
        &path,
        "everything-http",
        json!([{"tool": "echo", "args": {"message": "real"}}]),
    );
    assert_eq!(out["calls"][0]["ok"], true, "through the gateway: {out}");
    assert!(
        out["calls"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("real"),
        "{out}"
    );

    // A call the binding does not grant is refused; the gateway reports it with an Event,
    // written with its ServiceAccount token (TokenRequest) over https (the CA in the
    // pod's kubeconfig).
    let out = python_client(
        &path,
        "memory",
        json!([{"tool": "create_relations", "args": {"relations": []}}]),
    );
    assert_eq!(
        out["calls"][0]["ok"], false,
        "requireGrant, not granted: {out}"
    );
    let note = eventually(
        "the gateway's RequestDenied Event about memory",
        60,
        || async {
            event_reasons(&client, NS, "memory")
                .await
                .into_iter()
                .find(|(reason, _)| reason == "RequestDenied")
                .map(|(_, note)| note)
        },
    )
    .await;
    assert!(note.contains("create_relations"), "{note}");

    playground.stop().await;
    // The components' flags name files under <dir>/control-plane, the pods' under <dir>/pods.
    let needle = dir.path().display().to_string();
    eventually(
        "no process of the playground or its control plane left",
        15,
        || async { processes_naming(&needle).is_empty().then_some(()) },
    )
    .await;
}

/// Live processes whose command line names `needle` (Linux /proc; empty elsewhere).
fn processes_naming(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}
