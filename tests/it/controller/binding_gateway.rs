//! End to end: the controller renders a server's gateway configuration and two bindings'
//! Secrets on the embedded API server; the real gateway (`mcp-operator gateway`) runs
//! with that configuration in front of the official Python SDK server; the official
//! Python SDK client connects with each binding's generated `mcp.json` (only the URL's
//! host rewritten to the local gateway, headers as written). A policy-denied tool is
//! absent and refused with the rule named, a requireGrant tool works only for the
//! granting binding, rate limits trip per binding, audit records name the binding,
//! deleting a binding revokes its token, and no token appears in any status, Event or
//! gateway log.

use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use mcp_operator::{
    api::{McpBinding, McpPolicy},
    gateway::config::token_sha256,
};

use super::{
    binding::{
        assert_no_token_outside_binding_secrets, binding_secret, create_binding, entry, key,
        set_tools, wait_binding,
    },
    *,
};
use crate::gateway::harness::{GatewayProcess, python_server_with_gateway_tools};

/// Runs `binding_mcp_json.py` with the binding Secret's `mcp.json`.
fn agent(mcp_json: &str, server: &str, gateway: &GatewayProcess, calls: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp.json");
    std::fs::write(&path, mcp_json).unwrap();
    let out = Command::new(crate::support::python())
        .arg(crate::support::repo_path(
            "tests/it/controller/binding_mcp_json.py",
        ))
        .arg(&path)
        .arg(server)
        .arg(format!("127.0.0.1:{}", gateway.port))
        .arg(calls.to_string())
        .output()
        .expect("running binding_mcp_json.py");
    assert!(
        out.status.success(),
        "binding_mcp_json.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "binding_mcp_json.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn tools(out: &Value) -> Vec<&str> {
    out["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list: {out}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// The result of call `i`: Ok(text) or Err((code, rule, message)).
fn call(out: &Value, i: usize) -> Result<String, (i64, String, String)> {
    let c = &out["calls"][i];
    if c["ok"] == true {
        return Ok(c["text"].as_str().unwrap().to_owned());
    }
    let e = &c["error"];
    Err((
        e["code"].as_i64().unwrap_or_default(),
        e["data"]["rule"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Gives the running gateway the configuration now rendered for `server` and waits
/// until it has loaded it.
async fn reload(client: &Client, ns: &str, server: &str, gateway: &GatewayProcess) {
    let series = "mcp_gateway_config_reloads_total{result=\"success\"}";
    let loads = gateway.metric(series).await;
    let config = wait_gateway(client, ns, server, "rendered", |_| true).await;
    gateway.write_config(&serde_json::to_string(&config).unwrap());
    gateway.wait_metric(series, loads + 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_agents_use_their_mcp_json_through_the_real_gateway() {
    let upstream = python_server_with_gateway_tools("streamable-http");
    let (_api, client) = cluster().await;
    let ns = "agents";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(
        &client,
        ns,
        "notes",
        json!({
            "transport": "StreamableHttp",
            "remote": {"url": upstream.url("/mcp")},
            "probe": {"disabled": true},
        }),
    )
    .await;
    create_policy(
        &client,
        ns,
        "guard",
        json!({"targetRefs": [{"name": "notes"}],
               "tools": {"deny": ["delete_*"], "requireGrant": ["echo"]},
               "audit": {"level": "Hashes"}}),
    )
    .await;
    create_binding(
        &client,
        ns,
        "granted",
        json!({"servers": [{"name": "notes", "grants": ["echo"]}]}),
    )
    .await;
    create_binding(
        &client,
        ns,
        "plain",
        json!({"servers": [{"name": "notes"}]}),
    )
    .await;
    let served = |s: &Secret| s.data.as_ref().is_some_and(|d| d.contains_key("notes.url"));
    let granted = binding_secret(&client, ns, "granted-mcp", served).await;
    let plain = binding_secret(&client, ns, "plain-mcp", served).await;
    let tokens = [key(&granted, "token"), key(&plain, "token")];
    wait_gateway(
        &client,
        ns,
        "notes",
        "both bindings with their token",
        |c| {
            c.policy.require_grant == ["echo"]
                && ["granted", "plain"]
                    .iter()
                    .zip(&tokens)
                    .all(|(b, t)| entry(c, b).is_some_and(|e| e.token_sha256 == [token_sha256(t)]))
        },
    )
    .await;

    // The real gateway with the rendered configuration (the pod would mount the Secret).
    let rendered = wait_gateway(&client, ns, "notes", "rendered", |_| true).await;
    let gateway = GatewayProcess::start(
        &upstream.url("/mcp"),
        &serde_json::to_value(&rendered).unwrap(),
        &[],
    )
    .await;
    let granted_json = key(&granted, "mcp.json");
    let plain_json = key(&plain, "mcp.json");
    let calls = json!([
        {"tool": "delete_note", "args": {"note_id": "n1"}},
        {"tool": "echo", "args": {"message": "hello"}},
        {"tool": "add", "args": {"a": 2, "b": 3}},
    ]);
    let g = agent(&granted_json, "notes", &gateway, calls.clone());
    let p = agent(&plain_json, "notes", &gateway, calls);

    // The denied tool is absent for both and refused with the rule named.
    for out in [&g, &p] {
        assert!(!tools(out).contains(&"delete_note"), "{out}");
        let (code, rule, message) = call(out, 0).unwrap_err();
        assert_eq!((code, rule.as_str()), (-32003, "Denied"), "{out}");
        assert!(message.contains("Denied"), "{message}");
        assert_eq!(call(out, 2), Ok("5".to_owned()));
    }
    // The requireGrant tool: only the granting binding sees and calls it.
    assert!(tools(&g).contains(&"echo"));
    assert_eq!(call(&g, 1), Ok("hello".to_owned()));
    assert!(!tools(&p).contains(&"echo"), "{p}");
    let (_, rule, _) = call(&p, 1).unwrap_err();
    assert_eq!(rule, "NotGranted");
    // Binding status counts exactly what the client sees (the test plays the prober).
    let inventory = [
        "add",
        "big",
        "cancelled_count",
        "delete_note",
        "echo",
        "no_description",
        "slow",
    ];
    set_tools(&client, ns, "notes", &inventory).await;
    for (name, out) in [("granted", &g), ("plain", &p)] {
        let n = tools(out).len() as i32;
        wait_binding(&client, ns, name, "exposedTools as listed", |st| {
            st.servers.first().is_some_and(|s| s.exposed_tools == n)
        })
        .await;
    }

    // Audit records name the binding.
    let r = gateway
        .wait_audit("plain's refused echo", |r| {
            r["method"] == "tools/call" && r["tool"] == "echo" && r["outcome"] == "denied"
        })
        .await;
    assert_eq!(
        (r["binding"].as_str(), r["rule"].as_str()),
        (Some("plain"), Some("NotGranted"))
    );
    let r = gateway
        .wait_audit("granted's echo", |r| {
            r["method"] == "tools/call" && r["tool"] == "echo" && r["outcome"] == "allowed"
        })
        .await;
    assert_eq!(r["binding"], "granted");

    // Rate limits are per binding: plain exhausts its bucket, granted still gets through.
    let policies: Api<McpPolicy> = Api::namespaced(client.clone(), ns);
    let limit =
        json!({"spec": {"rateLimit": {"requestsPerMinute": 1, "burst": 4, "per": "Binding"}}});
    policies
        .patch("guard", &PatchParams::default(), &Patch::Merge(&limit))
        .await
        .unwrap();
    wait_gateway(&client, ns, "notes", "rate limit", |c| {
        c.policy.rate_limit.is_some()
    })
    .await;
    reload(&client, ns, "notes", &gateway).await;
    // initialize + tools/list + two calls use plain's 4 tokens; the third call trips.
    let adds = json!([
        {"tool": "add", "args": {"a": 1, "b": 1}},
        {"tool": "add", "args": {"a": 1, "b": 2}},
        {"tool": "add", "args": {"a": 1, "b": 3}},
    ]);
    let p = agent(&plain_json, "notes", &gateway, adds.clone());
    assert_eq!(call(&p, 0), Ok("2".to_owned()));
    assert_eq!(call(&p, 1), Ok("3".to_owned()));
    let (code, rule, _) = call(&p, 2).unwrap_err();
    assert_eq!((code, rule.as_str()), (-32029, "RateLimited"), "{p}");
    // granted's first three requests (initialize, tools/list, one call) pass right after.
    let g = agent(&granted_json, "notes", &gateway, json!([adds[0]]));
    assert_eq!(
        call(&g, 0),
        Ok("2".to_owned()),
        "granted has its own bucket: {g}"
    );
    gateway
        .wait_audit("the trip", |r| r["rule"] == "RateLimited")
        .await;
    let trips: Vec<Value> = gateway
        .audit_records()
        .into_iter()
        .filter(|r| r["rule"] == "RateLimited")
        .collect();
    assert!(trips.iter().all(|r| r["binding"] == "plain"), "{trips:?}");

    // Deleting a binding revokes its token at the gateway's next reload.
    Api::<McpBinding>::namespaced(client.clone(), ns)
        .delete("plain", &DeleteParams::default())
        .await
        .unwrap();
    wait_gateway(&client, ns, "notes", "plain revoked", |c| {
        entry(c, "plain").is_none()
    })
    .await;
    reload(&client, ns, "notes", &gateway).await;
    let p = agent(&plain_json, "notes", &gateway, json!([]));
    assert!(
        p["initError"].is_object(),
        "the revoked token is refused: {p}"
    );
    gateway
        .wait_audit("the 401", |r| {
            r["binding"] == "unknown" && r["rule"] == "Unauthorized"
        })
        .await;

    // No token in any status, Event, gateway Secret or gateway log line.
    assert_no_token_outside_binding_secrets(&client, ns, &tokens).await;
    let logs = format!("{}{}", gateway.stdout(), gateway.stderr());
    assert!(logs.lines().count() > 5, "the gateway logged: {logs}");
    for t in &tokens {
        assert!(!logs.contains(t.as_str()), "a token in the gateway's log");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    eventually("plain-mcp garbage-collected", 60, || async {
        secrets
            .get_opt("plain-mcp")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    operator.stop().await.expect("clean shutdown");
}
