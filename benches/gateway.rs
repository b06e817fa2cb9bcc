//! Data-path benchmark: `tools/call echo` latency and throughput at 1, 16 and 64 concurrent
//! clients, side by side in one run on this machine. Legacy-era clients open one MCP
//! session each (`initialize`, `Mcp-Session-Id`); modern-era clients (2026-07-28) are
//! stateless: every call carries the `_meta` envelope and the `MCP-Protocol-Version`,
//! `Mcp-Method` and `Mcp-Name` headers, after one `server/discover`.
//!
//! Against server-everything (legacy era only):
//! - `direct`: server-everything's own Streamable HTTP endpoint;
//! - `limit`: the same server behind a minimal pass-through proxy (hyper, no parsing, no
//!   policy, this bench binary re-run with `--limit-proxy`): what any proxy hop costs;
//! - `gateway`: the same server through `mcp-operator gateway` (auth Required, audit on);
//! - `bridge`: server-everything on stdio through `mcp-operator bridge` alone;
//! - `bridge+limit`: the bridge behind the minimal proxy;
//! - `bridge+gateway`: the bridge behind the gateway (what a Stdio McpServer pod runs);
//! - `supergateway`: the same stdio server through supergateway 4 (stateful Streamable HTTP);
//! - `mcp-proxy`: the same stdio server through the Python mcp-proxy.
//!
//! Against the TypeScript SDK v2 dual server (`tests/peers/ts_era_server.cjs`, both eras),
//! each target in both eras: `v2:direct` (its Streamable HTTP endpoint), `v2:gateway`,
//! `v2:bridge` (the same server on stdio behind the bridge) and `v2:bridge+gateway`.
//!
//! A target that cannot be started or refuses a client (e.g. a gateway that does not pass
//! modern requests yet) is reported as a `failed: <reason>` row; the run goes on.
//!
//! Also samples the gateway's (bridge's, proxy's) peak RSS under load. Writes
//! `bench-results/gateway.{csv,json,svg}`.
//! `cargo bench --bench gateway -- [--seconds 5] [--clients 1,16,64] [--only name,name]
//! [--eras legacy,modern] [--baseline-bin PATH]`
//!
//! `--baseline-bin` (or `MCP_BENCH_BASELINE_BIN`) adds `gateway@baseline`,
//! `bridge+gateway@baseline` and `v2:gateway@baseline` (both eras: a build from before
//! modern-era support shows its modern rows as failed): the same config through another
//! build of `mcp-operator`
//! (e.g. the last release, built from a worktree), so a change's cost to the data path is
//! read as a ratio within one run.
//! Numbers are for comparison within one run, never assertions.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_operator::mcp_http::era::{self, Era};
use serde_json::{Value, json};

const TOKEN: &str = "bench-token-not-a-secret";
/// How long opening a client (and its warm-up call) may take before the target is failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest reason quoted in a failed row.
const REASON_CHARS: usize = 200;

struct Args {
    seconds: u64,
    clients: Vec<usize>,
    only: Option<Vec<String>>,
    eras: Vec<Era>,
    out_dir: PathBuf,
    /// Another `mcp-operator` binary whose gateway is measured beside this one.
    baseline_bin: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 5,
        clients: vec![1, 16, 64],
        only: None,
        eras: vec![Era::Legacy, Era::Modern],
        out_dir: repo("bench-results"),
        baseline_bin: std::env::var_os("MCP_BENCH_BASELINE_BIN").map(PathBuf::from),
    };
    let list = |v: Option<String>| -> Vec<String> {
        v.unwrap_or_default()
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => args.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--clients" => {
                args.clients = list(it.next())
                    .iter()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            }
            "--only" => args.only = Some(list(it.next())),
            "--eras" => {
                args.eras = list(it.next())
                    .iter()
                    .filter_map(|e| match e.as_str() {
                        "legacy" => Some(Era::Legacy),
                        "modern" => Some(Era::Modern),
                        _ => None,
                    })
                    .collect()
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
fn wait_ready(port: u16, what: &str) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.ends_with(b"200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} was not ready (GET /readyz) within 60 s"))
}

