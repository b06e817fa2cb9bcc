//! Controller metrics (hand-rolled Prometheus text, prefix `mcp_operator_`) and the admin
//! HTTP endpoint serving them with `/livez` and `/readyz` (ready once every watch synced).
//! Health routes are not traced.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use super::error::Error;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket histogram.
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every metric of the controller. Shared (`Arc`) by reconciles, probes and the endpoint.
#[derive(Default)]
pub struct Metrics {
    reconcile_duration: Histogram,
    reconcile_errors: Mutex<BTreeMap<String, u64>>,
    reconcile_failed_steps: Mutex<BTreeMap<String, u64>>,
    probes: Mutex<BTreeMap<String, u64>>,
    probe_latency: Histogram,
    phases: Mutex<BTreeMap<String, String>>,
    in_flight: AtomicI64,
    probes_queued: AtomicI64,
    probes_in_flight: AtomicI64,
    writes: AtomicU64,
    ready: AtomicBool,
    leader: AtomicBool,
}

impl Metrics {
    /// One reconcile finished after `d`.
    pub fn reconciled(&self, d: Duration) {
        self.reconcile_duration.observe(d);
    }

    /// One reconcile failed in `step` (the top-level error's variant: `Dereference`,
    /// `Plan`, `Apply`, `Status`) for `reason` (what the API answered: `Forbidden`, …).
    pub fn reconcile_failed(&self, step: &str, reason: &str) {
        bump(&self.reconcile_errors, reason);
        bump(&self.reconcile_failed_steps, step);
    }

    /// One probe finished: `result` is `Succeeded` or the error code.
    pub fn probed(&self, result: &str, latency: Duration) {
        bump(&self.probes, result);
        self.probe_latency.observe(latency);
    }

    /// A probe attempt started (+1) or stopped (-1) waiting for a permit.
    pub fn probe_queued(&self, delta: i64) {
        self.probes_queued.fetch_add(delta, Ordering::Relaxed);
    }

    /// A probe attempt got its permit (+1) or finished (-1).
    pub fn probe_running(&self, delta: i64) {
        self.probes_in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The phase of server `key` (`namespace/name`); None when it is gone.
    pub fn set_phase(&self, key: &str, phase: Option<&str>) {
        let mut phases = lock(&self.phases);
        match phase {
            Some(p) => {
                phases.insert(key.to_owned(), p.to_owned());
            }
            None => {
                phases.remove(key);
            }
        }
    }

    /// A reconcile started (+1) or ended (-1): the work currently queued in the runtime.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// One write (apply, status, delete) was sent to the API server.
    pub fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes sent so far (tests use it to check a settled cluster sees none).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Marks every watch as synced (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether every watch has synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether this replica currently holds the Lease (or runs without election).
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.reconcile_duration.render(
            &mut out,
            "mcp_operator_reconcile_duration_seconds",
            "Duration of McpServer reconciles.",
        );
        render_counter(
            &mut out,
            "mcp_operator_reconcile_errors_total",
            "Failed reconciles by reason.",
            "reason",
            &lock(&self.reconcile_errors),
        );
        render_counter(
            &mut out,
            "mcp_operator_reconcile_failed_steps_total",
            "Failed reconciles by the step that failed (dereference, plan, apply, status).",
            "step",
            &lock(&self.reconcile_failed_steps),
        );
        render_counter(
            &mut out,
            "mcp_operator_probes_total",
            "Probes by result (Succeeded or the error code).",
            "result",
            &lock(&self.probes),
        );
        self.probe_latency.render(
            &mut out,
            "mcp_operator_probe_duration_seconds",
            "Duration of probes.",
        );
        let mut by_phase: BTreeMap<String, u64> = BTreeMap::new();
        for phase in lock(&self.phases).values() {
            *by_phase.entry(phase.clone()).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "# HELP mcp_operator_servers McpServers by phase.\n# TYPE mcp_operator_servers gauge"
        );
        for (phase, n) in by_phase {
            let _ = writeln!(out, "mcp_operator_servers{{phase=\"{phase}\"}} {n}");
        }
        let gauges = [
            (
                "mcp_operator_reconciles_in_flight",
                "Reconciles running now (queue depth of the runtime).",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "mcp_operator_probe_queue_depth",
                "Probe attempts waiting for a permit (--probe-concurrency).",
                self.probes_queued.load(Ordering::Relaxed),
            ),
            (
                "mcp_operator_probes_in_flight",
                "Probe attempts running now.",
                self.probes_in_flight.load(Ordering::Relaxed),
            ),
            (
                "mcp_operator_leader",
                "1 when this replica holds the Lease.",
                i64::from(self.leader.load(Ordering::Relaxed)),
            ),
            (
                "mcp_operator_ready",
                "1 when every watch has synced.",
                i64::from(self.is_ready()),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcp_operator_writes_total Writes sent to the API server.\n# TYPE mcp_operator_writes_total counter\nmcp_operator_writes_total {}",
            self.writes()
        );
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, label: &str) {
    *lock(map).entry(label.to_owned()).or_default() += 1;
}

fn render_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// Serves `/metrics`, `/livez` and `/readyz` on `addr` until the task is dropped. Returns
/// the bound address (port 0 picks a free one).
pub async fn serve_admin(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Admin {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Admin {
        addr: addr.to_string(),
        source,
    })?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "admin endpoint stopped");
        }
    });
    Ok((bound, task))
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], m.render())
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watches not synced")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(20));
        m.probed("Succeeded", Duration::from_millis(5));
        m.probed("Timeout", Duration::from_secs(10));
        m.set_phase("a/b", Some("Ready"));
        m.probe_queued(2);
        m.probe_running(1);
        m.reconcile_failed("Apply", "Forbidden");
        let text = m.render();
        assert!(text.contains("mcp_operator_reconcile_errors_total{reason=\"Forbidden\"} 1"));
        assert!(text.contains("mcp_operator_reconcile_failed_steps_total{step=\"Apply\"} 1"));
        assert!(text.contains("\nmcp_operator_probe_queue_depth 2\n"));
        assert!(text.contains("\nmcp_operator_probes_in_flight 1\n"));
        assert!(text.contains("mcp_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("mcp_operator_probes_total{result=\"Timeout\"} 1"));
        assert!(text.contains("mcp_operator_servers{phase=\"Ready\"} 1"));
    }
}
