//! A policy denies a tool: the gateway hides it and refuses a call to it, the official
//! Python SDK client sees that, and the gateway's audit log records the refusal (and the
//! allowed call next to it).

use super::*;

#[tokio::test]
async fn a_denied_tool_is_refused_and_audited() {
    let t = Target::start("e2e-policy").await;
    t.apply_yaml(&tiny_server("tiny", "Echoes the text back."))
        .await;
    t.apply_yaml(
        "apiVersion: mcp-operator.dev/v1alpha1\nkind: McpPolicy\nmetadata: {name: no-echo}\nspec:\n  targetRefs: [{name: tiny}]\n  tools: {deny: [echo]}\n  audit: {level: Hashes}\n",
    )
    .await;
    let server = t
        .wait_server("tiny", 60, "Ready with echo denied", |s| {
            condition(s, "Ready").is_some_and(|(st, _)| st == "True")
                && s.status.as_ref().is_some_and(|st| {
                    st.tools
                        .iter()
                        .any(|tool| tool.name == "echo" && !tool.exposed)
                })
        })
        .await;
    let url = server.status.and_then(|s| s.url).expect("status.url");
    let dir = tempfile::tempdir().expect("temp dir");
    let mcp_json = json!({"mcpServers": {"tiny": {"type": "http", "url": url}}});
    let (path, _forwards) = t.local_mcp_json(&mcp_json, dir.path()).await;
    let out = python_client(
        &path,
        "tiny",
        json!([{"tool": "echo", "args": {"text": "hi"}}, {"tool": "add", "args": {"a": 2, "b": 3}}]),
    );
    assert_eq!(out["tools"], json!(["add"]), "{out}");
    assert_eq!(out["calls"][0]["ok"], false, "echo is refused: {out}");
    assert_eq!(out["calls"][1]["ok"], true, "{out}");
    assert_eq!(out["calls"][1]["text"], "5", "{out}");
    let records = eventually("audit records of both calls", 30, || async {
        let records = t.audit_records("tiny").await;
        let call = |tool: &str| {
            records
                .iter()
                .find(|r| r["method"] == "tools/call" && r["tool"] == tool)
                .cloned()
        };
        Some((call("echo")?, call("add")?))
    })
    .await;
    let (denied, allowed) = records;
    assert_eq!(denied["outcome"], "denied", "{denied}");
    assert_eq!(denied["server"], "tiny", "{denied}");
    assert_eq!(denied["namespace"], t.ns.as_str(), "{denied}");
    assert_eq!(allowed["outcome"], "allowed", "{allowed}");
    assert!(
        allowed["argumentsSha256"].is_string(),
        "Hashes level: {allowed}"
    );
    t.stop().await;
}
