//! The McpServer prober: a task of its own, so a reconcile never waits on a server's
//! network. A reconcile says when it wants the next probe ([`ProbeWhen`]: now, after a
//! delay, never) and hands over where to probe ([`ProbeRequest`]); the prober keeps one
//! timer per server, runs due probes with bounded concurrency, stores each server's
//! latest [`ProbeReport`] until a reconcile has written it to status, and wakes that
//! server's reconcile (a stream given to the Controller, [`Prober::new`]).
//!
//! Concurrency: every attempt holds a permit of the shared limit (`--probe-concurrency`),
//! and a server whose last probe failed also holds one of the failing lane (half the
//! limit), so servers known to be dead can never take every slot from healthy ones.
//! Between attempts (`spec.probe.retryDelay`) no permit is held. A probe waiting for a
//! permit is queued: `mcp_operator_probe_queue_depth`.
//!
//! The schedule (when a reconcile asks for a probe) is [`super::probe_schedule`]: spec
//! changed, Deployment became Available, `spec.probe.interval` jittered, failure backoff.
//! A request for a probe while one is queued or running for the same generation is
//! merged into it; one for a newer generation, or after the Deployment became Available
//! again, runs once the current one finished.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::{SinkExt, Stream, channel::mpsc};
use kube::{
    ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::{
    sync::{Notify, Semaphore, watch},
    time::Instant,
};

use super::{
    probe_schedule::{next_interval, options},
    probe_target::{self, ProbeEnv},
};
use crate::{
    api::McpServer,
    controller::shared::jittered,
    prober::{ProbeOptions, ProbeReport, ProbeTarget},
};

/// How many wake-ups may wait for the Controller before a finished probe waits too.
const WAKE_BUFFER: usize = 1024;

/// Retry delay after a probe whose target could not be prepared (a Secret read failed).
const PREPARE_RETRY: Duration = Duration::from_secs(5);

/// How often entries of servers that are gone are dropped (no reconcile says so: a
/// deleted object is not reconciled).
const SWEEP: Duration = Duration::from_secs(60);

/// Why a probe is wanted now (logs, and whether a running probe must be repeated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeReason {
    /// The server has never been probed.
    FirstProbe,
    /// The spec changed since the last probe.
    SpecChanged,
    /// The Deployment became Available.
    BecameAvailable,
    /// `spec.probe.interval` (or the failure backoff) elapsed.
    IntervalElapsed,
}

impl ProbeReason {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstProbe => "first probe",
            Self::SpecChanged => "spec changed",
            Self::BecameAvailable => "Deployment became Available",
            Self::IntervalElapsed => "interval elapsed",
        }
    }
}

/// When a reconcile wants the next probe of its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeWhen {
    /// As soon as a permit is free.
    Now(ProbeReason),
    /// After this long.
    After(Duration),
    /// Not at all (disabled, refused, or waiting for the Deployment).
    Never,
}

/// Where and how to probe one server, as its latest reconcile decided.
#[derive(Clone)]
pub struct ProbeRequest {
    /// The server as the reconcile saw it (spec: transport, remote, probe settings).
    pub server: Arc<McpServer>,
    /// The gateway's URL (status.url, resolved), when probing through the gateway.
    pub url: Option<String>,
    /// Whether the server has a gateway (else a remote server is probed directly).
    pub gateway_enabled: bool,
}

/// A finished probe not yet written to status.
#[derive(Clone)]
pub struct Finished {
    /// The report.
    pub report: Arc<ProbeReport>,
    /// The generation of the server it probed.
    pub generation: Option<i64>,
}

/// One server's probe state.
#[derive(Default)]
struct Entry {
    uid: String,
    request: Option<ProbeRequest>,
    /// When the timer fires (None: no timer).
    due: Option<Instant>,
    /// Generation of the queued or running probe.
    running: Option<Option<i64>>,
    /// A newer request arrived while running: probe again once it finished.
    again: bool,
    /// The latest report, until a reconcile wrote it.
    finished: Option<Finished>,
    /// Consecutive failed probes (the failing lane).
    failures: u32,
}