fn node() -> PathBuf {
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { PathBuf::from("node") } else { node22() }
}

/// The pinned Node 22 (the TypeScript SDK v2 peers need it).
fn node22() -> PathBuf {
    peers().join("bin/node22")
}

fn everything_js() -> PathBuf {
    peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// The TypeScript SDK v2 peer that serves both eras (`http` with PORT, or `stdio`).
fn ts_era_server() -> PathBuf {
    repo("tests/peers/ts_era_server.cjs")
}

fn operator_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-operator")
}

/// The tool each upstream's bench call uses: its name and the string argument it echoes.
#[derive(Clone, Copy)]
struct Echo {
    tool: &'static str,
    arg: &'static str,
}

const EVERYTHING_ECHO: Echo = Echo {
    tool: "echo",
    arg: "message",
};
const TS_ERA_ECHO: Echo = Echo {
    tool: "echo",
    arg: "text",
};

/// One endpoint under test, in one era.
struct Target {
    name: String,
    era: Era,
    url: String,
    token: Option<&'static str>,
    /// Process whose RSS is sampled (the gateway, the bridge, or the limit proxy).
    rss_pid: Option<u32>,
    echo: Echo,
    /// Why the target could not be started: each of its levels is a failed row.
    broken: Option<String>,
}

struct Fixture {
    _procs: Vec<Proc>,
    targets: Vec<Target>,
    _dir: PathBuf,
}

/// Adds `name` at `url` once per era in `eras` (that the run measures).
struct Targets<'a> {
    list: Vec<Target>,
    eras: &'a [Era],
}

impl Targets<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        name: &str,
        eras: &[Era],
        url: &str,
        token: Option<&'static str>,
        rss_pid: Option<u32>,
        echo: Echo,
        broken: Option<&str>,
    ) {
        for &era in eras.iter().filter(|e| self.eras.contains(e)) {
            self.list.push(Target {
                name: name.to_owned(),
                era,
                url: url.to_owned(),
                token,
                rss_pid,
                echo,
                broken: broken.map(str::to_owned),
            });
        }
    }
}

const LEGACY: &[Era] = &[Era::Legacy];
const BOTH: &[Era] = &[Era::Legacy, Era::Modern];

