//! The controller at scale: N McpServers (default 1,000) applied at once to the embedded
//! API server, reconciled by the real `mcp-operator run` binary in its own process.
//! Measures the time until every server is Accepted with all seven children (Deployment,
//! Service, gateway Secret, ServiceAccount, Role, RoleBinding, NetworkPolicy), the API
//! requests the operator made per server (by verb, counted at the API server), the
//! operator's resident memory (peak and settled), its reconcile latency p50/p99 (from its
//! own histogram, interpolated within buckets as Prometheus' `histogram_quantile` does),
//! and the writes it makes during an idle period after convergence (should be zero).
//! Nothing plays the Deployment controller, so no server becomes Available and none is
//! probed: this measures the reconcile path. Prints a table and writes
//! `bench-results/controller.{csv,svg}` (the convergence curve).
//!
//! After the idle period every server is touched once (an annotation: no spec change) and
//! the API requests of those steady-state reconciles are counted per reconcile.
//!
//! With `--unreachable U` it measures something else ([`ready`]): the time for healthy
//! remote servers to be Ready alone and beside U servers that never answer, ending with
//! `healthy-ready ratio: R`.
//!
//! `cargo bench --bench controller -- [--servers 1000] [--idle-seconds 10] [--timeout 180]
//! [--reconcile-concurrency N] [--probe-concurrency N] [--unreachable U]`
//! Numbers are for comparison between runs on one machine, never assertions.

use std::{
    fmt::Write as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Secret, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::{Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use mcp_operator::{
    api::{McpPolicy, McpServer, common::find_condition, crd},
    apiserver::{ApiServer, ApiServerOptions, FaultId, FaultKind, FaultRule},
};
use serde::de::DeserializeOwned;
use serde_json::json;

#[path = "controller/ready.rs"]
mod ready;

const NS: &str = "bench";
const VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];
const WRITE_VERBS: [&str; 4] = ["create", "update", "patch", "delete"];

struct Args {
    servers: usize,
    idle_seconds: u64,
    timeout: Duration,
    out_dir: PathBuf,
    /// `--reconcile-concurrency` of the operator (None: its default).
    reconcile_concurrency: Option<u16>,
    /// `--probe-concurrency` of the operator (None: its default).
    probe_concurrency: Option<u16>,
    /// Some > 0: the readiness benchmark with this many unreachable servers.
    unreachable: usize,
}

fn args() -> Args {
    let mut args = Args {
        servers: 1_000,
        idle_seconds: 10,
        timeout: Duration::from_secs(180),
        out_dir: PathBuf::from("bench-results"),
        reconcile_concurrency: None,
        probe_concurrency: None,
        unreachable: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--servers" => args.servers = value().parse().unwrap_or(1_000).max(1),
            "--idle-seconds" => args.idle_seconds = value().parse().unwrap_or(10),
            "--timeout" => {
                args.timeout = Duration::from_secs(value().parse().unwrap_or(180));
            }
            "--out-dir" => args.out_dir = PathBuf::from(value()),
            "--reconcile-concurrency" => args.reconcile_concurrency = value().parse().ok(),
            "--probe-concurrency" => args.probe_concurrency = value().parse().ok(),
            "--unreachable" => args.unreachable = value().parse().unwrap_or(0),
            // `cargo bench` passes `--bench`; anything else is ignored too.
            _ => {}
        }
    }
    args
}

/// A stdio server like examples/02-stdio-memory.yaml, labelled for the policy.
fn server(i: usize) -> McpServer {
    serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": format!("srv-{i:04}"), "namespace": NS, "labels": {"team": "bench"}},
        "spec": {
            "transport": "Stdio",
            "container": {
                "image": "node:22-alpine",
                "command": ["npx", "-y", "@modelcontextprotocol/server-memory@2025.9.25"],
                "resources": {"limits": {"memory": "256Mi"}}
            }
        }
    }))
    .expect("valid McpServer")
}

/// One policy selecting every server (each reconcile merges it).
fn policy() -> McpPolicy {
    serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpPolicy",
        "metadata": {"name": "baseline", "namespace": NS},
        "spec": {
            "serverSelector": {"matchLabels": {"team": "bench"}},
            "tools": {"deny": ["delete_*"]},
            "audit": {"level": "Hashes"},
            "workload": {"maxReplicas": 4}
        }
    }))
    .expect("valid McpPolicy")
}

