//! Tool-definition pinning end to end: a server's reviewed tools are pinned under an
//! Enforce policy; changing the server (its `echo` description) raises a ToolsChanged
//! Event, marks the tool Changed and not Ready, and the gateway refuses the changed tool
//! while the unchanged one keeps working.

use super::*;

#[tokio::test]
async fn a_changed_tool_is_reported_and_refused_under_enforce() {
    let t = Target::start("e2e-pinning").await;
    t.apply_yaml(&tiny_server("pinned", "Echoes the text back."))
        .await;
    let server = t.ready("pinned", 60).await;
    let status = server.status.expect("status");
    let pins: Vec<Value> = status
        .tools
        .iter()
        .map(|tool| json!({"name": tool.name, "sha256": tool.sha256}))
        .collect();
    assert_eq!(pins.len(), 2, "{pins:?}");
    t.patch_server("pinned", json!({"spec": {"pinnedTools": pins}}))
        .await;
    t.apply_yaml(
        "apiVersion: mcp-operator.dev/v1alpha1\nkind: McpPolicy\nmetadata: {name: pin}\nspec:\n  targetRefs: [{name: pinned}]\n  pinning: Enforce\n",
    )
    .await;
    let server = t
        .wait_server("pinned", 60, "ToolsPinned=True and Ready", |s| {
            condition(s, "ToolsPinned").is_some_and(|(st, _)| st == "True")
                && condition(s, "Ready").is_some_and(|(st, _)| st == "True")
        })
        .await;
    let url = server.status.and_then(|s| s.url).expect("status.url");
    let dir = tempfile::tempdir().expect("temp dir");
    let mcp_json = json!({"mcpServers": {"pinned": {"type": "http", "url": url}}});
    let calls = json!([{"tool": "echo", "args": {"text": "hi"}}, {"tool": "add", "args": {"a": 1, "b": 2}}]);
    {
        let (path, _forwards) = t.local_mcp_json(&mcp_json, dir.path()).await;
        let out = python_client(&path, "pinned", calls.clone());
        assert_eq!(out["calls"][0]["text"], "hi", "pinned and unchanged: {out}");
    }

    t.patch_server(
        "pinned",
        json!({"spec": {"container": {"env": [
            {"name": "TOOL_DESCRIPTION", "value": "Echoes the text back. Also forwards it to a third party."}
        ]}}}),
    )
    .await;
    let server = t
        .wait_server("pinned", 90, "echo Changed, ToolsPinned=False", |s| {
            condition(s, "ToolsPinned").is_some_and(|(st, r)| st == "False" && r == "Changed")
                && s.status.as_ref().is_some_and(|st| {
                    st.tools.iter().any(|tool| {
                        tool.name == "echo"
                            && !tool.exposed
                            && format!("{:?}", tool.reason) == "Some(Changed)"
                    })
                })
        })
        .await;
    assert_eq!(
        condition(&server, "Ready").map(|(st, _)| st),
        Some("False".to_owned()),
        "Enforce: a changed tool makes the server not Ready"
    );
    let note = eventually("a ToolsChanged Event", 30, || async {
        event_reasons(&t.client, &t.ns, "pinned")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "ToolsChanged")
            .map(|(_, note)| note)
    })
    .await;
    assert!(note.contains("echo"), "the Event names the tool: {note}");
    let (path, _forwards) = t.local_mcp_json(&mcp_json, dir.path()).await;
    let out = python_client(&path, "pinned", calls);
    assert_eq!(
        out["calls"][0]["ok"], false,
        "the changed tool is refused: {out}"
    );
    assert_eq!(
        out["calls"][1]["text"], "3",
        "the unchanged tool works: {out}"
    );
    t.stop().await;
}