fn start_all(args: &Args) -> Fixture {
    let only = &args.only;
    let want = |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let wants_legacy = args.eras.contains(&Era::Legacy);
    let baseline = args.baseline_bin.as_deref();
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
    let mut t = Targets {
        list: Vec::new(),
        eras: &args.eras,
    };
    let loopback = repo("tests/it/support/loopback.cjs");
    let e = EVERYTHING_ECHO;

    // (a) server-everything Streamable HTTP, and the limit proxy and the gateway in front.
    let everything_http = ["direct", "limit", "gateway"].iter().any(|n| want(n));
    if wants_legacy && everything_http {
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
            t.add("direct", LEGACY, &direct_url, None, None, e, None);
        }
        if want("limit") {
            let (p, url) = start_limit_proxy(direct_port);
            t.add("limit", LEGACY, &url, None, Some(p.pid()), e, None);
            procs.push(p);
        }
        if want("gateway") {
            let (p, url) = start_gateway("gateway", operator_bin(), &config, &direct_url);
            t.add("gateway", LEGACY, &url, Some(TOKEN), Some(p.pid()), e, None);
            procs.push(p);
            if let Some(bin) = baseline {
                let (p, url) = start_gateway("gateway@baseline", bin, &config, &direct_url);
                t.add(
                    "gateway@baseline",
                    LEGACY,
                    &url,
                    Some(TOKEN),
                    Some(p.pid()),
                    e,
                    None,
                );
                procs.push(p);
            }
        }
    }

    // (b) stdio server-everything through the bridge, alone and behind the limit proxy
    // and the gateway.
    let everything_bridge = ["bridge", "bridge+limit", "bridge+gateway"]
        .iter()
        .any(|n| want(n));
    if wants_legacy && everything_bridge {
        let stdio = [
            node().into_os_string(),
            everything_js().into(),
            "stdio".into(),
        ];
        let (bridge, bridge_port, broken) = start_bridge("bridge", &stdio);
        let bridge_url = format!("http://127.0.0.1:{bridge_port}/mcp");
        let broken = broken.as_deref();
        if want("bridge") {
            t.add(
                "bridge",
                LEGACY,
                &bridge_url,
                None,
                Some(bridge.pid()),
                e,
                broken,
            );
        }
        procs.push(bridge);
        if want("bridge+limit") {
            let (p, url) = start_limit_proxy(bridge_port);
            t.add("bridge+limit", LEGACY, &url, None, Some(p.pid()), e, broken);
            procs.push(p);
        }
        if want("bridge+gateway") {
            let (p, url) = start_gateway("bridge+gateway", operator_bin(), &config, &bridge_url);
            t.add(
                "bridge+gateway",
                LEGACY,
                &url,
                Some(TOKEN),
                Some(p.pid()),
                e,
                broken,
            );
            procs.push(p);
            if let Some(bin) = baseline {
                let name = "bridge+gateway@baseline";
                let (p, url) = start_gateway(name, bin, &config, &bridge_url);
                t.add(name, LEGACY, &url, Some(TOKEN), Some(p.pid()), e, broken);
                procs.push(p);
            }
        }
    }

    // (c) the peers: supergateway (stateful Streamable HTTP) and the Python mcp-proxy.
    let stdio_cmd = format!("{} {} stdio", node().display(), everything_js().display());
    if wants_legacy && want("supergateway") {
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
        let url = format!("http://127.0.0.1:{port}/mcp");
        t.add("supergateway", LEGACY, &url, None, None, e, None);
    }
    if wants_legacy && want("mcp-proxy") {
        let port = free_port();
        let mut cmd = Command::new(peers().join("venv-mcp-proxy/bin/mcp-proxy"));
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--"])
            .arg(node())
            .arg(everything_js())
            .arg("stdio");
        procs.push(Proc::spawn("mcp-proxy", cmd));
        wait_port(port, "mcp-proxy");
        let url = format!("http://127.0.0.1:{port}/mcp");
        t.add("mcp-proxy", LEGACY, &url, None, None, e, None);
    }

    // (d) the TypeScript SDK v2 dual server, both eras: direct, behind the gateway, on
    // stdio behind the bridge, and the bridge behind the gateway.
    let e = TS_ERA_ECHO;
    let missing =
        (!ts_era_server().exists()).then(|| format!("{} is missing", ts_era_server().display()));
    if want("v2:direct") || want("v2:gateway") {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/mcp");
        if missing.is_none() {
            let mut cmd = Command::new(node22());
            cmd.arg(ts_era_server())
                .arg("http")
                .env("PORT", port.to_string());
            procs.push(Proc::spawn("ts_era_server http", cmd));
            wait_port(port, "ts_era_server http");
        }
        let broken = missing.as_deref();
        if want("v2:direct") {
            t.add("v2:direct", BOTH, &url, None, None, e, broken);
        }
        if want("v2:gateway") {
            let (p, gw_url) = start_gateway("v2:gateway", operator_bin(), &config, &url);
            t.add(
                "v2:gateway",
                BOTH,
                &gw_url,
                Some(TOKEN),
                Some(p.pid()),
                e,
                broken,
            );
            procs.push(p);
            if let Some(bin) = baseline {
                let name = "v2:gateway@baseline";
                let (p, gw_url) = start_gateway(name, bin, &config, &url);
                t.add(name, BOTH, &gw_url, Some(TOKEN), Some(p.pid()), e, broken);
                procs.push(p);
            }
        }
    }
    if want("v2:bridge") || want("v2:bridge+gateway") {
        let stdio = [
            node22().into_os_string(),
            ts_era_server().into(),
            "stdio".into(),
        ];
        let (bridge, port, broken) = match &missing {
            Some(m) => (None, free_port(), Some(m.clone())),
            None => {
                let (p, port, broken) = start_bridge("v2:bridge", &stdio);
                (Some(p), port, broken)
            }
        };
        let broken = broken.as_deref();
        let url = format!("http://127.0.0.1:{port}/mcp");
        if want("v2:bridge") {
            let pid = bridge.as_ref().map(Proc::pid);
            t.add("v2:bridge", BOTH, &url, None, pid, e, broken);
        }
        procs.extend(bridge);
        if want("v2:bridge+gateway") {
            let name = "v2:bridge+gateway";
            let (p, gw_url) = start_gateway(name, operator_bin(), &config, &url);
            t.add(name, BOTH, &gw_url, Some(TOKEN), Some(p.pid()), e, broken);
            procs.push(p);
        }
    }
    Fixture {
        _procs: procs,
        targets: t.list,
        _dir: dir,
    }
}