/// VmRSS and VmHWM (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn count<K>(client: &Client) -> usize
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .list_metadata(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

/// Servers Accepted=True, and the smallest count over the seven child kinds.
async fn progress(client: &Client) -> (usize, usize) {
    let servers: Api<McpServer> = Api::namespaced(client.clone(), NS);
    let accepted = servers
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        find_condition(&st.conditions, "Accepted")
                            .is_some_and(|c| c.status == "True")
                    })
                })
                .count()
        })
        .unwrap_or(0);
    let counts = [
        count::<Deployment>(client).await,
        count::<Service>(client).await,
        count::<Secret>(client).await,
        count::<ServiceAccount>(client).await,
        count::<Role>(client).await,
        count::<RoleBinding>(client).await,
        count::<NetworkPolicy>(client).await,
    ];
    (accepted, counts.into_iter().min().unwrap_or(0))
}

/// Counts per verb at the API server (zero-latency fault rules are request counters).
struct Counters {
    ids: Vec<(&'static str, FaultId)>,
}

impl Counters {
    fn snapshot(
        &self,
        server: &mcp_operator::apiserver::ApiServerHandle,
    ) -> Vec<(&'static str, usize)> {
        self.ids
            .iter()
            .map(|(verb, id)| (*verb, server.faults().fired(*id)))
            .collect()
    }
}

fn delta(
    after: &[(&'static str, usize)],
    before: &[(&'static str, usize)],
) -> Vec<(&'static str, usize)> {
    after
        .iter()
        .zip(before)
        .map(|((verb, a), (_, b))| (*verb, a - b))
        .collect()
}

/// `histogram_quantile` over the `_bucket` lines of one metric in a Prometheus text page.
fn quantile(page: &str, metric: &str, q: f64) -> Option<f64> {
    let prefix = format!("{metric}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = page
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, cumulative) in buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = cumulative - lower.1;
            let fraction = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, cumulative);
    }
    None
}

fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| {
            rest.rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<f64>().ok())
        })
        .sum()
}

