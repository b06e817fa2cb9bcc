//! Data-path benchmark: `tools/call echo` latency and throughput at 1, 16 and 64 concurrent
//! clients (one MCP session each), side by side in one run on this machine:
//!
//! - `direct`: server-everything's own Streamable HTTP endpoint;
//! - `gateway`: the same server through `mcp-operator gateway` (auth Required, audit on);
//! - `bridge`: server-everything on stdio through `mcp-operator bridge` alone;
//! - `bridge+gateway`: the same behind the gateway (what a Stdio McpServer pod runs);
//! - `supergateway`: the same stdio server through supergateway 4 (stateful Streamable HTTP);
//! - `mcp-proxy`: the same stdio server through the Python mcp-proxy.
//!
//! Also samples the gateway's peak RSS under load. Writes `bench-results/gateway.{csv,json,svg}`.
//! `cargo bench --bench gateway -- [--seconds 5] [--clients 1,16,64] [--only name,name]
//! [--baseline-bin PATH]`
//!
//! `--baseline-bin` (or `MCP_BENCH_BASELINE_BIN`) adds `gateway@baseline` and
//! `bridge+gateway@baseline`: the same config through another build of `mcp-operator`
//! (e.g. the last release, built from a worktree), so a change's cost to the data path is
//! read as a ratio within one run.
//! Numbers are for comparison within one run, never assertions.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "bench-token-not-a-secret";