/// `mcp-operator bridge` running `child` (Shared); its port, and why it is not ready if
/// it is not.
fn start_bridge(name: &str, child: &[std::ffi::OsString]) -> (Proc, u16, Option<String>) {
    let port = free_port();
    let mut cmd = Command::new(operator_bin());
    cmd.args(["bridge", "--listen", &format!("127.0.0.1:{port}"), "--"])
        .args(child);
    let bridge = Proc::spawn(name, cmd);
    wait_port(port, name);
    let broken = wait_ready(port, name).err();
    (bridge, port, broken)
}

/// `bin gateway` with `config` in front of `upstream`; its URL.
fn start_gateway(
    name: &str,
    bin: impl AsRef<std::ffi::OsStr>,
    config: &Path,
    upstream: &str,
) -> (Proc, String) {
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
    (p, format!("http://127.0.0.1:{port}/mcp"))
}

/// This bench binary as the minimal pass-through proxy in front of 127.0.0.1:`upstream`.
fn start_limit_proxy(upstream: u16) -> (Proc, String) {
    let port = free_port();
    let mut cmd = Command::new(std::env::current_exe().expect("the bench binary's path"));
    cmd.args([
        "--limit-proxy",
        &format!("127.0.0.1:{port}"),
        &format!("http://127.0.0.1:{upstream}"),
    ]);
    let p = Proc::spawn("limit proxy", cmd);
    wait_port(port, "limit proxy");
    (p, format!("http://127.0.0.1:{port}/mcp"))
}

/// The `limit` target: the least any HTTP proxy hop can cost. Every request is sent on to
/// the upstream as it came (same method, path, headers and streamed body; only the
/// authority changes) over kept-alive connections, and the answer streamed back: no
/// parsing, no policy, no audit. Same runtime shape as the gateway (multi-threaded tokio,
/// hyper HTTP/1.1 both sides, `TCP_NODELAY`).
mod limit_proxy {
    use std::sync::Arc;

    use hyper::body::Incoming;
    use hyper::{Request, Response, header};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    type Upstream = Client<HttpConnector, Incoming>;