/// A server by namespace and name.
type Key = (String, String);

fn key_of(server: &McpServer) -> Key {
    (server.namespace().unwrap_or_default(), server.name_any())
}

fn object_ref((ns, name): &Key) -> ObjectRef<McpServer> {
    ObjectRef::new(name).within(ns)
}

struct State {
    entries: HashMap<Key, Entry>,
    /// Timers, earliest first; stale ones (the entry's `due` moved) are skipped.
    timers: BinaryHeap<Reverse<(Instant, Key)>>,
}

struct Inner {
    env: ProbeEnv,
    /// The controller's cache of servers (which ones still exist).
    servers: Store<McpServer>,
    state: Mutex<State>,
    /// Wakes the timer task when a timer was set.
    timer_set: Arc<Notify>,
    /// Bounds concurrent attempts (`--probe-concurrency`), shared by every scope.
    limit: Arc<Semaphore>,
    /// Bounds concurrent attempts of servers whose last probe failed.
    failing: Arc<Semaphore>,
    wake: mpsc::Sender<ObjectRef<McpServer>>,
}

/// The two concurrency limits, shared by the probers of every watched scope.
#[derive(Clone)]
pub struct ProbeLimits {
    limit: Arc<Semaphore>,
    failing: Arc<Semaphore>,
}

impl ProbeLimits {
    /// `concurrency` attempts at once (at least 1), at most half of them (at least 1) of
    /// servers whose last probe failed.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            limit: Arc::new(Semaphore::new(concurrency)),
            failing: Arc::new(Semaphore::new((concurrency / 2).max(1))),
        }
    }
}

/// Handle to one prober task; cheap to clone.
#[derive(Clone)]
pub struct Prober(Arc<Inner>);

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Prober {
    /// A prober and the stream of servers whose reconcile it wakes (give it to
    /// `Controller::reconcile_on`). Its timer task runs until the handle and the stream
    /// are dropped, or `stop` turns true.
    pub fn new(
        env: ProbeEnv,
        servers: Store<McpServer>,
        limits: &ProbeLimits,
        stop: watch::Receiver<bool>,
    ) -> (
        Self,
        impl Stream<Item = ObjectRef<McpServer>> + Send + 'static,
    ) {
        let (wake, woken) = mpsc::channel(WAKE_BUFFER);
        let timer_set = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            env,
            servers,
            state: Mutex::new(State {
                entries: HashMap::new(),
                timers: BinaryHeap::new(),
            }),
            timer_set: timer_set.clone(),
            limit: limits.limit.clone(),
            failing: limits.failing.clone(),
            wake,
        });
        tokio::spawn(timers(Arc::downgrade(&inner), timer_set, stop));
        (Self(inner), woken)
    }

    /// The finished probe of `server` not yet written to its status, if any.
    pub fn finished(&self, server: &McpServer) -> Option<Finished> {
        let key = key_of(server);
        let state = lock(&self.0.state);
        let entry = state.entries.get(&key)?;
        (entry.uid == server.uid().unwrap_or_default())
            .then(|| entry.finished.clone())
            .flatten()
    }

    /// `finished` is in status now: forget it (unless a newer report replaced it).
    pub fn written(&self, server: &McpServer, finished: &Finished) {
        let key = key_of(server);
        let mut state = lock(&self.0.state);
        if let Some(entry) = state.entries.get_mut(&key)
            && entry
                .finished
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(&f.report, &finished.report))
        {
            entry.finished = None;
        }
    }

    /// Records what the latest reconcile of `request.server` wants.
    pub fn schedule(&self, request: ProbeRequest, when: ProbeWhen) {
        let server = request.server.clone();
        let key = key_of(&server);
        let uid = server.uid().unwrap_or_default();
        let generation = server.metadata.generation;
        let mut state = lock(&self.0.state);
        let entry = state.entries.entry(key.clone()).or_default();
        if entry.uid != uid {
            // A new server under an old name starts afresh.
            *entry = Entry {
                uid,
                ..Entry::default()
            };
        }
        entry.request = Some(request);
        let due = next_due(entry, generation, when, Instant::now());
        if let Some(reason) = due.and(match when {
            ProbeWhen::Now(reason) => Some(reason),
            _ => None,
        }) {
            tracing::debug!(server = %object_ref(&key), why = reason.as_str(), "probe due");
        }
        if let Some(due) = due {
            entry.due = Some(due);
            state.timers.push(Reverse((due, key)));
            drop(state);
            self.0.timer_set.notify_one();
        }
    }
}