struct Args {
    seconds: u64,
    clients: Vec<usize>,
    only: Option<Vec<String>>,
    out_dir: PathBuf,
    /// Another `mcp-operator` binary whose gateway is measured beside this one.
    baseline_bin: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 5,
        clients: vec![1, 16, 64],
        only: None,
        out_dir: repo("bench-results"),
        baseline_bin: std::env::var_os("MCP_BENCH_BASELINE_BIN").map(PathBuf::from),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => args.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--clients" => {
                args.clients = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|v| v.parse().ok())
                    .collect()
            }
            "--only" => {
                args.only = Some(
                    it.next()
                        .unwrap_or_default()
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "--out-dir" => args.out_dir = PathBuf::from(it.next().unwrap_or_default()),
            "--baseline-bin" => args.baseline_bin = it.next().map(PathBuf::from),
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn peers() -> PathBuf {
    std::env::var_os("MCP_OPERATOR_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo(".peers"))
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A child process killed (with its process group) on drop.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { child }
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Kill the whole group: supergateway and mcp-proxy start the server as a child.
        let _ = Command::new("kill")
            .arg("-9")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 60 s");
}

/// Waits until `GET /readyz` on `port` answers 200 (the bridge: its child initialized).
fn wait_ready(port: u16, what: &str) {
    use std::io::{Read as _, Write as _};
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.ends_with(b"200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} was not ready on {port} within 60 s");
}

fn node() -> PathBuf {
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        PathBuf::from("node")
    } else {
        peers().join("bin/node22")
    }
}

fn everything_js() -> PathBuf {
    peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn operator_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-operator")
}

/// One endpoint under test.
struct Target {
    name: &'static str,
    url: String,
    token: Option<&'static str>,
    /// Process whose RSS is sampled (the gateway, or the bridge).
    rss_pid: Option<u32>,
}

struct Fixture {
    _procs: Vec<Proc>,
    targets: Vec<Target>,
    _dir: PathBuf,
}

fn start_all(only: &Option<Vec<String>>, baseline: Option<&Path>) -> Fixture {
    let want = |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let dir = std::env::temp_dir().join(format!("mcp-gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("gateway.json");
    let hash = hex_sha256(TOKEN);
    std::fs::write(
        &config,
        serde_json::to_string_pretty(&json!({
            "server": {"name": "everything", "namespace": "bench"},
            "auth": "Required",
            "policy": {"audit": {"level": "Metadata"}},
            "bindings": [{"name": "bench", "tokenSha256": [hash]}]
        }))
        .unwrap(),
    )
    .expect("writing gateway config");

    let mut procs = Vec::new();
    let mut targets = Vec::new();
    let loopback = repo("tests/it/support/loopback.cjs");

    // (a) server-everything Streamable HTTP, and (b) the gateway in front of it.
    let direct_port = free_port();
    let mut cmd = Command::new(node());
    cmd.arg("--require")
        .arg(&loopback)
        .arg(everything_js())
        .arg("streamableHttp")
        .env("PORT", direct_port.to_string());
    procs.push(Proc::spawn("server-everything streamableHttp", cmd));
    wait_port(direct_port, "server-everything");
    let direct_url = format!("http://127.0.0.1:{direct_port}/mcp");
    if want("direct") {
        targets.push(Target {
            name: "direct",
            url: direct_url.clone(),
            token: None,
            rss_pid: None,
        });
    }
    if want("gateway") {
        let (p, target) = start_gateway("gateway", operator_bin(), &config, &direct_url);
        targets.push(target);
        procs.push(p);
    }
    if let Some(bin) = baseline.filter(|_| want("gateway")) {
        let (p, target) = start_gateway("gateway@baseline", bin, &config, &direct_url);
        targets.push(target);
        procs.push(p);
    }

    // (c) stdio server-everything through the bridge, alone and behind the gateway.
    if want("bridge") || want("bridge+gateway") {
        let bridge_port = free_port();
        let mut cmd = Command::new(operator_bin());
        cmd.args([
            "bridge",
            "--listen",
            &format!("127.0.0.1:{bridge_port}"),
            "--",
        ])
        .arg(node())
        .arg(everything_js())
        .arg("stdio");
        let bridge = Proc::spawn("bridge", cmd);
        wait_port(bridge_port, "bridge");
        wait_ready(bridge_port, "bridge");
        let bridge_url = format!("http://127.0.0.1:{bridge_port}/mcp");
        if want("bridge") {
            targets.push(Target {
                name: "bridge",
                url: bridge_url.clone(),
                token: None,
                rss_pid: Some(bridge.pid()),
            });
        }
        procs.push(bridge);
        if want("bridge+gateway") {
            let (p, target) = start_gateway("bridge+gateway", operator_bin(), &config, &bridge_url);
            targets.push(target);
            procs.push(p);
        }
        if let Some(bin) = baseline.filter(|_| want("bridge+gateway")) {
            let (p, target) = start_gateway("bridge+gateway@baseline", bin, &config, &bridge_url);
            targets.push(target);
            procs.push(p);
        }
    }

    // (d) the peers: supergateway (stateful Streamable HTTP) and the Python mcp-proxy.
    let stdio_cmd = format!("{} {} stdio", node().display(), everything_js().display());
    if want("supergateway") {
        let port = free_port();
        let mut cmd = Command::new(node());
        cmd.arg("--require")
            .arg(&loopback)
            .arg(peers().join("node_modules/supergateway/dist/index.js"))
            .args(["--stdio", &stdio_cmd])
            .args(["--outputTransport", "streamableHttp", "--stateful"])
            .args(["--port", &port.to_string(), "--logLevel", "none"]);
        procs.push(Proc::spawn("supergateway", cmd));
        wait_port(port, "supergateway");
        targets.push(Target {
            name: "supergateway",
            url: format!("http://127.0.0.1:{port}/mcp"),
            token: None,
            rss_pid: None,
        });
    }
    if want("mcp-proxy") {
        let port = free_port();
        let mut cmd = Command::new(peers().join("venv-mcp-proxy/bin/mcp-proxy"));
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--"])
            .arg(node())
            .arg(everything_js())
            .arg("stdio");
        procs.push(Proc::spawn("mcp-proxy", cmd));
        wait_port(port, "mcp-proxy");
        targets.push(Target {
            name: "mcp-proxy",
            url: format!("http://127.0.0.1:{port}/mcp"),
            token: None,
            rss_pid: None,
        });
    }
    Fixture {
        _procs: procs,
        targets,
        _dir: dir,
    }
}

/// `bin gateway` with `config` in front of `upstream`, as target `name`.
fn start_gateway(
    name: &'static str,
    bin: impl AsRef<std::ffi::OsStr>,
    config: &Path,
    upstream: &str,
) -> (Proc, Target) {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["gateway", "--config"]).arg(config).args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--upstream",
        upstream,
    ]);
    let p = Proc::spawn(name, cmd);
    wait_port(port, name);
    let target = Target {
        name,
        url: format!("http://127.0.0.1:{port}/mcp"),
        token: Some(TOKEN),
        rss_pid: Some(p.pid()),
    };
    (p, target)
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// One MCP client session over Streamable HTTP.
struct Session {
    http: reqwest::Client,
    url: String,
    token: Option<&'static str>,
    session_id: Option<String>,
    protocol: String,
}

impl Session {
    async fn open(url: &str, token: Option<&'static str>) -> Result<Session, String> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let mut s = Session {
            http,
            url: url.into(),
            token,
            session_id: None,
            protocol: "2025-11-25".into(),
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "gateway-bench", "version": "1"}}});
        let (headers, body) = s.post(&init).await?;
        s.session_id = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let msg = find_response(&headers, &body, &json!(0))?;
        if let Some(v) = msg["result"]["protocolVersion"].as_str() {
            s.protocol = v.to_owned();
        }
        s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(s)
    }

    async fn post(&self, msg: &Value) -> Result<(reqwest::header::HeaderMap, String), String> {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", &self.protocol)
            .body(msg.to_string());
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = &self.session_id {
            req = req.header("mcp-session-id", id);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            ));
        }
        Ok((headers, body))
    }

    async fn echo(&self, id: u64) -> Result<(), String> {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": format!("bench {id}")}}});
        let (headers, body) = self.post(&call).await?;
        let msg = find_response(&headers, &body, &json!(id))?;
        if msg.get("result").is_none() {
            return Err(format!("tools/call failed: {msg}"));
        }
        Ok(())
    }
}