    #[derive(Debug, thiserror::Error)]
    enum ProxyError {
        #[error("bad upstream URI: {0}")]
        Uri(#[from] hyper::http::uri::InvalidUri),
        #[error("upstream: {0}")]
        Upstream(#[from] hyper_util::client::legacy::Error),
    }

    pub fn serve(listen: &str, upstream: &str) -> std::io::Result<()> {
        let base: Arc<str> = upstream.trim_end_matches('/').into();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let client = client.clone();
                let base = base.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        forward(client.clone(), base.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    }

    /// Sends `req` on to `base` + its path, as it came (the client sets Host from the URI).
    async fn forward(
        client: Upstream,
        base: Arc<str>,
        mut req: Request<Incoming>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = format!("{base}{path}").parse()?;
        req.headers_mut().remove(header::HOST);
        Ok(client.request(req).await?)
    }
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `s` on one line, at most [`REASON_CHARS`] characters.
fn short(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > REASON_CHARS {
        one_line.chars().take(REASON_CHARS).collect::<String>() + "…"
    } else {
        one_line
    }
}

/// One MCP client over Streamable HTTP: a legacy session, or a stateless modern client.
struct Session {
    http: reqwest::Client,
    url: String,
    token: Option<&'static str>,
    era: Era,
    echo: Echo,
    session_id: Option<String>,
    /// The negotiated version (legacy) or the one every request declares (modern).
    protocol: String,
    /// The `_meta` envelope of every modern request.
    envelope: Value,
}

impl Session {
    async fn open(target: &Target) -> Result<Session, String> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let mut s = Session {
            http,
            url: target.url.clone(),
            token: target.token,
            era: target.era,
            echo: target.echo,
            session_id: None,
            protocol: era::LATEST_LEGACY.into(),
            envelope: era::request_envelope(
                era::LATEST_MODERN,
                json!({}),
                json!({"name": "gateway-bench", "version": "1"}),
            ),
        };
        match s.era {
            Era::Legacy => {
                let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": era::LATEST_LEGACY, "capabilities": {},
                    "clientInfo": {"name": "gateway-bench", "version": "1"}}});
                let (headers, body) = s
                    .post(&init)
                    .await
                    .map_err(|e| format!("initialize: {e}"))?;
                s.session_id = headers
                    .get("mcp-session-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let msg = find_response(&headers, &body, &json!(0))?;
                match msg["result"]["protocolVersion"].as_str() {
                    Some(v) => s.protocol = v.to_owned(),
                    None => return Err(format!("initialize: {}", answer_error(&msg))),
                }
                s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                    .await?;
            }
            Era::Modern => {
                s.protocol = era::LATEST_MODERN.into();
                let mut discover = json!({"jsonrpc": "2.0", "id": 0, "method": era::DISCOVER,
                    "params": {}});
                era::stamp_envelope(&mut discover, &s.envelope);
                let (headers, body) = s
                    .post(&discover)
                    .await
                    .map_err(|e| format!("server/discover: {e}"))?;
                let msg = find_response(&headers, &body, &json!(0))?;
                let supported = msg["result"]["supportedVersions"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|v| v == era::LATEST_MODERN));
                if !supported {
                    return Err(format!("server/discover: {}", answer_error(&msg)));
                }
            }
        }
        Ok(s)
    }

    /// POSTs `msg`; modern requests mirror their version, method and name in headers.
    async fn post(&self, msg: &Value) -> Result<(reqwest::header::HeaderMap, String), String> {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", &self.protocol)
            .body(msg.to_string());
        if self.era == Era::Modern
            && let Some(method) = msg["method"].as_str()
        {
            req = req.header(era::METHOD_HEADER, method);
            if let Some(name) = era::name_param(method).and_then(|k| msg["params"][k].as_str()) {
                req = req.header(era::NAME_HEADER, era::encode_header_value(name));
            }
        }
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
            // A JSON-RPC error body says why in fewer words than the raw body.
            let why = serde_json::from_str::<Value>(&body)
                .ok()
                .filter(|v| v.get("error").is_some())
                .map_or_else(|| short(&body), |v| answer_error(&v));
            return Err(format!("HTTP {}: {why}", status.as_u16()));
        }
        Ok((headers, body))
    }

    async fn echo(&self, id: u64) -> Result<(), String> {
        let mut call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": self.echo.tool, "arguments": {self.echo.arg: format!("bench {id}")}}});
        if self.era == Era::Modern {
            era::stamp_envelope(&mut call, &self.envelope);
        }
        let (headers, body) = self
            .post(&call)
            .await
            .map_err(|e| format!("tools/call: {e}"))?;
        let msg = find_response(&headers, &body, &json!(id))?;
        if msg.get("result").is_none() {
            return Err(format!("tools/call: {}", answer_error(&msg)));
        }
        Ok(())
    }

    /// Ends a legacy session politely.
    async fn close(&self) {
        let Some(sid) = &self.session_id else {
            return;
        };
        let mut del = self.http.delete(&self.url).header("mcp-session-id", sid);
        if let Some(t) = self.token {
            del = del.bearer_auth(t);
        }
        let _ = del.send().await;
    }
}