async fn scrape(http: &reqwest::Client, admin: &str) -> String {
    match http.get(format!("http://{admin}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

struct OperatorProcess(Child);

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        // SIGTERM for a graceful stop, then make sure.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `mcp-operator run` against `api_server` (kubeconfig written into `dir`) and
/// waits for its /readyz: the process, its admin address and its log file.
async fn start_operator(
    args: &Args,
    api_server: &mcp_operator::apiserver::ApiServerHandle,
    dir: &std::path::Path,
    extra: &[&str],
) -> (OperatorProcess, String, PathBuf) {
    let kubeconfig = dir.join("kubeconfig");
    api_server
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig");
    let admin = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(&args.out_dir).expect("output dir");
    let log_path = args.out_dir.join("controller-operator.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-operator"));
    command.args(["run", "--admin-addr", &admin, "--log-format", "json"]);
    if let Some(c) = args.reconcile_concurrency {
        command.args(["--reconcile-concurrency", &c.to_string()]);
    }
    if let Some(c) = args.probe_concurrency {
        command.args(["--probe-concurrency", &c.to_string()]);
    }
    command.args(extra);
    let child = command
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "mcp-operator-system")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("operator starts");
    let operator = OperatorProcess(child);
    let http = reqwest::Client::new();
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "operator not ready within 30 s; see {}",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (operator, admin, log_path)
}

/// Touches every server (an annotation, no spec change) and waits until the operator
/// has reconciled at least that many times more: the API requests the operator made
/// meanwhile (the bench's own patches subtracted) and the reconciles they served.
async fn steady_state(
    client: &Client,
    api_server: &mcp_operator::apiserver::ApiServerHandle,
    counters: &Counters,
    http: &reqwest::Client,
    admin: &str,
    n: usize,
) -> (usize, f64) {
    let reconciles =
        |page: &str| metric_value(page, "mcp_operator_reconcile_duration_seconds_count");
    let start_reconciles = reconciles(&scrape(http, admin).await);
    let before = counters.snapshot(api_server);
    let servers: Api<McpServer> = Api::namespaced(client.clone(), NS);
    stream::iter(0..n)
        .map(|i| {
            let servers = servers.clone();
            async move {
                let patch = json!({"metadata": {"annotations": {"bench/touched": "1"}}});
                servers
                    .patch(
                        &format!("srv-{i:04}"),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("servers touched");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut done = start_reconciles;
    while Instant::now() < deadline {
        done = reconciles(&scrape(http, admin).await);
        if done - start_reconciles >= n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the last reconciles' requests land (and count any late ones).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = reconciles(&scrape(http, admin).await).max(done);
    let requests: usize = delta(&counters.snapshot(api_server), &before)
        .iter()
        .map(|(_, c)| c)
        .sum();
    (requests.saturating_sub(n), done - start_reconciles)
}

#[tokio::main]
async fn main() {
    let args = args();
    let n = args.servers;
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.unreachable > 0 {
        ready::run(&args).await;
        return;
    }
    let api_server = ApiServer::start(ApiServerOptions {
        history_limit: 50 * n + 10_000,
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
    let counters = Counters {
        ids: VERBS
            .iter()
            .map(|verb| {
                let rule = FaultRule::new(FaultKind::Latency(Duration::ZERO)).verbs([*verb]);
                (*verb, api_server.faults().set(rule))
            })
            .collect(),
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let (operator, admin, _log_path) = start_operator(&args, &api_server, dir.path(), &[]).await;
    let pid = operator.0.id();
    let http = reqwest::Client::new();
    let (rss_idle_empty, _) = memory_kib(pid);
    let before = counters.snapshot(&api_server);

    // Apply everything at once, as `kubectl apply -f dir/` with many objects would.
    let started = Instant::now();
    let pp = PatchParams::apply("bench").force();
    Api::<McpPolicy>::namespaced(client.clone(), NS)
        .patch("baseline", &pp, &Patch::Apply(policy()))
        .await
        .expect("policy applied");
    let servers: Api<McpServer> = Api::namespaced(client.clone(), NS);
    stream::iter(0..n)
        .map(|i| {
            let servers = servers.clone();
            let pp = pp.clone();
            async move {
                let s = server(i);
                let name = s.metadata.name.clone().unwrap_or_default();
                servers
                    .patch(&name, &pp, &Patch::Apply(s))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("servers applied");
    let applied = started.elapsed();
    // Requests of the bench's own client, to subtract: the policy and N applies.
    let own_patches = n + 1;

    let mut curve = vec![(0.0, 0usize, 0usize)];
    let mut peak_rss = 0;
    let converged = loop {
        let (accepted, children) = progress(&client).await;
        let t = started.elapsed();
        curve.push((t.as_secs_f64(), accepted, children));
        peak_rss = peak_rss.max(memory_kib(pid).0);
        if accepted >= n && children >= n {
            break Some(t);
        }
        if t > args.timeout {
            break None;
        }
        // Each poll lists 8 kinds of ~N objects from the same API server the operator
        // uses; once a second keeps that load small next to the operator's.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let after_converge = counters.snapshot(&api_server);
    // Let in-flight Events and status writes land, then watch an idle period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_start = counters.snapshot(&api_server);
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_end = counters.snapshot(&api_server);
    let (rss_settled, rss_peak) = memory_kib(pid);
    let page = scrape(&http, &admin).await;
    let (steady_requests, steady_reconciles) =
        steady_state(&client, &api_server, &counters, &http, &admin, n).await;
    drop(operator);

    // The bench's progress polling and applies are counted too: subtract them.
    let mut by_verb = delta(&after_converge, &before);
    let polls = curve.len() - 1;
    for (verb, count) in &mut by_verb {
        match *verb {
            "list" => *count = count.saturating_sub(polls * 8),
            "patch" => *count = count.saturating_sub(own_patches),
            _ => {}
        }
    }
    let total: usize = by_verb.iter().map(|(_, c)| c).sum();
    let idle = delta(&idle_end, &idle_start);
    let idle_writes: usize = idle
        .iter()
        .filter(|(v, _)| WRITE_VERBS.contains(v))
        .map(|(_, c)| c)
        .sum();
    let p50 = quantile(&page, "mcp_operator_reconcile_duration_seconds", 0.50);
    let p99 = quantile(&page, "mcp_operator_reconcile_duration_seconds", 0.99);
    let reconciles = metric_value(&page, "mcp_operator_reconcile_duration_seconds_count");
    let fmt_ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |s| format!("{:.1} ms", s * 1e3));

    let mut table = String::new();
    let _ = writeln!(
        table,
        "\ncontroller benchmark: {n} McpServers applied at once (+1 McpPolicy selecting all)"
    );
    let _ = writeln!(table, "{:<44} {:>16}", "measure", "value");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(table, "{k:<44} {v:>16}");
    };
    row(
        "applies sent (32 concurrent)",
        format!("{:.2} s", applied.as_secs_f64()),
    );
    row(
        "time to converge (Accepted + 7 children each)",
        converged.map_or(format!("> {} s", args.timeout.as_secs()), |t| {
            format!("{:.2} s", t.as_secs_f64())
        }),
    );
    row("API requests by the operator", total.to_string());
    row(
        "API requests per server",
        format!("{:.2}", total as f64 / n as f64),
    );
    for (verb, count) in &by_verb {
        row(
            &format!("  {verb} per server"),
            format!("{:.2}", *count as f64 / n as f64),
        );
    }
    row("reconciles", format!("{reconciles:.0}"));
    row(
        "reconciles per server",
        format!("{:.2}", reconciles / n as f64),
    );
    row("reconcile p50 (histogram)", fmt_ms(p50));
    row("reconcile p99 (histogram)", fmt_ms(p99));
    row(
        "operator RSS before applying",
        format!("{:.1} MiB", rss_idle_empty as f64 / 1024.0),
    );
    row(
        "operator RSS peak (VmHWM)",
        format!("{:.1} MiB", rss_peak.max(peak_rss) as f64 / 1024.0),
    );
    row(
        "operator RSS settled",
        format!("{:.1} MiB", rss_settled as f64 / 1024.0),
    );
    row(
        &format!("writes during {} s idle", args.idle_seconds),
        idle_writes.to_string(),
    );
    row(
        "steady-state reconciles (touch each server)",
        format!("{steady_reconciles:.0}"),
    );
    let steady_per_reconcile = steady_requests as f64 / steady_reconciles.max(1.0);
    row(
        "API requests per steady-state reconcile",
        format!("{steady_per_reconcile:.2}"),
    );
    print!("{table}");

    std::fs::create_dir_all(&args.out_dir).expect("output dir");
    let mut csv = String::from("measure,value\n");
    let _ = writeln!(csv, "servers,{n}");
    let _ = writeln!(
        csv,
        "converge_seconds,{}",
        converged.map_or(-1.0, |t| t.as_secs_f64())
    );
    let _ = writeln!(csv, "requests_per_server,{:.3}", total as f64 / n as f64);
    for (verb, count) in &by_verb {
        let _ = writeln!(csv, "{verb}_per_server,{:.3}", *count as f64 / n as f64);
    }
    let _ = writeln!(csv, "reconciles,{reconciles}");
    let _ = writeln!(csv, "reconcile_p50_ms,{:.2}", p50.unwrap_or(-1.0) * 1e3);
    let _ = writeln!(csv, "reconcile_p99_ms,{:.2}", p99.unwrap_or(-1.0) * 1e3);
    let _ = writeln!(
        csv,
        "rss_peak_mib,{:.1}",
        rss_peak.max(peak_rss) as f64 / 1024.0
    );
    let _ = writeln!(csv, "rss_settled_mib,{:.1}", rss_settled as f64 / 1024.0);
    let _ = writeln!(csv, "idle_writes,{idle_writes}");
    let _ = writeln!(
        csv,
        "steady_requests_per_reconcile,{steady_per_reconcile:.3}"
    );
    std::fs::write(args.out_dir.join("controller.csv"), csv).expect("csv written");
    std::fs::write(args.out_dir.join("controller.svg"), svg(n, &curve)).expect("svg written");
    println!("\nwrote {}/controller.{{csv,svg}}", args.out_dir.display());
    if converged.is_none() {
        eprintln!("did not converge; operator log: {}", _log_path.display());
        std::process::exit(1);
    }
}

/// The convergence curve: servers Accepted and complete child sets over time.
fn svg(n: usize, curve: &[(f64, usize, usize)]) -> String {
    let (w, h, pad) = (640.0, 360.0, 50.0);
    let t_max = curve.last().map_or(1.0, |c| c.0).max(1.0);
    let x = |t: f64| pad + (w - 2.0 * pad) * t / t_max;
    let y = |v: usize| h - pad - (h - 2.0 * pad) * v as f64 / n.max(1) as f64;
    let line = |pick: &dyn Fn(&(f64, usize, usize)) -> usize| {
        curve
            .iter()
            .map(|c| format!("{:.1},{:.1}", x(c.0), y(pick(c))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="20" font-size="14">mcp-operator: {n} McpServers applied at once</text>"#
    );
    let _ = write!(
        s,
        r#"<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>"#,
        b = h - pad,
        r = w - pad
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds ({t_max:.1} s)</text><text x="8" y="{}">{n}</text><text x="30" y="{}">0</text>"#,
        w / 2.0,
        h - 15.0,
        pad + 4.0,
        h - pad
    );
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/><polyline fill="none" stroke="#ff7f0e" stroke-width="2" stroke-dasharray="5,3" points="{}"/>"##,
        line(&|c| c.1),
        line(&|c| c.2)
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" fill="#1f77b4">Accepted</text><text x="{}" y="{}" fill="#ff7f0e">complete child sets</text></svg>"##,
        w - 220.0,
        pad + 20.0,
        w - 220.0,
        pad + 36.0
    );
    s.push('\n');
    s
}