/// The response with `id` in a JSON or SSE body.
fn find_response(
    headers: &reqwest::header::HeaderMap,
    body: &str,
    id: &Value,
) -> Result<Value, String> {
    let is_sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let candidates: Vec<Value> = if is_sse {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim_start()).ok())
            .collect()
    } else {
        serde_json::from_str(body).into_iter().collect()
    };
    candidates
        .into_iter()
        .find(|m| m.get("id") == Some(id))
        .ok_or_else(|| {
            format!(
                "no response with id {id} in {}",
                body.chars().take(200).collect::<String>()
            )
        })
}

struct Row {
    target: &'static str,
    clients: usize,
    calls: usize,
    errors: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_mib: Option<f64>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn run_level(target: &Target, clients: usize, seconds: u64) -> Row {
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        match Session::open(&target.url, target.token).await {
            Ok(s) => sessions.push(s),
            Err(e) => panic!("{}: opening a session failed: {e}", target.name),
        }
    }
    // Warm up every connection, then measure.
    for s in &sessions {
        let _ = s.echo(1).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = target.rss_pid.map(|pid| {
        let stop = stop.clone();
        let peak = peak.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for s in sessions {
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut id = 10u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match s.echo(id).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  call error: {e}");
                        }
                    }
                }
                id += 1;
            }
            // End the session politely.
            let mut del = s.http.delete(&s.url);
            if let Some(sid) = &s.session_id {
                del = del.header("mcp-session-id", sid);
            }
            if let Some(t) = s.token {
                del = del.bearer_auth(t);
            }
            let _ = del.send().await;
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = sampler {
        let _ = h.join();
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let peak = peak.load(Ordering::Relaxed);
    Row {
        target: target.name,
        clients,
        calls: all.len(),
        errors: errors.load(Ordering::Relaxed),
        per_sec: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        peak_rss_mib: (peak > 0).then(|| peak as f64 / 1024.0),
    }
}

fn main() -> std::io::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args();
    let fixture = start_all(&args.only, args.baseline_bin.as_deref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "gateway benchmark: tools/call echo, {} s per level, clients {:?}",
        args.seconds, args.clients
    );
    let mut rows = Vec::new();
    for &clients in &args.clients {
        for target in &fixture.targets {
            let row = rt.block_on(run_level(target, clients, args.seconds));
            println!(
                "  {:<15} {:>3} clients: {:>8.0} calls/s  p50 {:>7.3} ms  p99 {:>7.3} ms{}",
                row.target,
                row.clients,
                row.per_sec,
                row.p50_ms,
                row.p99_ms,
                row.peak_rss_mib
                    .map(|m| format!("  peak RSS {m:.1} MiB"))
                    .unwrap_or_default()
            );
            rows.push(row);
        }
    }
    report(&args, &rows)
}