/// The timer `entry` gets for `when` (None: keep what it has), asked by a reconcile of
/// the server's `generation` at `now`. A probe queued or running is never started twice:
/// a request for a newer generation (or after the Deployment became Available again)
/// while one runs makes it run once more afterwards, and the reconcile writing its report
/// sets the next timer, which later reconciles keep. A due timer is never postponed.
fn next_due(
    entry: &mut Entry,
    generation: Option<i64>,
    when: ProbeWhen,
    now: Instant,
) -> Option<Instant> {
    match when {
        ProbeWhen::Never => {
            entry.due = None;
            entry.again = false;
            None
        }
        // A probe is on its way, or a timer is set: the timer set after the last probe
        // (by the reconcile that wrote its report) stands.
        ProbeWhen::After(_) if entry.running.is_some() || entry.due.is_some() => None,
        ProbeWhen::After(delay) => Some(now + delay),
        ProbeWhen::Now(_) if entry.due.is_some_and(|d| d <= now) => None,
        ProbeWhen::Now(reason) => {
            let newer = |g: Option<i64>| g != generation || reason == ProbeReason::BecameAvailable;
            match (entry.running, &entry.finished) {
                (Some(g), _) => {
                    entry.again |= newer(g);
                    None
                }
                (None, Some(f)) if !newer(f.generation) => None,
                _ => Some(now),
            }
        }
    }
}

