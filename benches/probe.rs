//! Probe throughput: start N local MCP endpoints (in-process rmcp Streamable HTTP servers,
//! 10 tools each served over two pages), probe them all with bounded concurrency at a few
//! levels, and report probes/s and p50/p99 latency. Writes `bench-results/probe.{csv,json,svg}`.
//!
//! `cargo bench --bench probe -- [--servers 500] [--concurrency 32] [--compare 8,128]`
//! Numbers are for comparison between runs on one machine, never assertions.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mcp_operator::prober::{ProbeOptions, ProbeTarget, probe_many};
use rmcp::model::{
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

const TOOLS: usize = 10;
const PAGE: usize = 5;

#[derive(Clone)]
struct BenchServer {
    tools: Arc<Vec<Tool>>,
}

impl ServerHandler for BenchServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bench-server", "1.0.0"))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let start: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (start + PAGE).min(self.tools.len());
        let mut page = ListToolsResult::with_all_items(self.tools[start.min(end)..end].to_vec());
        if end < self.tools.len() {
            page.next_cursor = Some(end.to_string());
        }
        Ok(page)
    }
}

fn tools() -> Vec<Tool> {
    (0..TOOLS)
        .map(|i| {
            let schema = serde_json::json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for"}, "limit": {"type": "integer"}},
                "required": ["query"]
            });
            let schema = match schema {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            Tool::new(format!("tool_{i:02}"), format!("Benchmark tool number {i}: searches things."), Arc::new(schema))
        })
        .collect()
}

async fn start_server(tools: Arc<Vec<Tool>>) -> std::io::Result<u16> {
    let handler = BenchServer { tools };
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let port = listener.local_addr()?.port();
    // Without TCP_NODELAY small answers wait for delayed ACKs (~40 ms per exchange).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(port)
}

struct Args {
    servers: usize,
    concurrency: usize,
    compare: Vec<usize>,
    out_dir: std::path::PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        servers: 500,
        concurrency: 32,
        compare: vec![8, 128],
        out_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match a.as_str() {
            "--servers" => args.servers = value().parse().unwrap_or(args.servers),
            "--concurrency" => args.concurrency = value().parse().unwrap_or(args.concurrency),
            "--compare" => {
                args.compare = value()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect()
            }
            "--out" => args.out_dir = value().into(),
            _ => {} // `cargo bench` passes `--bench`; ignore what we do not know
        }
    }
    args
}

