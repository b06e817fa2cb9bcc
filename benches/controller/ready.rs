//! `--unreachable U`: do dead servers slow down healthy ones? Two sets of remote McpServers
//! (gateway disabled, so each is probed directly by the operator) are applied one after
//! the other to one operator: first `servers - U` healthy ones alone (namespace
//! `bench-healthy`), then as many healthy ones with `U` unreachable ones interleaved
//! (namespace `bench-mixed`). Healthy servers point at one in-process MCP server (rmcp,
//! Streamable HTTP); unreachable ones at a loopback port that accepts connections and
//! never answers. Measures, for each set, the time until every healthy server is
//! `Ready=True`, and prints their ratio last: `healthy-ready ratio: R` (1.0 = the dead
//! servers cost the healthy ones nothing).

use std::{net::Ipv4Addr, sync::Arc};

use rmcp::{
    ServerHandler,
    model::{Implementation, ServerCapabilities, ServerConfig},
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

use super::*;

const HEALTHY_NS: &str = "bench-healthy";
const MIXED_NS: &str = "bench-mixed";

#[derive(Clone)]
struct Healthy;

impl ServerHandler for Healthy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bench-healthy", "1.0.0"))
    }
}

/// An MCP server answering on loopback; returns its `/mcp` URL.
async fn healthy_server() -> String {
    let service = StreamableHttpService::new(
        || Ok(Healthy),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://127.0.0.1:{port}/mcp")
}

/// A loopback port that accepts connections and never answers (they stay open until
/// the peer gives up); returns its `/mcp` URL.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            // Drop the ones their peer closed, so the list stays bounded by the open ones.
            held.retain(|s: &tokio::net::TcpStream| s.peer_addr().is_ok());
            held.push(socket);
        }
    });
    format!("http://127.0.0.1:{port}/mcp")
}

fn remote(ns: &str, name: &str, url: &str) -> McpServer {
    serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "transport": "StreamableHttp",
            "remote": {"url": url},
            "gateway": {"enabled": false}
        }
    }))
    .expect("valid McpServer")
}