/// A JSON-RPC answer without the expected result, for a failed row.
fn answer_error(msg: &Value) -> String {
    match msg.get("error") {
        Some(e) => short(&format!(
            "JSON-RPC {} {}",
            e["code"],
            e["message"].as_str().unwrap_or("")
        )),
        None => short(&format!("unexpected answer {msg}")),
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
        .ok_or_else(|| format!("no response with id {id} in {}", short(body)))
}

struct Row {
    target: String,
    era: Era,
    clients: usize,
    calls: usize,
    errors: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_mib: Option<f64>,
    /// Why this target measured nothing at this level.
    failed: Option<String>,
}

impl Row {
    fn failed(target: &Target, clients: usize, reason: &str) -> Row {
        Row {
            target: target.name.clone(),
            era: target.era,
            clients,
            calls: 0,
            errors: 0,
            per_sec: 0.0,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            peak_rss_mib: None,
            failed: Some(short(reason)),
        }
    }

    /// `target` or `target (modern)`.
    fn label(&self) -> String {
        label(&self.target, self.era)
    }
}

fn label(target: &str, era: Era) -> String {
    match era {
        Era::Legacy => target.to_owned(),
        Era::Modern => format!("{target} (modern)"),
    }
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

/// Opens `clients` clients and makes each one warm-up call; the first failure fails the
/// level.
async fn open_clients(target: &Target, clients: usize) -> Result<Vec<Session>, String> {
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        let s = tokio::time::timeout(OPEN_TIMEOUT, Session::open(target))
            .await
            .map_err(|_| format!("opening a client took over {OPEN_TIMEOUT:?}"))??;
        sessions.push(s);
    }
    for s in &sessions {
        tokio::time::timeout(OPEN_TIMEOUT, s.echo(1))
            .await
            .map_err(|_| format!("the warm-up call took over {OPEN_TIMEOUT:?}"))??;
    }
    Ok(sessions)
}

async fn run_level(target: &Target, clients: usize, seconds: u64) -> Row {
    if let Some(reason) = &target.broken {
        return Row::failed(target, clients, reason);
    }
    let sessions = match open_clients(target, clients).await {
        Ok(s) => s,
        Err(e) => return Row::failed(target, clients, &e),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
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
        let first_error = first_error.clone();
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
                        first_error.lock().unwrap().get_or_insert(e);
                    }
                }
                id += 1;
            }
            s.close().await;
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
    if all.is_empty() {
        let reason = first_error.lock().unwrap().take().unwrap_or_default();
        return Row::failed(target, clients, &format!("no call succeeded: {reason}"));
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let peak = peak.load(Ordering::Relaxed);
    Row {
        target: target.name.clone(),
        era: target.era,
        clients,
        calls: all.len(),
        errors: errors.load(Ordering::Relaxed),
        per_sec: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        peak_rss_mib: (peak > 0).then(|| peak as f64 / 1024.0),
        failed: None,
    }
}

fn main() -> std::io::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--limit-proxy") {
        let (Some(listen), Some(upstream)) = (argv.get(2), argv.get(3)) else {
            eprintln!("usage: --limit-proxy LISTEN UPSTREAM_URL");
            std::process::exit(2);
        };
        return limit_proxy::serve(listen, upstream);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args();
    let fixture = start_all(&args);
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
            match &row.failed {
                Some(reason) => println!(
                    "  {:<28} {:>3} clients: failed: {reason}",
                    row.label(),
                    row.clients
                ),
                None => println!(
                    "  {:<28} {:>3} clients: {:>8.0} calls/s  p50 {:>7.3} ms  p99 {:>7.3} ms{}",
                    row.label(),
                    row.clients,
                    row.per_sec,
                    row.p50_ms,
                    row.p99_ms,
                    row.peak_rss_mib
                        .map(|m| format!("  peak RSS {m:.1} MiB"))
                        .unwrap_or_default()
                ),
            }
            rows.push(row);
        }
    }
    report(&args, &rows)
}

