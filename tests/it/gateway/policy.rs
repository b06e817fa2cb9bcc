//! Tool policy through the gateway: deny and allow lists (Denied), requireGrant with and
//! without a grant (NotGranted), the binding's narrowing, the tool prefix both ways, and
//! pinning (Unpinned, Changed, matching pin) with the definition fetched on a cache miss.

use serde_json::{Value, json};

use super::harness::{GatewayProcess, Mcp, config, hash};
use crate::support;

const ALPHA: &str = "tok-alpha-SECRET";
const BETA: &str = "tok-beta-SECRET";

fn assert_refused(a: &super::harness::Answer, rule: &str, tool: &str) {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.rule(), rule, "{a:?}");
    assert_eq!(a.body["error"]["data"]["tool"], tool, "{a:?}");
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(rule) && message.contains(tool),
        "the message names the rule and the tool: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_allow_grants_narrowing_and_prefix() {
    let upstream = support::server_everything("streamableHttp");
    let cfg = config(json!({
        "toolPrefix": "ev_",
        "policy": {
            "allow": [["echo", "get-*", "toggle-*"]],
            "deny": ["get-env"],
            "requireGrant": ["toggle-*"]
        },
        "bindings": [
            {"name": "alpha", "tokenSha256": [hash(ALPHA)],
             "access": {"grants": ["toggle-simulated-logging"]}},
            {"name": "beta", "tokenSha256": [hash(BETA)],
             "access": {"narrowing": {"deny": ["get-sum"]}}}
        ]
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;

    let mut alpha = Mcp::new(&gw.url(), Some(ALPHA));
    alpha.initialize().await;
    let mut names = alpha.list_tools().await.tool_names();
    names.sort();
    assert_eq!(
        names,
        [
            "ev_echo",
            "ev_get-annotated-message",
            "ev_get-resource-links",
            "ev_get-resource-reference",
            "ev_get-structured-content",
            "ev_get-sum",
            "ev_get-tiny-image",
            "ev_toggle-simulated-logging"
        ]
    );
    // Allowed, prefixed: passes (and the upstream got the unprefixed name).
    assert_eq!(
        alpha.call("ev_echo", json!({"message": "m"})).await.text(),
        "Echo: m"
    );
    // Unprefixed names do not exist for the caller.
    let unknown = alpha.call("echo", json!({"message": "m"})).await;
    assert_eq!(unknown.error_code(), -32602, "{unknown:?}");
    assert_eq!(
        alpha.call("ev_nonexistent", json!({})).await.rule(),
        "Denied"
    );
    // Denied via deny, and via not matching allow.
    assert_refused(
        &alpha.call("ev_get-env", json!({})).await,
        "Denied",
        "ev_get-env",
    );
    assert_refused(
        &alpha
            .call("ev_trigger-long-running-operation", json!({}))
            .await,
        "Denied",
        "ev_trigger-long-running-operation",
    );
    // requireGrant: granted passes, not granted is refused.
    let granted = alpha.call("ev_toggle-simulated-logging", json!({})).await;
    assert!(granted.body.get("result").is_some(), "{granted:?}");
    assert_refused(
        &alpha.call("ev_toggle-subscriber-updates", json!({})).await,
        "NotGranted",
        "ev_toggle-subscriber-updates",
    );

    let mut beta = Mcp::new(&gw.url(), Some(BETA));
    beta.initialize().await;
    let names = beta.list_tools().await.tool_names();
    assert!(
        !names.contains(&"ev_get-sum".to_owned()),
        "narrowed away: {names:?}"
    );
    assert!(!names.contains(&"ev_toggle-simulated-logging".to_owned()));
    assert_refused(
        &beta.call("ev_toggle-simulated-logging", json!({})).await,
        "NotGranted",
        "ev_toggle-simulated-logging",
    );
    assert_refused(
        &beta.call("ev_get-sum", json!({"a": 1, "b": 2})).await,
        "Denied",
        "ev_get-sum",
    );
    assert!(beta.call("ev_echo", json!({"message": "b"})).await.text() == "Echo: b");
    // alpha may call get-sum (beta's narrowing is beta's only).
    assert!(
        alpha
            .call("ev_get-sum", json!({"a": 1, "b": 2}))
            .await
            .text()
            .contains('3')
    );

    let denied = gw
        .wait_audit("a NotGranted refusal", |r| {
            r["rule"] == "NotGranted" && r["binding"] == "beta"
        })
        .await;
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["tool"], "ev_toggle-simulated-logging");
    gw.wait_metric("mcp_gateway_denied_total{rule=\"Denied\"}", 4.0)
        .await;
    gw.wait_metric("mcp_gateway_denied_total{rule=\"NotGranted\"}", 2.0)
        .await;
    let m = gw.metrics().await;
    assert!(
        m.contains(
            "mcp_gateway_requests_total{method=\"tools/call\",tool=\"ev_echo\",outcome=\"allowed\"}"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_enforce_refuses_unpinned_and_changed_tools() {
    let upstream = support::server_everything("streamableHttp");
    // The real definition hash of echo, from the server directly.
    let mut direct = Mcp::new(&upstream.url("/mcp"), None);
    direct.initialize().await;
    let listed = direct.list_tools().await;
    let echo: &Value = listed.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    let echo_sha = mcp_operator::prober::inventory::tool_sha256(echo);
    let cfg = config(json!({
        "auth": "None",
        "pinnedTools": [
            {"name": "echo", "sha256": echo_sha},
            {"name": "get-sum", "sha256": "00".repeat(32)}
        ],
        "policy": {"pinning": "Enforce"}
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut c = Mcp::new(&gw.url(), None);
    c.initialize().await;
    // Calls before any tools/list: the gateway lists upstream itself in this session.
    assert_eq!(
        c.call("echo", json!({"message": "p"})).await.text(),
        "Echo: p"
    );
    assert_refused(
        &c.call("get-sum", json!({"a": 1, "b": 1})).await,
        "Changed",
        "get-sum",
    );
    assert_refused(
        &c.call("get-tiny-image", json!({})).await,
        "Unpinned",
        "get-tiny-image",
    );
    assert_eq!(c.list_tools().await.tool_names(), ["echo"]);
    gw.wait_metric("mcp_gateway_denied_total{rule=\"Changed\"}", 1.0)
        .await;
    gw.wait_metric("mcp_gateway_denied_total{rule=\"Unpinned\"}", 1.0)
        .await;
}
