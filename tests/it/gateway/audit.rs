//! Audit records, field by field, at each level (Metadata, Hashes, Payloads, switched by
//! live reload), and a sweep of everything the gateway printed for the tokens and the
//! redacted values.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::harness::{GatewayProcess, Mcp, config, hash};
use crate::support;

const TOKEN: &str = "tok-auditor-9d2e-SECRET";
const SENSITIVE: &str = "SENSITIVE-VALUE-42";

fn audit_config(level: &str) -> Value {
    config(json!({
        "bindings": [{"name": "auditor", "tokenSha256": [hash(TOKEN)]}],
        "policy": {"deny": ["get-env"], "audit": {"level": level, "redactKeys": ["message", "TEXT"]}}
    }))
}

fn sha256_canonical(v: &Value) -> String {
    hex::encode(Sha256::digest(
        mcp_operator::prober::inventory::canonical_json(v).as_bytes(),
    ))
}

fn check_common(r: &Value, id: u64) {
    let time = r["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
        "RFC 3339: {time}"
    );
    assert_eq!(r["server"], "everything");
    assert_eq!(r["namespace"], "tests");
    assert_eq!(r["binding"], "auditor");
    assert_eq!(r["method"], "tools/call");
    assert_eq!(r["tool"], "echo");
    assert_eq!(r["id"], id);
    assert_eq!(r["outcome"], "allowed");
    assert!(r.get("rule").is_none(), "{r}");
    assert!(r["durationMs"].as_f64().unwrap() >= 0.0);
    assert!(r["bytesIn"].as_u64().unwrap() > 0);
    assert!(r["bytesOut"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_per_level_and_no_secrets_in_output() {
    let upstream = support::server_everything("streamableHttp");
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &audit_config("Metadata"), &[]).await;
    let mut c = Mcp::new(&gw.url(), Some(TOKEN));
    c.initialize().await;
    let args = json!({"message": SENSITIVE});

    // Metadata: who, what, outcome; no content.
    let id = c.next_id;
    c.call("echo", args.clone()).await;
    let r = gw.wait_audit("Metadata call", |r| r["id"] == id).await;
    check_common(&r, id);
    for k in ["arguments", "result", "argumentsSha256", "resultSha256"] {
        assert!(r.get(k).is_none(), "Metadata records have no {k}: {r}");
    }
    let init = gw
        .wait_audit("initialize", |r| r["method"] == "initialize")
        .await;
    assert_eq!(init["outcome"], "allowed");
    let denied_id = c.next_id;
    c.call("get-env", json!({})).await;
    let d = gw.wait_audit("denied call", |r| r["id"] == denied_id).await;
    assert_eq!(
        (d["outcome"].as_str(), d["rule"].as_str()),
        (Some("denied"), Some("Denied"))
    );
    assert_eq!(d["tool"], "get-env");

    // Hashes: SHA-256 of the canonical JSON of arguments and result.
    gw.write_config(&audit_config("Hashes").to_string());
    gw.wait_metric("mcp_gateway_config_reloads_total{result=\"success\"}", 2.0)
        .await;
    let id = c.next_id;
    let answer = c.call("echo", args.clone()).await;
    let r = gw.wait_audit("Hashes call", |r| r["id"] == id).await;
    check_common(&r, id);
    assert_eq!(r["argumentsSha256"], sha256_canonical(&args));
    assert_eq!(r["resultSha256"], sha256_canonical(&answer.body["result"]));
    assert!(r.get("arguments").is_none() && r.get("result").is_none());

    // Payloads: content, with redactKeys (any case, any depth) replaced.
    gw.write_config(&audit_config("Payloads").to_string());
    gw.wait_metric("mcp_gateway_config_reloads_total{result=\"success\"}", 3.0)
        .await;
    let id = c.next_id;
    c.call("echo", json!({"message": SENSITIVE})).await;
    let r = gw.wait_audit("Payloads call", |r| r["id"] == id).await;
    check_common(&r, id);
    assert_eq!(r["arguments"], json!({"message": "[REDACTED]"}));
    assert_eq!(r["result"]["content"][0]["text"], "[REDACTED]");
    assert_eq!(r["result"]["content"][0]["type"], "text");
    assert!(r.get("argumentsSha256").is_none());

    // A wrong token is audited without the token.
    let mut wrong = Mcp::new(&gw.url(), Some("tok-wrong-SECRET-555"));
    wrong.request("tools/list", json!({})).await;
    let u = gw.wait_audit("401", |r| r["rule"] == "Unauthorized").await;
    assert_eq!(u["binding"], "unknown");

    let everything = format!("{}\n{}", gw.stdout(), gw.stderr());
    for secret in [TOKEN, SENSITIVE, "tok-wrong-SECRET-555", &hash(TOKEN)] {
        assert!(
            !everything.contains(secret),
            "{secret:?} appears in the gateway's output"
        );
    }
    // Every stdout line is a JSON audit record.
    for line in gw.stdout().lines() {
        let v: Value = serde_json::from_str(line).expect("stdout holds only JSON lines");
        assert_eq!(v["target"], "audit");
    }
}