struct Row {
    concurrency: usize,
    probes: usize,
    failures: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run_level(ports: &[u16], concurrency: usize) -> Row {
    let targets: Vec<ProbeTarget> = ports
        .iter()
        .map(|p| ProbeTarget::http(format!("http://127.0.0.1:{p}/mcp")))
        .collect();
    let opts = ProbeOptions {
        timeout: Duration::from_secs(10),
        retries: 0,
        retry_delay: Duration::ZERO,
    };
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(ports.len());
    let mut failures = 0;
    let mut stream = std::pin::pin!(probe_many(targets, opts, concurrency));
    while let Some((_, report)) = stream.next().await {
        match report.inventory() {
            Some(inv) if inv.tool_count as usize == TOOLS => {}
            Some(_) => failures += 1,
            None => {
                failures += 1;
                if failures <= 3 {
                    eprintln!(
                        "probe failed: {}",
                        report.error().map(|e| e.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        latencies.push(report.latency_ms as f64);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Row {
        concurrency,
        probes: ports.len(),
        failures,
        seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    }
}

fn main() -> std::io::Result<()> {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tools = Arc::new(tools());
        let mut ports = Vec::with_capacity(args.servers);
        for _ in 0..args.servers {
            ports.push(start_server(tools.clone()).await?);
        }
        let mut levels = vec![args.concurrency];
        levels.extend(
            args.compare
                .iter()
                .copied()
                .filter(|c| *c != args.concurrency),
        );
        levels.sort_unstable();
        // Warm-up: touch a few servers so first-use costs (TLS config, allocators) are not measured.
        let _ = run_level(&ports[..ports.len().min(8)], 4).await;
        let mut rows = Vec::new();
        for c in levels {
            rows.push(run_level(&ports, c).await);
        }
        report(&args, &rows)
    })
}

fn report(args: &Args, rows: &[Row]) -> std::io::Result<()> {
    println!(
        "\nprobe benchmark: {} local Streamable HTTP servers, {TOOLS} tools each ({PAGE} per page)\n",
        args.servers
    );
    println!(
        "{:>11} {:>7} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "concurrency", "probes", "failures", "seconds", "probes/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut csv = String::from(
        "concurrency,probes,failures,seconds,probes_per_second,p50_ms,p99_ms,max_ms\n",
    );
    let mut json = Vec::new();
    for r in rows {
        let rate = r.probes as f64 / r.seconds;
        println!(
            "{:>11} {:>7} {:>8} {:>9.2} {:>10.1} {:>8.1} {:>8.1} {:>8.1}",
            r.concurrency, r.probes, r.failures, r.seconds, rate, r.p50_ms, r.p99_ms, r.max_ms
        );
        let _ = writeln!(
            csv,
            "{},{},{},{:.3},{:.1},{:.1},{:.1},{:.1}",
            r.concurrency, r.probes, r.failures, r.seconds, rate, r.p50_ms, r.p99_ms, r.max_ms
        );
        json.push(serde_json::json!({
            "concurrency": r.concurrency, "probes": r.probes, "failures": r.failures, "seconds": r.seconds,
            "probesPerSecond": rate, "p50Ms": r.p50_ms, "p99Ms": r.p99_ms, "maxMs": r.max_ms,
        }));
    }
    std::fs::create_dir_all(&args.out_dir)?;
    std::fs::write(args.out_dir.join("probe.csv"), csv)?;
    let doc =
        serde_json::json!({"servers": args.servers, "toolsPerServer": TOOLS, "results": json});
    std::fs::write(
        args.out_dir.join("probe.json"),
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )?;
    std::fs::write(args.out_dir.join("probe.svg"), svg(args.servers, rows))?;
    println!("\nwrote {}/probe.{{csv,json,svg}}", args.out_dir.display());
    Ok(())
}

/// Title, left edge, and (value, colour) bars of one chart.
type Chart = (&'static str, f64, Vec<(f64, &'static str)>);

/// Two bar charts side by side: probes/s, and p50/p99 latency, per concurrency level.
fn svg(servers: usize, rows: &[Row]) -> String {
    let (w, h, pad, chart_w) = (760.0, 340.0, 50.0, 300.0);
    let chart_h = h - 2.0 * pad;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="20" font-size="14">mcp-operator probe benchmark ({servers} servers)</text>"#
    );
    let groups = rows.len().max(1) as f64;
    let charts: [Chart; 2] = [
        (
            "probes/s",
            pad,
            rows.iter()
                .map(|r| (r.probes as f64 / r.seconds, "#4477aa"))
                .collect(),
        ),
        (
            "p50 / p99 latency (ms)",
            pad * 2.0 + chart_w,
            rows.iter()
                .flat_map(|r| [(r.p50_ms, "#66ccee"), (r.p99_ms, "#ee6677")])
                .collect(),
        ),
    ];
    for (title, x0, bars) in charts {
        let max = bars.iter().map(|b| b.0).fold(1.0, f64::max);
        let per_group = bars.len() as f64 / groups;
        let bw = chart_w / bars.len().max(1) as f64 * 0.8;
        let _ = write!(
            s,
            r#"<text x="{x0}" y="{}">{title}</text><line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            pad - 8.0,
            pad + chart_h,
            x0 + chart_w,
            pad + chart_h
        );
        for (i, (v, color)) in bars.iter().enumerate() {
            let bh = v / max * (chart_h - 20.0);
            let x = x0 + i as f64 * chart_w / bars.len() as f64;
            let y = pad + chart_h - bh;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"/><text x="{x:.1}" y="{:.1}" font-size="10">{v:.0}</text>"#,
                y - 3.0
            );
            if i % per_group.max(1.0) as usize == 0 {
                let c = rows
                    .get(i / per_group.max(1.0) as usize)
                    .map(|r| r.concurrency)
                    .unwrap_or(0);
                let _ = write!(
                    s,
                    r#"<text x="{x:.1}" y="{:.1}">c={c}</text>"#,
                    pad + chart_h + 15.0
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
