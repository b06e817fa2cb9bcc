//! Routing headers and trace context (issue 14), attacked from outside: a caller who
//! repeats, omits, mis-encodes or inflates `MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name` and `Mcp-Param-*` so that something between the caller and the tool (the
//! gateway's policy, or anything routing on headers behind it) reads another request than
//! the one that runs. Every such request is refused whole with -32020 (or -32600 for one
//! beyond the bounds), audited once, and never forwarded; a hostile trace context is
//! dropped, never forwarded.

use serde_json::json;

use crate::gateway::eras::{Modern, modern_stub, values};
use crate::gateway::harness::{GatewayProcess, config, hash};

const TOKEN: &str = "tok-routing-attacker-3e9f";

fn cfg() -> serde_json::Value {
    config(json!({
        "auth": "Required",
        "policy": {"deny": ["delete_*"]},
        "bindings": [{"name": "attacker", "tokenSha256": [hash(TOKEN)]}],
    }))
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut h = headers.to_vec();
    h.push((name.to_owned(), value.to_owned()));
    h
}

fn without(headers: &[(String, String)], name: &str) -> Vec<(String, String)> {
    headers.iter().filter(|(k, _)| k != name).cloned().collect()
}

fn replaced(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    with(&without(headers, name), name, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_repeated_or_missing_routing_headers_never_reach_the_upstream() {
    let (stub, seen) = modern_stub().await;
    let gw = GatewayProcess::start(&stub.url("/mcp"), &cfg(), &[]).await;
    let mut c = Modern::new(&gw.url(), Some(TOKEN));
    let denied = c.message("tools/call", json!({"name": "delete_x", "arguments": {}}));
    let allowed = c.message("tools/call", json!({"name": "echo", "arguments": {}}));
    let dh = Modern::routing_headers(&denied);
    let ah = Modern::routing_headers(&allowed);
    let legacy = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                        "params": {"name": "delete_x", "arguments": {}}});
    let list = c.message("tools/list", json!({}));
    let lh = Modern::routing_headers(&list);

    let attacks = [
        // Two Mcp-Name values: one reader takes the allowed, another the denied one.
        ("two-names", &denied, with(&dh, "mcp-name", "echo")),
        (
            "two-names-allowed-body",
            &allowed,
            with(&ah, "Mcp-Name", "delete_x"),
        ),
        (
            "two-methods",
            &denied,
            with(&dh, "mcp-method", "tools/list"),
        ),
        (
            "two-versions",
            &denied,
            with(&dh, "mcp-protocol-version", "2025-11-25"),
        ),
        ("name-lies", &denied, replaced(&dh, "mcp-name", "echo")),
        ("name-missing", &denied, without(&dh, "mcp-name")),
        (
            "method-lies",
            &denied,
            replaced(&dh, "mcp-method", "tools/list"),
        ),
        ("method-missing", &denied, without(&dh, "mcp-method")),
        (
            "version-missing",
            &denied,
            without(&dh, "mcp-protocol-version"),
        ),
        (
            "version-lies",
            &denied,
            replaced(&dh, "mcp-protocol-version", "2025-11-25"),
        ),
        // The name in the header encoding: a malformed sentinel, and an honest encoding
        // of the allowed name over the denied body.
        (
            "bad-base64",
            &denied,
            replaced(&dh, "mcp-name", "=?base64?%%%?="),
        ),
        (
            "encoded-lie",
            &denied,
            replaced(&dh, "mcp-name", "=?base64?ZWNobw==?="),
        ),
        // A name on a method that names nothing.
        ("name-on-list", &list, with(&lh, "mcp-name", "echo")),
        // A legacy-looking body (no envelope) still may not carry a lying header.
        (
            "legacy-body-name-lies",
            &legacy,
            vec![("mcp-name".to_owned(), "echo".to_owned())],
        ),
        (
            "legacy-body-method-lies",
            &legacy,
            vec![("mcp-method".to_owned(), "tools/list".to_owned())],
        ),
        // Two Mcp-Param values for one argument (header names are case-insensitive).
        (
            "two-params",
            &allowed,
            with(
                &with(&ah, "Mcp-Param-Region", "eu"),
                "mcp-param-region",
                "us",
            ),
        ),
    ];
    for (what, msg, headers) in &attacks {
        let a = c.send(msg, headers).await;
        assert_eq!(a.status, 400, "{what}: {a:?}");
        assert_eq!(a.error_code(), -32020, "{what}: {a:?}");
        assert_eq!(a.rule(), "HeaderMismatch", "{what}: {a:?}");
        assert_eq!(a.body["id"], msg["id"], "{what}: {a:?}");
    }
    assert_eq!(seen.count(), 0, "no attack reached the upstream");
    gw.wait_metric(
        "mcp_gateway_denied_total{rule=\"HeaderMismatch\"}",
        attacks.len() as f64,
    )
    .await;
    let records = gw
        .audit_records()
        .into_iter()
        .filter(|r| r["rule"] == "HeaderMismatch")
        .count();
    assert_eq!(records, attacks.len(), "one audit record per attack");

    // The honest encoding of the denied name: read as the body says, then refused by policy.
    let a = c
        .send(
            &denied,
            &replaced(&dh, "mcp-name", "=?base64?ZGVsZXRlX3g=?="),
        )
        .await;
    assert_eq!(a.rule(), "Denied", "{a:?}");
    assert_eq!(seen.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_param_headers_are_bounded() {
    let (stub, seen) = modern_stub().await;
    let gw = GatewayProcess::start(&stub.url("/mcp"), &cfg(), &[]).await;
    let mut c = Modern::new(&gw.url(), Some(TOKEN));
    let msg = c.message("tools/call", json!({"name": "echo", "arguments": {}}));
    let base = Modern::routing_headers(&msg);

    let mut many = base.clone();
    for i in 0..33 {
        many.push((format!("mcp-param-p{i}"), "v".into()));
    }
    let long = with(&base, "mcp-param-big", &"v".repeat(8193));
    let empty_token = with(&base, "mcp-param-", "v");
    for (what, headers) in [
        ("33 headers", many),
        ("8 KiB value", long),
        ("no token", empty_token),
    ] {
        let a = c.send(&msg, &headers).await;
        assert_eq!(a.status, 400, "{what}: {a:?}");
        assert_eq!(a.error_code(), -32600, "{what}: {a:?}");
    }
    assert_eq!(
        seen.count(),
        0,
        "nothing beyond the bounds reaches the upstream"
    );

    // Within the bounds they pass, unchanged.
    let mut fine = base.clone();
    for i in 0..32 {
        fine.push((format!("mcp-param-p{i}"), format!("v{i}")));
    }
    let a = c.send(&msg, &fine).await;
    assert_eq!(a.status, 200, "{a:?}");
    let (h, _) = seen.with_method("tools/call").pop().unwrap();
    assert_eq!(values(&h, "mcp-param-p31"), ["v31"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_trace_context_is_dropped_not_forwarded() {
    let (stub, seen) = modern_stub().await;
    let gw = GatewayProcess::start(&stub.url("/mcp"), &cfg(), &[]).await;
    let mut c = Modern::new(&gw.url(), Some(TOKEN));
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let bad_parents = [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with more
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "garbage",
    ];
    for parent in bad_parents {
        let msg = c.message("tools/list", json!({}));
        let h = with(
            &with(&Modern::routing_headers(&msg), "traceparent", parent),
            "tracestate",
            "a=b",
        );
        assert_eq!(c.send(&msg, &h).await.status, 200, "{parent}");
        let (seen_h, _) = seen.with_method("tools/list").pop().unwrap();
        assert!(
            values(&seen_h, "traceparent").is_empty(),
            "{parent} was forwarded"
        );
        assert!(
            values(&seen_h, "tracestate").is_empty(),
            "tracestate without a valid parent"
        );
    }
    // Two traceparents: neither is forwarded.
    let msg = c.message("tools/list", json!({}));
    let h = with(
        &with(&Modern::routing_headers(&msg), "traceparent", good),
        "traceparent",
        "00-11111111111111111111111111111111-2222222222222222-01",
    );
    c.send(&msg, &h).await;
    let (seen_h, _) = seen.with_method("tools/list").pop().unwrap();
    assert!(values(&seen_h, "traceparent").is_empty(), "{seen_h:?}");

    // An oversized or malformed tracestate is dropped; the valid parent still goes.
    let long_state = (0..40)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    for state in [
        long_state.as_str(),
        &format!("a={}", "x".repeat(600)),
        "no equals sign",
    ] {
        let msg = c.message("tools/list", json!({}));
        let h = with(
            &with(&Modern::routing_headers(&msg), "traceparent", good),
            "tracestate",
            state,
        );
        c.send(&msg, &h).await;
        let (seen_h, _) = seen.with_method("tools/list").pop().unwrap();
        assert_eq!(values(&seen_h, "traceparent"), [good]);
        assert!(
            values(&seen_h, "tracestate").is_empty(),
            "{state} was forwarded"
        );
    }
}
