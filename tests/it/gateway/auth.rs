//! Bearer-token authentication: missing/unknown tokens get 401 with a JSON-RPC body,
//! binding tokens work, probe tokens are read-only and see the unfiltered tool list,
//! auth None lets anonymous callers in under the server-level policy.

use serde_json::json;

use super::harness::{GatewayProcess, Mcp, config, hash};
use crate::support;

const BINDING_TOKEN: &str = "tok-binding-3f9a-SECRET";
const PROBE_TOKEN: &str = "tok-probe-77c1-SECRET";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_auth_refuses_missing_and_unknown_tokens_and_probe_is_read_only() {
    let upstream = support::server_everything("streamableHttp");
    let cfg = config(json!({
        "auth": "Required",
        "toolPrefix": "ev_",
        "probeTokenSha256": [hash(PROBE_TOKEN)],
        "policy": {"deny": ["get-env"]},
        "bindings": [{"name": "agent", "tokenSha256": [hash(BINDING_TOKEN)]}]
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;

    for token in [None, Some("not-a-known-token")] {
        let mut anon = Mcp::new(&gw.url(), token);
        let a = anon.request("initialize", json!({})).await;
        assert_eq!(a.status, 401, "{token:?}: {a:?}");
        assert_eq!(a.headers["www-authenticate"], "Bearer");
        assert_eq!(a.error_code(), -32001, "{a:?}");
        assert_eq!(a.rule(), "Unauthorized");
        assert_eq!(a.body["jsonrpc"], "2.0");
        // GET and DELETE are refused too.
        let get = super::harness::http()
            .get(gw.url())
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 401);
    }

    // The binding's token: filtered, prefixed tools; calls work.
    let mut agent = Mcp::new(&gw.url(), Some(BINDING_TOKEN));
    agent.initialize().await;
    let names = agent.list_tools().await.tool_names();
    assert!(names.contains(&"ev_echo".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("get-env")), "{names:?}");
    assert_eq!(
        agent.call("ev_echo", json!({"message": "hi"})).await.text(),
        "Echo: hi"
    );

    // The probe's token: read-only, everything unfiltered and unprefixed.
    let mut probe = Mcp::new(&gw.url(), Some(PROBE_TOKEN));
    probe.initialize().await;
    let names = probe.list_tools().await.tool_names();
    assert_eq!(names.len(), 13, "{names:?}");
    assert!(names.contains(&"get-env".to_owned()) && names.contains(&"echo".to_owned()));
    assert_eq!(probe.request("ping", json!({})).await.status, 200);
    assert_eq!(probe.request("resources/list", json!({})).await.status, 200);
    assert_eq!(probe.request("prompts/list", json!({})).await.status, 200);
    for (method, params) in [
        (
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x"}}),
        ),
        (
            "resources/read",
            json!({"uri": "demo://resource/static/document/architecture.md"}),
        ),
        ("prompts/get", json!({"name": "simple-prompt"})),
    ] {
        let a = probe.request(method, params).await;
        assert_eq!(a.status, 403, "{method}: {a:?}");
        assert_eq!(a.rule(), "ReadOnly", "{method}: {a:?}");
        assert_eq!(a.error_code(), -32003);
    }

    let unauthorized = gw
        .wait_audit("a 401", |r| r["rule"] == "Unauthorized")
        .await;
    assert_eq!(unauthorized["outcome"], "denied");
    let read_only = gw
        .wait_audit("a probe call", |r| r["rule"] == "ReadOnly")
        .await;
    assert_eq!(read_only["binding"], "probe");
    gw.wait_metric("mcp_gateway_denied_total{rule=\"ReadOnly\"}", 3.0)
        .await;
    gw.wait_metric("mcp_gateway_denied_total{rule=\"Unauthorized\"}", 2.0)
        .await;

    let all = format!("{}{}", gw.stdout(), gw.stderr());
    for secret in [BINDING_TOKEN, PROBE_TOKEN, "not-a-known-token"] {
        assert!(
            !all.contains(secret),
            "a token appears in the gateway's output"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_none_serves_anonymous_callers_with_the_server_policy() {
    let upstream = support::server_everything("streamableHttp");
    let cfg = config(json!({
        "auth": "None",
        "policy": {"deny": ["get-env"], "requireGrant": ["get-sum"]},
        "bindings": [{"name": "granted", "tokenSha256": [hash(BINDING_TOKEN)],
                      "access": {"grants": ["get-sum"]}}]
    }));
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut anon = Mcp::new(&gw.url(), None);
    anon.initialize().await;
    let names = anon.list_tools().await.tool_names();
    assert!(!names.contains(&"get-env".to_owned()));
    assert!(
        names.contains(&"get-sum".to_owned()),
        "anonymous callers get the server-level decision (no binding, no grant check): {names:?}"
    );
    assert_eq!(
        anon.call("echo", json!({"message": "a"})).await.text(),
        "Echo: a"
    );
    assert_eq!(anon.call("get-env", json!({})).await.rule(), "Denied");
    let r = gw
        .wait_audit("anonymous call", |r| r["tool"] == "echo")
        .await;
    assert_eq!(r["binding"], "anonymous");
    // A known token still names its binding under auth None.
    let mut granted = Mcp::new(&gw.url(), Some(BINDING_TOKEN));
    granted.initialize().await;
    assert!(
        granted
            .call("get-sum", json!({"a": 1, "b": 2}))
            .await
            .text()
            .contains('3')
    );
    let r = gw
        .wait_audit("granted call", |r| r["tool"] == "get-sum")
        .await;
    assert_eq!(r["binding"], "granted");
}