/// Fires due timers (each starts one probe) until `stop` turns true or the prober is
/// dropped.
async fn timers(inner: Weak<Inner>, notify: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut swept = Instant::now();
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            if swept.elapsed() >= SWEEP {
                sweep(&inner);
                swept = Instant::now();
            }
            fire_due(&inner)
        };
        let wake_by = next.map_or(swept + SWEEP, |n| n.min(swept + SWEEP));
        let idle = tokio::time::sleep_until(wake_by);
        tokio::select! {
            () = notify.notified() => {}
            () = idle => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Drops the entries of servers no longer in the cache (or replaced by a new server of
/// the same name) that have no probe running, so the state stays bounded by the servers.
fn sweep(inner: &Inner) {
    let mut state = lock(&inner.state);
    let servers = &inner.servers;
    state.entries.retain(|key, entry| {
        entry.running.is_some()
            || servers
                .get(&object_ref(key))
                .is_some_and(|s| s.uid().unwrap_or_default() == entry.uid)
    });
    let State { entries, timers } = &mut *state;
    timers.retain(|Reverse((at, key))| entries.get(key).is_some_and(|e| e.due == Some(*at)));
}

/// Starts the probes whose timer is due; returns when the next timer is.
fn fire_due(inner: &Arc<Inner>) -> Option<Instant> {
    let mut state = lock(&inner.state);
    let now = Instant::now();
    while let Some(Reverse((at, key))) = state.timers.peek().cloned() {
        if at > now {
            return Some(at);
        }
        state.timers.pop();
        if let Some(request) = take_due(&mut state, &key, at) {
            tokio::spawn(probe(inner.clone(), key, request));
        }
    }
    None
}

/// The request of `key` when its timer `at` is current and no probe is running; marks it
/// running.
fn take_due(state: &mut State, key: &Key, at: Instant) -> Option<ProbeRequest> {
    let entry = state.entries.get_mut(key)?;
    if entry.due != Some(at) || entry.running.is_some() {
        return None;
    }
    entry.due = None;
    let request = entry.request.clone()?;
    entry.running = Some(request.server.metadata.generation);
    entry.again = false;
    Some(request)
}

/// Runs one probe of `key` and stores its report; wakes the server's reconcile.
async fn probe(inner: Arc<Inner>, key: Key, request: ProbeRequest) {
    let failing = lock(&inner.state)
        .entries
        .get(&key)
        .is_some_and(|e| e.failures > 0)
        || request
            .server
            .status
            .as_ref()
            .and_then(|s| s.consecutive_failures)
            .is_some_and(|f| f > 0);
    let spec = request.server.spec.probe.clone().unwrap_or_default();
    let (report, retry) = match probe_target::target(&inner.env, &request).await {
        Ok(Some(target)) => (
            Some(attempts(&inner, target, &request, failing).await),
            None,
        ),
        // A Secret the probe needs went missing: no report; try again after the interval
        // (its appearance triggers a reconcile, which asks again sooner).
        Ok(None) => {
            let failures = request
                .server
                .status
                .as_ref()
                .and_then(|s| s.consecutive_failures)
                .unwrap_or(0);
            (None, Some(next_interval(&spec, failures)))
        }
        Err(error) => {
            tracing::warn!(server = %object_ref(&key), %error, "cannot prepare the probe");
            (None, Some(PREPARE_RETRY))
        }
    };
    let wake = report.is_some();
    let uid = request.server.uid().unwrap_or_default();
    if record(&inner, &key, &uid, report, retry) {
        inner.timer_set.notify_one();
    }
    // Only a report gives the reconcile something to write.
    if wake {
        let _ = inner.wake.clone().send(object_ref(&key)).await;
    }
}

/// Stores the outcome of the probe of `key`; sets its next timer when it must run again
/// (a newer request came meanwhile, or no report: after `retry`). Returns whether a
/// timer was set.
fn record(
    inner: &Inner,
    key: &Key,
    uid: &str,
    report: Option<ProbeReport>,
    retry: Option<Duration>,
) -> bool {
    let mut state = lock(&inner.state);
    // Gone, or a new server of the same name meanwhile: the report is not its.
    let Some(entry) = state.entries.get_mut(key).filter(|e| e.uid == uid) else {
        return false;
    };
    let generation = entry.running.take().flatten();
    let again = std::mem::take(&mut entry.again);
    let due = match report {
        Some(report) => {
            entry.failures = if report.inventory().is_some() {
                0
            } else {
                entry.failures.saturating_add(1)
            };
            entry.finished = Some(Finished {
                report: Arc::new(report),
                generation,
            });
            again.then(Instant::now)
        }
        None if again => Some(Instant::now()),
        None => retry.map(|d| Instant::now() + jittered(d)),
    };
    let Some(due) = due else {
        return false;
    };
    entry.due = Some(due);
    state.timers.push(Reverse((due, key.clone())));
    true
}

/// The attempts of one probe (1 + `spec.probe.retries` for transient failures), each
/// holding a permit; none is held during the retry delay.
async fn attempts(
    inner: &Inner,
    target: ProbeTarget,
    request: &ProbeRequest,
    failing: bool,
) -> ProbeReport {
    let spec = request.server.spec.probe.clone().unwrap_or_default();
    let opts = options(&spec);
    let once = ProbeOptions { retries: 0, ..opts };
    let mut made = 0;
    loop {
        made += 1;
        let report = {
            let metrics = &inner.env.metrics;
            metrics.probe_queued(1);
            let lane = if failing || made > 1 {
                inner.failing.clone().acquire_owned().await.ok()
            } else {
                None
            };
            let permit = inner.limit.clone().acquire_owned().await.ok();
            metrics.probe_queued(-1);
            metrics.probe_running(1);
            let report = crate::prober::probe(&target, &once).await;
            metrics.probe_running(-1);
            drop((permit, lane));
            report
        };
        let transient = report.error().is_some_and(|e| e.is_transient());
        if transient && made <= opts.retries {
            tokio::time::sleep(opts.retry_delay).await;
            continue;
        }
        let result = report.code().map_or("Succeeded", |c| c.as_str());
        inner
            .env
            .metrics
            .probed(result, Duration::from_millis(report.latency_ms));
        return ProbeReport {
            attempts: made,
            ..report
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::{ProbeError, ProbeErrorCode, ProbeOutcome};

    fn report() -> Arc<ProbeReport> {
        Arc::new(ProbeReport {
            target: "http://x/mcp".into(),
            attempts: 1,
            latency_ms: 1,
            outcome: ProbeOutcome::Failed {
                error: ProbeError::new(ProbeErrorCode::Timeout, "timed out"),
            },
        })
    }

    const NOW: ProbeWhen = ProbeWhen::Now(ProbeReason::FirstProbe);

    #[test]
    fn an_idle_server_is_probed_now_or_after_the_delay() {
        let t = Instant::now();
        let mut e = Entry::default();
        assert_eq!(next_due(&mut e, Some(1), NOW, t), Some(t));
        let delay = Duration::from_secs(60);
        assert_eq!(
            next_due(&mut e, Some(1), ProbeWhen::After(delay), t),
            Some(t + delay)
        );
    }

    #[test]
    fn a_running_probe_is_not_started_twice_and_reruns_only_for_a_newer_spec() {
        let t = Instant::now();
        let mut e = Entry {
            running: Some(Some(1)),
            ..Entry::default()
        };
        assert_eq!(next_due(&mut e, Some(1), NOW, t), None);
        assert!(!e.again, "same generation: the running probe answers it");
        assert_eq!(
            next_due(&mut e, Some(1), ProbeWhen::After(Duration::from_secs(5)), t),
            None
        );
        assert_eq!(
            next_due(&mut e, Some(2), ProbeWhen::Now(ProbeReason::SpecChanged), t),
            None
        );
        assert!(
            e.again,
            "a newer spec is probed once the running probe finished"
        );
        let mut e = Entry {
            running: Some(Some(1)),
            ..Entry::default()
        };
        next_due(
            &mut e,
            Some(1),
            ProbeWhen::Now(ProbeReason::BecameAvailable),
            t,
        );
        assert!(e.again, "the Deployment became Available while a probe ran");
    }

    #[test]
    fn an_unwritten_report_answers_requests_for_its_generation() {
        let t = Instant::now();
        let mut e = Entry {
            finished: Some(Finished {
                report: report(),
                generation: Some(1),
            }),
            ..Entry::default()
        };
        assert_eq!(next_due(&mut e, Some(1), NOW, t), None);
        assert_eq!(
            next_due(&mut e, Some(2), ProbeWhen::Now(ProbeReason::SpecChanged), t),
            Some(t)
        );
    }

    #[test]
    fn a_due_probe_is_never_postponed_and_never_cancels_everything() {
        let t = Instant::now();
        let mut e = Entry {
            due: Some(t),
            ..Entry::default()
        };
        let later = ProbeWhen::After(Duration::from_secs(300));
        let soon = t + Duration::from_millis(1);
        assert_eq!(next_due(&mut e, Some(1), later, soon), None);
        assert_eq!(next_due(&mut e, Some(1), NOW, soon), None, "already due");
        assert_eq!(next_due(&mut e, Some(1), ProbeWhen::Never, t), None);
        assert_eq!((e.due, e.again), (None, false));
        let mut e = Entry {
            due: Some(t + Duration::from_secs(60)),
            ..Entry::default()
        };
        assert_eq!(
            next_due(&mut e, Some(1), later, t),
            None,
            "the timer stands"
        );
        assert_eq!(
            next_due(&mut e, Some(1), NOW, t),
            Some(t),
            "but now is sooner"
        );
    }

    #[test]
    fn servers_known_to_fail_get_half_the_permits() {
        let limits = ProbeLimits::new(32);
        assert_eq!(
            (
                limits.limit.available_permits(),
                limits.failing.available_permits()
            ),
            (32, 16)
        );
        let limits = ProbeLimits::new(1);
        assert_eq!(
            (
                limits.limit.available_permits(),
                limits.failing.available_permits()
            ),
            (1, 1)
        );
    }
}
