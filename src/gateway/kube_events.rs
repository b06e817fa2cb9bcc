//! Kubernetes Events about the gateway's McpServer: policy refusals (reason
//! `RequestDenied`, with the rule), rate-limit trips (`RateLimited`) and 401s
//! (`Unauthorized`), aggregated so a busy or hostile caller cannot flood the API server.
//!
//! Per reason, a window (default 60 s): the first occurrence is reported at once and opens
//! the window; later ones are only counted (by rule, tool and binding) and summarised in
//! one Event when the window ends, which opens the next; a window without occurrences
//! closes, and the next occurrence is reported at once again. So each reason writes at
//! most two Events in its first window and one per window after that: at most six per
//! window per McpServer.
//!
//! The request path only does a `try_send` on a bounded queue ([`EventReporter::report`]);
//! when the queue is full the occurrence is dropped and counted
//! (`mcp_gateway_kube_events_total{result="dropped"}`). Events are written by a
//! background task (events.k8s.io/v1, reporting controller `mcp-operator-gateway`,
//! instance the pod name) whose failures are logged and counted, never seen by callers.
//! Notes are at most 1 KiB and hold only rule names, tool names, binding names and
//! counts — never a token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::ServerIdentity;
use super::live::ConfigHandle;
use super::metrics::Metrics;
use super::refusal::Rule;

/// The Events' reporting controller.
pub const REPORTING_CONTROLLER: &str = "mcp-operator-gateway";
/// Default aggregation window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Most bytes of a note (the API's limit).
pub const MAX_NOTE_BYTES: usize = 1024;
/// Occurrences queued for the aggregator.
const QUEUE: usize = 4096;
/// Events queued for writing.
const SEND_QUEUE: usize = 16;
/// Distinct names counted per window and dimension; more count as `other`.
const MAX_KEYS: usize = 32;
/// Names shown per dimension in a note.
const SHOWN_KEYS: usize = 8;
/// Longest tool or binding name in a note.
const MAX_NAME: usize = 64;
/// Longest wait for one Event write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an Event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A policy rule refused a request.
    RequestDenied,
    RateLimited,
    Unauthorized,
}

impl Reason {
    const ALL: [Reason; 3] = [
        Reason::RequestDenied,
        Reason::RateLimited,
        Reason::Unauthorized,
    ];

