//! A binding's Secret is all an agent needs: its `mcp.json`, used unmodified by the
//! official Python SDK client, lists and calls tools on the bound servers through their
//! gateways, with the binding's grants applied (examples 02, 04, 08 and 09).

use k8s_openapi::api::core::v1::Secret;

use super::*;

#[tokio::test]
async fn a_bindings_mcp_json_works_with_the_python_sdk_client() {
    let t = Target::start("e2e-binding").await;
    t.apply_examples(&[
        "02-stdio-memory.yaml",
        "04-streamablehttp-everything.yaml",
        "08-policy-baseline.yaml",
        "09-binding.yaml",
    ])
    .await;
    t.ready("memory", 60).await;
    t.ready("everything-http", 60).await;
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.ns);
    let mcp_json: Value = eventually("Secret research-agent-mcp with mcp.json", 60, || async {
        let secret = secrets.get_opt("research-agent-mcp").await.ok().flatten()?;
        let bytes = secret.data?.get("mcp.json")?.0.clone();
        let doc: Value = serde_json::from_slice(&bytes).ok()?;
        // Both servers' URLs are filled in once both are Ready.
        let servers = doc["mcpServers"].as_object()?;
        (servers.len() == 2 && servers.values().all(|s| s["url"].is_string())).then_some(doc)
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, _forwards) = t.local_mcp_json(&mcp_json, dir.path()).await;
    if !t.is_cluster() {
        let on_disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk, mcp_json, "used exactly as the operator wrote it");
    }

    let out = python_client(
        &path,
        "memory",
        json!([
            {"tool": "create_entities", "args": {"entities": [{"name": "e2e", "entityType": "test", "observations": ["works"]}]}},
            {"tool": "read_graph", "args": {}},
            {"tool": "create_relations", "args": {"relations": []}},
        ]),
    );
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"read_graph") && tools.contains(&"create_entities"),
        "{out}"
    );
    assert!(
        !tools.contains(&"delete_entities"),
        "denied by the baseline policy: {out}"
    );
    assert_eq!(out["calls"][0]["ok"], true, "granted: {out}");
    assert_eq!(out["calls"][1]["ok"], true, "{out}");
    assert!(
        out["calls"][1]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("e2e"),
        "{out}"
    );
    assert_eq!(
        out["calls"][2]["ok"], false,
        "requireGrant, not granted: {out}"
    );

    let out = python_client(
        &path,
        "everything-http",
        json!([{"tool": "echo", "args": {"message": "hello"}}]),
    );
    assert_eq!(
        out["tools"],
        json!(["echo", "get-sum"]),
        "the binding's allow list: {out}"
    );
    assert_eq!(out["calls"][0]["ok"], true, "{out}");
    assert!(
        out["calls"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("hello"),
        "{out}"
    );
    t.stop().await;
}