/// How many servers named `healthy-*` in `ns` are Ready=True.
async fn healthy_ready(client: &Client, ns: &str) -> usize {
    Api::<McpServer>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|s| {
                    s.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("healthy-"))
                })
                .filter(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        find_condition(&st.conditions, "Ready").is_some_and(|c| c.status == "True")
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

/// Applies `servers` (32 at a time) and returns the time until `healthy` of them are
/// Ready (None: not within `timeout`), with the curve (seconds, ready).
async fn apply_and_wait(
    client: &Client,
    ns: &str,
    servers: Vec<McpServer>,
    healthy: usize,
    timeout: Duration,
) -> (Option<Duration>, Vec<(f64, usize)>) {
    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let pp = PatchParams::apply("bench").force();
    let started = Instant::now();
    stream::iter(servers)
        .map(|s| {
            let api = api.clone();
            let pp = pp.clone();
            async move {
                let name = s.metadata.name.clone().unwrap_or_default();
                api.patch(&name, &pp, &Patch::Apply(s)).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("servers applied");
    let mut curve = vec![(0.0, 0)];
    loop {
        let ready = healthy_ready(client, ns).await;
        let t = started.elapsed();
        curve.push((t.as_secs_f64(), ready));
        if ready >= healthy {
            return (Some(t), curve);
        }
        if t > timeout {
            return (None, curve);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(args: &Args) {
    let unreachable = args.unreachable.min(args.servers.saturating_sub(1));
    let healthy = args.servers - unreachable;
    let api_server = ApiServer::start(ApiServerOptions {
        history_limit: 20 * args.servers + 10_000,
        ..ApiServerOptions::default()
    })
    .await
    .expect("API server starts");
    let client = api_server.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD created");
    }
    let good = healthy_server().await;
    let dead = black_hole().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (operator, admin, log_path) = start_operator(
        args,
        &api_server,
        dir.path(),
        // The servers listen on loopback, which direct probes refuse by default.
        &["--probe-allowed-cidrs", "127.0.0.0/8"],
    )
    .await;

    let alone: Vec<McpServer> = (0..healthy)
        .map(|i| remote(HEALTHY_NS, &format!("healthy-{i:04}"), &good))
        .collect();
    let (t_alone, curve_alone) =
        apply_and_wait(&client, HEALTHY_NS, alone, healthy, args.timeout).await;
    // Dead servers spread evenly through the healthy ones, as they would be in a cluster.
    let mut mixed = Vec::with_capacity(args.servers);
    let every = args.servers / unreachable.max(1);
    let (mut h, mut d) = (0, 0);
    for i in 0..args.servers {
        if d < unreachable && i % every.max(1) == every.max(1) - 1 {
            mixed.push(remote(MIXED_NS, &format!("dead-{d:04}"), &dead));
            d += 1;
        } else {
            mixed.push(remote(MIXED_NS, &format!("healthy-{h:04}"), &good));
            h += 1;
        }
    }
    let (t_mixed, curve_mixed) =
        apply_and_wait(&client, MIXED_NS, mixed, healthy, args.timeout).await;
    let http = reqwest::Client::new();
    let page = scrape(&http, &admin).await;
    drop(operator);

    // Not converged: the timeout, so the ratio printed is a lower bound (">").
    let secs = |t: Option<Duration>| t.map_or(args.timeout.as_secs_f64(), |t| t.as_secs_f64());
    let fmt = |t: Option<Duration>| {
        t.map_or(format!("> {} s", args.timeout.as_secs()), |t| {
            format!("{:.2} s", t.as_secs_f64())
        })
    };
    let ratio = secs(t_mixed) / secs(t_alone);
    let probes = metric_value(&page, "mcp_operator_probes_total");
    let reconciles = metric_value(&page, "mcp_operator_reconcile_duration_seconds_count");
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\ncontroller readiness benchmark: {healthy} healthy remote McpServers, alone and with {unreachable} unreachable ones"
    );
    let _ = writeln!(table, "{:<48} {:>16}", "measure", "value");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(table, "{k:<48} {v:>16}");
    };
    row(&format!("{healthy} healthy Ready, alone"), fmt(t_alone));
    row(
        &format!("{healthy} healthy Ready, with {unreachable} unreachable"),
        fmt(t_mixed),
    );
    row("probes (both sets)", format!("{probes:.0}"));
    row("reconciles (both sets)", format!("{reconciles:.0}"));
    row(
        "probe p50 (histogram)",
        quantile(&page, "mcp_operator_probe_duration_seconds", 0.5)
            .map_or("n/a".into(), |s| format!("{:.1} ms", s * 1e3)),
    );
    row(
        "reconcile p99 (histogram)",
        quantile(&page, "mcp_operator_reconcile_duration_seconds", 0.99)
            .map_or("n/a".into(), |s| format!("{:.1} ms", s * 1e3)),
    );
    print!("{table}");
    std::fs::create_dir_all(&args.out_dir).expect("output dir");
    let mut csv = String::from("set,seconds,healthy_ready\n");
    for (set, curve) in [("alone", &curve_alone), ("mixed", &curve_mixed)] {
        for (t, n) in curve {
            let _ = writeln!(csv, "{set},{t:.2},{n}");
        }
    }
    std::fs::write(args.out_dir.join("controller-ready.csv"), csv).expect("csv written");
    println!("wrote {}/controller-ready.csv", args.out_dir.display());
    let bound = if t_mixed.is_none() { ">" } else { "" };
    println!("healthy-ready ratio: {bound}{ratio:.2}");
    if t_alone.is_none() || t_mixed.is_none() {
        eprintln!("did not converge; operator log: {}", log_path.display());
        std::process::exit(1);
    }
}