    /// The reason a refusal by `rule` is reported under, if any (timeouts, overload and
    /// size limits are not policy decisions about the caller: metrics only).
    pub fn of(rule: Rule) -> Option<Reason> {
        match rule {
            Rule::Denied | Rule::NotGranted | Rule::Unpinned | Rule::Changed | Rule::ReadOnly => {
                Some(Reason::RequestDenied)
            }
            Rule::RateLimited => Some(Reason::RateLimited),
            Rule::Unauthorized => Some(Reason::Unauthorized),
            Rule::TooLarge
            | Rule::Timeout
            | Rule::Overloaded
            | Rule::Malformed
            | Rule::InvalidMessage
            | Rule::SessionNotFound
            | Rule::SessionLimit
            | Rule::SessionsFull
            | Rule::HostNotAllowed
            | Rule::OriginNotAllowed
            | Rule::HeaderMismatch => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RequestDenied => "RequestDenied",
            Reason::RateLimited => "RateLimited",
            Reason::Unauthorized => "Unauthorized",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::RequestDenied => "Deny",
            Reason::RateLimited => "RateLimit",
            Reason::Unauthorized => "Authenticate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One refusal, as reported by the request path.
#[derive(Debug)]
struct Occurrence {
    reason: Reason,
    rule: Rule,
    binding: String,
    tool: Option<String>,
}

/// The request path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventReporter {
    tx: mpsc::Sender<Occurrence>,
    metrics: Arc<Metrics>,
}

impl EventReporter {
    /// Reports a refusal by `rule` of a request from `binding` (principal name), about
    /// `tool` when it was a `tools/call`. Rules without an Event reason are ignored.
    pub fn report(&self, rule: Rule, binding: &str, tool: Option<&str>) {
        let Some(reason) = Reason::of(rule) else {
            return;
        };
        let occurrence = Occurrence {
            reason,
            rule,
            binding: short(binding),
            tool: tool.map(short),
        };
        if self.tx.try_send(occurrence).is_err() {
            self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the aggregator and the writer; Events name the server of the current config.
pub fn start(
    client: kube::Client,
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    window: Duration,
    instance: String,
) -> EventReporter {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (send_tx, send_rx) = mpsc::channel(SEND_QUEUE);
    tokio::spawn(aggregate(rx, send_tx, window, metrics.clone()));
    tokio::spawn(write(send_rx, client, config, metrics.clone(), instance));
    EventReporter { tx, metrics }
}

/// An Event to write.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    reason: Reason,
    note: String,
}

/// Counts by name, bounded.
#[derive(Default)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, name: &str) {
        if let Some(n) = self.0.get_mut(name) {
            *n += 1;
        } else if self.0.len() < MAX_KEYS {
            self.0.insert(name.to_owned(), 1);
        } else {
            *self.0.entry("other".to_owned()).or_default() += 1;
        }
    }

    /// `a 3, b 1` — most frequent first, at most [`SHOWN_KEYS`], then `N others`.
    fn render(&self) -> String {
        let mut rows: Vec<(&String, &u64)> = self.0.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut parts: Vec<String> = rows
            .iter()
            .take(SHOWN_KEYS)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let rest: u64 = rows.iter().skip(SHOWN_KEYS).map(|(_, n)| **n).sum();
        if rest > 0 {
            parts.push(format!("others {rest}"));
        }
        parts.join(", ")
    }
}

/// One reason's window.
struct Window {
    ends: Instant,
    count: u64,
    rules: Tally,
    tools: Tally,
    bindings: Tally,
}

impl Window {
    fn new(ends: Instant) -> Self {
        Window {
            ends,
            count: 0,
            rules: Tally::default(),
            tools: Tally::default(),
            bindings: Tally::default(),
        }
    }

    fn add(&mut self, o: &Occurrence) {
        self.count += 1;
        self.rules.add(o.rule.as_str());
        if let Some(t) = &o.tool {
            self.tools.add(t);
        }
        self.bindings.add(&o.binding);
    }
}

/// The aggregation state machine, separate from the tasks for tests.
struct Aggregator {
    window: Duration,
    windows: [Option<Window>; 3],
}

impl Aggregator {
    fn new(window: Duration) -> Self {
        Aggregator {
            window,
            windows: [None, None, None],
        }
    }

    /// An occurrence at `now`: the Event to write at once, if it opens a window.
    fn on_occurrence(&mut self, o: &Occurrence, now: Instant) -> Option<Pending> {
        let slot = &mut self.windows[o.reason.index()];
        match slot {
            Some(w) => {
                w.add(o);
                None
            }
            None => {
                *slot = Some(Window::new(now + self.window));
                Some(Pending {
                    reason: o.reason,
                    note: truncate(first_note(o, self.window)),
                })
            }
        }
    }

    /// When the next window ends.
    fn next_deadline(&self) -> Option<Instant> {
        self.windows.iter().flatten().map(|w| w.ends).min()
    }

    /// Ends the windows due at `now`: summaries of those with occurrences (which start
    /// the next window), the others close.
    fn on_tick(&mut self, now: Instant) -> Vec<Pending> {
        let mut out = Vec::new();
        for reason in Reason::ALL {
            let slot = &mut self.windows[reason.index()];
            let Some(w) = slot.as_ref().filter(|w| w.ends <= now) else {
                continue;
            };
            if w.count == 0 {
                *slot = None;
                continue;
            }
            out.push(Pending {
                reason,
                note: truncate(summary_note(reason, w, self.window)),
            });
            *slot = Some(Window::new(now + self.window));
        }
        out
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn first_note(o: &Occurrence, window: Duration) -> String {
    let what = match (o.reason, &o.tool) {
        (Reason::RequestDenied, Some(tool)) => format!(
            "Refused tools/call {tool:?} for binding {:?}: rule {}.",
            o.binding,
            o.rule.as_str()
        ),
        (Reason::RequestDenied, None) => format!(
            "Refused a request for binding {:?}: rule {}.",
            o.binding,
            o.rule.as_str()
        ),
        (Reason::RateLimited, _) => format!(
            "Binding {:?} exceeded the rate limit (HTTP 429).",
            o.binding
        ),
        (Reason::Unauthorized, _) => {
            "Refused a request without a valid token (HTTP 401).".to_owned()
        }
    };
    format!(
        "{what} Further occurrences within {} are summarised in one Event.",
        secs(window)
    )
}

fn summary_note(reason: Reason, w: &Window, window: Duration) -> String {
    let n = w.count;
    let mut note = match reason {
        Reason::RequestDenied => format!(
            "{n} more requests refused by policy in the last {}; by rule: {}",
            secs(window),
            w.rules.render()
        ),
        Reason::RateLimited => format!(
            "{n} more requests over the rate limit in the last {}",
            secs(window)
        ),
        Reason::Unauthorized => format!(
            "{n} more requests refused with HTTP 401 in the last {}",
            secs(window)
        ),
    };
    if reason == Reason::RequestDenied && !w.tools.0.is_empty() {
        note.push_str(&format!("; by tool: {}", w.tools.render()));
    }
    if reason != Reason::Unauthorized {
        note.push_str(&format!("; by binding: {}", w.bindings.render()));
    }
    note.push('.');
    note
}

/// A name as shown in a note: at most [`MAX_NAME`] characters, no control characters.
fn short(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_NAME)
        .collect();
    if name.chars().count() > MAX_NAME {
        out.push('…');
    }
    out
}

/// `note` cut to [`MAX_NOTE_BYTES`] on a character boundary.
fn truncate(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

async fn aggregate(
    mut rx: mpsc::Receiver<Occurrence>,
    out: mpsc::Sender<Pending>,
    window: Duration,
    metrics: Arc<Metrics>,
) {
    let mut agg = Aggregator::new(window);
    let emit = |p: Pending| {
        if out.try_send(p).is_err() {
            metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let deadline = agg.next_deadline();
        tokio::select! {
            o = rx.recv() => match o {
                Some(o) => if let Some(p) = agg.on_occurrence(&o, Instant::now()) { emit(p) },
                None => return,
            },
            () = sleep_until(deadline) => {
                for p in agg.on_tick(Instant::now()) {
                    emit(p);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn write(
    mut rx: mpsc::Receiver<Pending>,
    client: kube::Client,
    config: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    instance: String,
) {
    let mut failing = false;
    while let Some(p) = rx.recv().await {
        let Some(cfg) = config.current() else {
            metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let server = &cfg.file.server;
        let api: Api<Event> = Api::namespaced(client.clone(), &server.namespace);
        let event = build_event(server, &instance, p.reason, p.note, SystemTime::now());
        let result =
            tokio::time::timeout(WRITE_TIMEOUT, api.create(&PostParams::default(), &event)).await;
        match result {
            Ok(Ok(_)) => {
                metrics.events_sent.fetch_add(1, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!("recording Events works again");
                }
            }
            Ok(Err(e)) => {
                metrics.events_failed.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, reason = p.reason.as_str(), "cannot record Event (further failures are only counted until it works again)");
                }
            }
            Err(_) => {
                metrics.events_failed.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    failing = true;
                    tracing::warn!(reason = p.reason.as_str(), "recording an Event timed out");
                }
            }
        }
    }
}

/// The events.k8s.io/v1 Event about `server`.
fn build_event(
    server: &ServerIdentity,
    instance: &str,
    reason: Reason,
    note: String,
    now: SystemTime,
) -> Event {
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let time = k8s_openapi::jiff::Timestamp::try_from(now)
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now());
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{nanos:x}", server.name)),
            namespace: Some(server.namespace.clone()),
            ..ObjectMeta::default()
        },
        action: Some(reason.action().to_owned()),
        reason: Some(reason.as_str().to_owned()),
        note: Some(note),
        type_: Some("Warning".to_owned()),
        event_time: Some(MicroTime(time)),
        regarding: Some(ObjectReference {
            api_version: Some("mcp-operator.dev/v1alpha1".to_owned()),
            kind: Some("McpServer".to_owned()),
            name: Some(server.name.clone()),
            namespace: Some(server.namespace.clone()),
            uid: Some(server.uid.clone()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        }),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.chars().take(128).collect()),
        ..Event::default()
    }
}

/// The reporting instance: `POD_NAME`, else `HOSTNAME` (a pod's name), else the
/// controller name.
pub fn instance_name(pod_name: Option<&str>) -> String {
    pod_name
        .map(str::to_owned)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| REPORTING_CONTROLLER.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(rule: Rule, binding: &str, tool: Option<&str>) -> Occurrence {
        Occurrence {
            reason: Reason::of(rule).unwrap(),
            rule,
            binding: binding.into(),
            tool: tool.map(Into::into),
        }
    }

    #[test]
    fn first_is_prompt_then_one_summary_per_window() {
        let w = Duration::from_secs(60);
        let mut agg = Aggregator::new(w);
        let t0 = Instant::now();
        let first = agg
            .on_occurrence(&occ(Rule::Denied, "agent", Some("delete_note")), t0)
            .expect("the first occurrence is reported at once");
        assert_eq!(first.reason, Reason::RequestDenied);
        assert!(
            first.note.contains("\"delete_note\"") && first.note.contains("rule Denied"),
            "{}",
            first.note
        );
        for i in 0..1000 {
            let rule = if i % 4 == 0 {
                Rule::NotGranted
            } else {
                Rule::Denied
            };
            let tool = format!("tool_{}", i % 50);
            assert!(
                agg.on_occurrence(&occ(rule, "agent", Some(&tool)), t0)
                    .is_none()
            );
        }
        // Another reason opens its own window.
        assert!(
            agg.on_occurrence(&occ(Rule::RateLimited, "agent", None), t0)
                .is_some()
        );
        assert!(agg.on_tick(t0 + Duration::from_secs(59)).is_empty());
        let ticks = agg.on_tick(t0 + w);
        assert_eq!(ticks.len(), 1, "the rate-limit window had nothing more");
        let s = &ticks[0].note;
        assert!(s.starts_with("1000 more requests refused by policy in the last 60s; by rule: Denied 750, NotGranted 250; by tool: "), "{s}");
        assert!(s.contains("others"), "{s}");
        assert!(s.len() <= MAX_NOTE_BYTES);
        // The next window has nothing: it closes, and the next occurrence is prompt again.
        assert!(agg.on_tick(t0 + 2 * w).is_empty());
        assert_eq!(agg.next_deadline(), None);
        assert!(
            agg.on_occurrence(&occ(Rule::Unauthorized, "unknown", None), t0 + 2 * w)
                .is_some()
        );
    }

    #[test]
    fn only_caller_decisions_are_reported_and_names_are_bounded() {
        assert_eq!(Reason::of(Rule::Timeout), None);
        assert_eq!(Reason::of(Rule::Overloaded), None);
        assert_eq!(Reason::of(Rule::Changed), Some(Reason::RequestDenied));
        let long = "x".repeat(5000);
        assert!(short(&long).chars().count() <= MAX_NAME + 1);
        assert_eq!(short("a\nb"), "a?b");
        assert!(truncate("é".repeat(2000)).len() <= MAX_NOTE_BYTES);
    }

    #[test]
    fn events_name_the_server() {
        let server = ServerIdentity {
            name: "memory".into(),
            namespace: "agents".into(),
            uid: "1234".into(),
        };
        let e = build_event(
            &server,
            "memory-7d9f-abc",
            Reason::RateLimited,
            "n".into(),
            SystemTime::now(),
        );
        let r = e.regarding.unwrap();
        assert_eq!(r.kind.as_deref(), Some("McpServer"));
        assert_eq!(r.api_version.as_deref(), Some("mcp-operator.dev/v1alpha1"));
        assert_eq!(r.uid.as_deref(), Some("1234"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("agents"));
        assert!(e.metadata.name.unwrap().starts_with("memory."));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("mcp-operator-gateway")
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
    }
}