fn report(args: &Args, rows: &[Row]) -> std::io::Result<()> {
    println!();
    println!(
        "| target | era | clients | calls/s | p50 ms | p99 ms | errors | peak RSS MiB (gateway, bridge or proxy) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        match &r.failed {
            Some(reason) => println!(
                "| {} | {} | {} | failed: {} | | | | |",
                r.target,
                r.era.as_str(),
                r.clients,
                reason.replace('|', "\\|")
            ),
            None => println!(
                "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} |",
                r.target,
                r.era.as_str(),
                r.clients,
                r.per_sec,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.peak_rss_mib
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or("—".into())
            ),
        }
    }
    println!();
    for line in ratios(&args.clients, rows) {
        println!("{line}");
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let mut csv = String::from(
        "target,era,clients,calls,errors,calls_per_sec,p50_ms,p99_ms,peak_rss_mib,failed\n",
    );
    let mut json_rows = Vec::new();
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.1},{:.4},{:.4},{},\"{}\"",
            r.target,
            r.era.as_str(),
            r.clients,
            r.calls,
            r.errors,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.peak_rss_mib
                .map(|m| format!("{m:.1}"))
                .unwrap_or_default(),
            r.failed.as_deref().unwrap_or("").replace('"', "\"\"")
        );
        json_rows.push(json!({"target": r.target, "era": r.era.as_str(),
            "clients": r.clients, "calls": r.calls, "errors": r.errors,
            "callsPerSec": r.per_sec,
            "p50Ms": r.failed.is_none().then_some(r.p50_ms),
            "p99Ms": r.failed.is_none().then_some(r.p99_ms),
            "peakRssMiB": r.peak_rss_mib, "failed": r.failed}));
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

/// The ratios measured in this run, one line each.
fn ratios(levels: &[usize], rows: &[Row]) -> Vec<String> {
    let find = |t: &str, era: Era, c: usize| {
        rows.iter()
            .find(|r| r.target == t && r.era == era && r.clients == c && r.failed.is_none())
    };
    let mut out = Vec::new();
    for &c in levels {
        let legacy = |t: &str| find(t, Era::Legacy, c);
        if let (Some(d), Some(g)) = (legacy("direct"), legacy("gateway")) {
            out.push(format!(
                "{c:>3} clients: gateway adds {:+.3} ms p50, keeps {:.0}% of direct throughput",
                g.p50_ms - d.p50_ms,
                100.0 * g.per_sec / d.per_sec
            ));
        }
        // The gateway against the bare proxy hop, over the same upstream.
        for (base, limit, gateway) in [
            ("direct", "limit", "gateway"),
            ("bridge", "bridge+limit", "bridge+gateway"),
        ] {
            if let (Some(b), Some(l), Some(g)) = (legacy(base), legacy(limit), legacy(gateway)) {
                let (hop, added) = (l.p50_ms - b.p50_ms, g.p50_ms - b.p50_ms);
                let multiple = if hop > 0.0 {
                    format!("{:.1}x", added / hop)
                } else {
                    "n/a (the hop is within noise)".into()
                };
                out.push(format!(
                    "{c:>3} clients: {gateway}/{limit} p50 {:.2}x ({:.3} vs {:.3} ms), throughput {:.2}x; over {base}: {limit} adds {hop:+.3} ms, {gateway} {added:+.3} ms = {multiple} the bare hop",
                    g.p50_ms / l.p50_ms,
                    g.p50_ms,
                    l.p50_ms,
                    g.per_sec / l.per_sec,
                ));
            }
        }
        for (now, base, era) in [
            ("gateway", "gateway@baseline", Era::Legacy),
            ("bridge+gateway", "bridge+gateway@baseline", Era::Legacy),
            ("v2:gateway", "v2:gateway@baseline", Era::Legacy),
            ("v2:gateway", "v2:gateway@baseline", Era::Modern),
        ] {
            if let (Some(n), Some(b)) = (find(now, era, c), find(base, era, c)) {
                let now = label(now, era);
                out.push(format!(
                    "{c:>3} clients: {now} p50 is {:.2}x the baseline's ({:.3} vs {:.3} ms), throughput {:.2}x",
                    n.p50_ms / b.p50_ms,
                    n.p50_ms,
                    b.p50_ms,
                    n.per_sec / b.per_sec
                ));
            }
        }
        // Modern against legacy on the same path, and each path against v2:direct.
        for t in ["v2:direct", "v2:gateway", "v2:bridge", "v2:bridge+gateway"] {
            if let (Some(m), Some(l)) = (find(t, Era::Modern, c), find(t, Era::Legacy, c)) {
                out.push(format!(
                    "{c:>3} clients: {t} modern/legacy p50 {:.2}x ({:.3} vs {:.3} ms), throughput {:.2}x",
                    m.p50_ms / l.p50_ms,
                    m.p50_ms,
                    l.p50_ms,
                    m.per_sec / l.per_sec
                ));
            }
        }
        for era in [Era::Legacy, Era::Modern] {
            for (base, t) in [
                ("v2:direct", "v2:gateway"),
                ("v2:bridge", "v2:bridge+gateway"),
            ] {
                if let (Some(b), Some(g)) = (find(base, era, c), find(t, era, c)) {
                    out.push(format!(
                        "{c:>3} clients: {} adds {:+.3} ms p50 over {base}, keeps {:.0}% of its throughput",
                        label(t, era),
                        g.p50_ms - b.p50_ms,
                        100.0 * g.per_sec / b.per_sec
                    ));
                }
            }
        }
        if let Some(b) = legacy("bridge+gateway") {
            for peer in ["supergateway", "mcp-proxy"] {
                if let Some(p) = legacy(peer) {
                    out.push(format!(
                        "{c:>3} clients: bridge+gateway has {:.1}x the throughput of {peer}",
                        b.per_sec / p.per_sec
                    ));
                }
            }
        }
    }
    out
}