fn report(args: &Args, rows: &[Row]) -> std::io::Result<()> {
    println!();
    println!(
        "| target | clients | calls/s | p50 ms | p99 ms | errors | peak RSS MiB (gateway or bridge) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {} | {} |",
            r.target,
            r.clients,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.peak_rss_mib
                .map(|m| format!("{m:.1}"))
                .unwrap_or("—".into())
        );
    }
    // Ratios measured in this run.
    let find = |t: &str, c: usize| rows.iter().find(|r| r.target == t && r.clients == c);
    println!();
    for &c in &args.clients {
        if let (Some(d), Some(g)) = (find("direct", c), find("gateway", c)) {
            println!(
                "{c:>3} clients: gateway adds {:+.3} ms p50, keeps {:.0}% of direct throughput",
                g.p50_ms - d.p50_ms,
                100.0 * g.per_sec / d.per_sec
            );
        }
        for (now, base) in [
            ("gateway", "gateway@baseline"),
            ("bridge+gateway", "bridge+gateway@baseline"),
        ] {
            if let (Some(n), Some(b)) = (find(now, c), find(base, c)) {
                println!(
                    "{c:>3} clients: {now} p50 is {:.2}x the baseline's ({:.3} vs {:.3} ms), throughput {:.2}x",
                    n.p50_ms / b.p50_ms,
                    n.p50_ms,
                    b.p50_ms,
                    n.per_sec / b.per_sec
                );
            }
        }
        if let Some(b) = find("bridge+gateway", c) {
            for peer in ["supergateway", "mcp-proxy"] {
                if let Some(p) = find(peer, c) {
                    println!(
                        "{c:>3} clients: bridge+gateway has {:.1}x the throughput of {peer}",
                        b.per_sec / p.per_sec
                    );
                }
            }
        }
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let mut csv =
        String::from("target,clients,calls,errors,calls_per_sec,p50_ms,p99_ms,peak_rss_mib\n");
    let mut json_rows = Vec::new();
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.1},{:.4},{:.4},{}",
            r.target,
            r.clients,
            r.calls,
            r.errors,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.peak_rss_mib
                .map(|m| format!("{m:.1}"))
                .unwrap_or_default()
        );
        json_rows.push(
            json!({"target": r.target, "clients": r.clients, "calls": r.calls,
            "errors": r.errors, "callsPerSec": r.per_sec, "p50Ms": r.p50_ms, "p99Ms": r.p99_ms,
            "peakRssMiB": r.peak_rss_mib}),
        );
    }
    std::fs::write(args.out_dir.join("gateway.csv"), csv)?;
    std::fs::write(
        args.out_dir.join("gateway.json"),
        serde_json::to_string_pretty(&json_rows).unwrap_or_default(),
    )?;
    std::fs::write(args.out_dir.join("gateway.svg"), svg(&args.clients, rows))?;
    println!(
        "\nwrote {}/gateway.{{csv,json,svg}}",
        args.out_dir.display()
    );
    Ok(())
}

/// A chart panel: title and the value it plots.
type Panel = (&'static str, fn(&Row) -> f64);

const COLORS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#e15759", "#b07aa1",
];

/// Two panels of grouped bars: throughput and p50 latency per client count.
fn svg(levels: &[usize], rows: &[Row]) -> String {
    let mut targets: Vec<&str> = Vec::new();
    for r in rows {
        if !targets.contains(&r.target) {
            targets.push(r.target);
        }
    }
    let (w, panel_h, pad) = (860.0, 260.0, 60.0);
    let h = panel_h * 2.0 + 110.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="22" font-size="15">tools/call echo through each data path (one run, same machine)</text>"#
    );
    let panels: [Panel; 2] = [
        ("calls/s (higher is better)", |r| r.per_sec),
        ("p50 latency ms (lower is better)", |r| r.p50_ms),
    ];
    for (pi, (title, value)) in panels.iter().enumerate() {
        let top = 40.0 + pi as f64 * (panel_h + 30.0);
        let max = rows.iter().map(value).fold(0.0f64, f64::max).max(1e-9);
        let _ = write!(
            s,
            r#"<text x="{pad}" y="{}" font-size="13">{title}</text>"#,
            top + 14.0
        );
        let plot_top = top + 24.0;
        let plot_h = panel_h - 50.0;
        let group_w = (w - pad - 20.0) / levels.len().max(1) as f64;
        let bar_w = (group_w - 30.0) / targets.len().max(1) as f64;
        let _ = write!(
            s,
            r##"<line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333"/>"##,
            y = plot_top + plot_h,
            x2 = w - 20.0
        );
        for (gi, level) in levels.iter().enumerate() {
            let gx = pad + gi as f64 * group_w + 15.0;
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{level} client{}</text>"#,
                gx + (group_w - 30.0) / 2.0,
                plot_top + plot_h + 16.0,
                if *level == 1 { "" } else { "s" }
            );
            for (ti, t) in targets.iter().enumerate() {
                if let Some(r) = rows.iter().find(|r| r.target == *t && r.clients == *level) {
                    let v = value(r);
                    let bh = plot_h * v / max;
                    let x = gx + ti as f64 * bar_w;
                    let y = plot_top + plot_h - bh;
                    let label = if v >= 100.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.2}")
                    };
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{label}</text>"#,
                        bar_w - 2.0,
                        COLORS[ti % COLORS.len()],
                        x + bar_w / 2.0 - 1.0,
                        y - 3.0
                    );
                }
            }
        }
    }
    let ly = h - 25.0;
    for (ti, t) in targets.iter().enumerate() {
        let x = pad + ti as f64 * 130.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{ly}">{t}</text>"#,
            ly - 10.0,
            COLORS[ti % COLORS.len()],
            x + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}
