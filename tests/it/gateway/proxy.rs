//! Pass-through behaviour: what the gateway does not govern reaches the caller as the
//! server sent it (unknown methods, the GET stream, DELETE and the session lifecycle),
//! bad JSON is answered as a server would (the gateway's own 400 -32700, never
//! forwarded: `hardening::body`), and the health and metrics routes.

use serde_json::json;

use super::harness::{GatewayProcess, Mcp, config};
use crate::support;
use crate::support::eventually::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungoverned_traffic_passes_through_like_direct() {
    let upstream = support::server_everything("streamableHttp");
    let direct_url = upstream.url("/mcp");
    let gw = GatewayProcess::start(&direct_url, &config(json!({"auth": "None"})), &[]).await;
    let mut through = Mcp::new(&gw.url(), None);
    let mut direct = Mcp::new(&direct_url, None);
    through.initialize().await;
    direct.initialize().await;

    let a = through.request("no/such-method", json!({})).await;
    let b = direct.request("no/such-method", json!({})).await;
    assert_eq!((a.status, &a.body), (b.status, &b.body));

    // Bad JSON: the gateway answers it itself, as the server would.
    let bad_a = through.post_text("{not json".into(), None).await;
    let bad_b = direct.post_text("{not json".into(), None).await;
    assert_eq!(bad_a.status, bad_b.status);
    assert_eq!(bad_a.body["error"]["code"], bad_b.body["error"]["code"]);
    assert_eq!(
        bad_a.body["error"]["data"]["rule"], "Malformed",
        "{bad_a:?}"
    );

    // The GET stream opens with the server's headers.
    let http = super::harness::http();
    let stream = http
        .get(gw.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", through.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(stream);

    // DELETE ends the session upstream; later requests get 404 (the gateway forgot the
    // session; server-everything itself answers an unknown session with 400).
    let del = |url: String, session: String| {
        let http = http.clone();
        async move {
            http.delete(url)
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let s1 = del(gw.url(), through.session.clone().unwrap()).await;
    let s2 = del(direct_url.clone(), direct.session.clone().unwrap()).await;
    assert_eq!(s1, s2);
    let after_a = through.request("ping", json!({})).await;
    let after_b = direct.request("ping", json!({})).await;
    assert_eq!(after_a.status, 404, "{after_a:?}");
    assert!(matches!(after_b.status, 400 | 404), "{after_b:?}");

    let live = http
        .get(format!("{}/livez", gw.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let m = gw.metrics().await;
    for series in [
        "mcp_gateway_requests_total{method=\"initialize\",tool=\"\",outcome=\"allowed\"} 1",
        "mcp_gateway_request_duration_seconds_count",
        "mcp_gateway_upstream_errors_total 0",
        "mcp_gateway_active_sessions 0",
        "mcp_gateway_config_reloads_total{result=\"success\"} 1",
    ] {
        assert!(m.contains(series), "{series} missing:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_a_config_and_an_upstream_and_sigterm_exits_cleanly() {
    let port = support::free_port();
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, "not yet").unwrap();
    let gw_port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args([
            "gateway",
            "--listen",
            &format!("127.0.0.1:{gw_port}"),
            "--upstream",
            &upstream,
            "--config",
        ])
        .arg(&cfg_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(support::wait_for_port(
        gw_port,
        std::time::Duration::from_secs(20)
    ));
    let http = super::harness::http();
    let ready = |http: reqwest::Client| async move {
        http.get(format!("http://127.0.0.1:{gw_port}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready(http.clone()).await, 503, "no config yet");
    let mcp = Mcp::new(&format!("http://127.0.0.1:{gw_port}/mcp"), None)
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(mcp.status, 503);
    std::fs::write(&cfg_path, config(json!({"auth": "None"})).to_string()).unwrap();
    // Config now loads, but nothing listens upstream: still not ready.
    eventually(
        "the config to load (a successful reload in /metrics)",
        std::time::Duration::from_secs(20),
        async || {
            let m = http
                .get(format!("http://127.0.0.1:{gw_port}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            m.contains("mcp_gateway_config_reloads_total{result=\"success\"} 1")
                .then_some(())
                .ok_or(m)
        },
    )
    .await;
    assert_eq!(ready(http.clone()).await, 503, "upstream down");

    // SIGTERM: a clean exit.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = crate::support::eventually::poll(std::time::Duration::from_secs(20), async || {
        child.try_wait().unwrap()
    })
    .await;
    let status = exited.unwrap_or_else(|missed| {
        let _ = child.kill();
        panic!("waiting for the gateway to exit after SIGTERM: {missed}")
    });
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