/// A chart panel: title and the value it plots.
type Panel = (&'static str, fn(&Row) -> f64);

const COLORS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#e15759", "#b07aa1", "#edc948", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf",
];

/// Two panels of grouped bars: throughput and p50 latency per client count (failed rows
/// are left out).
fn svg(levels: &[usize], rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.failed.is_none()).collect();
    let mut series: Vec<String> = Vec::new();
    for r in &rows {
        if !series.contains(&r.label()) {
            series.push(r.label());
        }
    }
    let pad = 60.0;
    let panel_h = 260.0;
    let w = f64::max(
        860.0,
        pad + 20.0 + levels.len() as f64 * (30.0 + series.len() as f64 * 18.0),
    );
    let per_line = (((w - pad) / 170.0) as usize).max(1);
    let legend_lines = series.len().div_ceil(per_line).max(1);
    let h = panel_h * 2.0 + 90.0 + legend_lines as f64 * 18.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="22" font-size="15">tools/call echo through each data path (one run, same machine)</text>"#
    );
    let panels: [Panel; 2] = [
        ("calls/s (higher is better)", |r| r.per_sec),
        ("p50 latency ms (lower is better)", |r| r.p50_ms),
    ];
    for (pi, (title, value)) in panels.iter().enumerate() {
        let top = 40.0 + pi as f64 * (panel_h + 30.0);
        let max = rows
            .iter()
            .map(|r| value(r))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let _ = write!(
            s,
            r#"<text x="{pad}" y="{}" font-size="13">{title}</text>"#,
            top + 14.0
        );
        let plot_top = top + 24.0;
        let plot_h = panel_h - 50.0;
        let group_w = (w - pad - 20.0) / levels.len().max(1) as f64;
        let bar_w = (group_w - 30.0) / series.len().max(1) as f64;
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
            for (ti, t) in series.iter().enumerate() {
                if let Some(r) = rows.iter().find(|r| &r.label() == t && r.clients == *level) {
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
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle">{label}</text>"#,
                        (bar_w - 2.0).max(1.0),
                        COLORS[ti % COLORS.len()],
                        x + bar_w / 2.0 - 1.0,
                        y - 3.0
                    );
                }
            }
        }
    }
    let legend_top = panel_h * 2.0 + 90.0;
    for (ti, t) in series.iter().enumerate() {
        let x = pad + (ti % per_line) as f64 * 170.0;
        let ly = legend_top + (ti / per_line) as f64 * 18.0;
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
