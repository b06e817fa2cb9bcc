//! Fault injection for tests: rules that make matching requests fail (500, 429 with
//! `Retry-After`, 409), wait (added latency), or break watches (connection dropped
//! mid-stream, 410 Gone ERROR event). Rules are set in [`ApiServerOptions::faults`] or at
//! run time through [`ApiServerHandle::faults`], and applied by a middleware around the
//! router. Schedules are deterministic (the next N matches, every Nth, or a seeded
//! probability), so tests built on them do not flake.
//!
//! [`ApiServerOptions::faults`]: super::ApiServerOptions::faults
//! [`ApiServerHandle::faults`]: super::ApiServerHandle::faults

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Request, State as AxumState},
    middleware::Next,
    response::{IntoResponse, Response},
};
// (`Body::from_stream` needs the error type to be a std error: io::Error is used.)
use futures::StreamExt;
use serde_json::json;

use super::{error::ApiServerError, request::RequestInfo};

/// What happens to a request a rule fires on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// 500 InternalError instead of the answer.
    Error500,
    /// 429 TooManyRequests with a `Retry-After` of this many whole seconds.
    TooManyRequests {
        /// The delay the client is asked to wait.
        retry_after: Duration,
    },
    /// 409 Conflict, as an optimistic-concurrency failure (meant for writes).
    Conflict,
    /// The request is served after this delay (several latency rules add up).
    Latency(Duration),
    /// A watch is served, then its connection is cut (no clean end of the response)
    /// this long after it started.
    DropWatch {
        /// How long the watch runs before the cut.
        after: Duration,
    },
    /// A watch is answered with one ERROR event carrying a 410 Expired Status, as when
    /// its resourceVersion was compacted: the client must relist.
    WatchGone,
}

/// When a matching rule fires.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Every matching request.
    Always,
    /// The next `n` matching requests, then never again.
    Times(usize),
    /// Every `n`th matching request (the nth, 2nth, ...).
    EveryNth(usize),
    /// Each matching request with this probability, drawn from a generator seeded with
    /// `seed`: the same sequence of matches gives the same sequence of faults.
    Probability {
        /// 0.0 ..= 1.0.
        probability: f64,
        /// Seed of the generator.
        seed: u64,
    },
}

/// A fault rule: which requests it matches, what it does, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// Verbs it matches (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); empty matches every verb.
    pub verbs: Vec<String>,
    /// Resource it matches (`configmaps`, or `mcpservers/status` for the subresource
    /// only); None matches every resource. Non-resource paths never match.
    pub resource: Option<String>,
    /// What it does.
    pub kind: FaultKind,
    /// When it fires.
    pub schedule: Schedule,
}

impl FaultRule {
    /// A rule firing `kind` on every resource request.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            verbs: Vec::new(),
            resource: None,
            kind,
            schedule: Schedule::Always,
        }
    }

    /// Only requests with one of these verbs.
    #[must_use]
    pub fn verbs<'a>(mut self, verbs: impl IntoIterator<Item = &'a str>) -> Self {
        self.verbs = verbs.into_iter().map(str::to_owned).collect();
        self
    }

    /// Only requests for this resource (`configmaps`, `mcpservers/status`).
    #[must_use]
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    /// Only the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.schedule = Schedule::Times(n);
        self
    }

    /// Only every `n`th matching request.
    #[must_use]
    pub fn every_nth(mut self, n: usize) -> Self {
        self.schedule = Schedule::EveryNth(n.max(1));
        self
    }

    /// Matching requests with `probability`, reproducibly from `seed`.
    #[must_use]
    pub fn probability(mut self, probability: f64, seed: u64) -> Self {
        self.schedule = Schedule::Probability { probability, seed };
        self
    }

    fn matches(&self, info: &RequestInfo) -> bool {
        info.is_resource
            && (self.verbs.is_empty() || self.verbs.contains(&info.verb))
            && self.resource.as_deref().is_none_or(|r| {
                if r.contains('/') {
                    r == info.resource_with_subresource()
                } else {
                    r == info.resource
                }
            })
            && match self.kind {
                // Watch faults only make sense on watches.
                FaultKind::DropWatch { .. } | FaultKind::WatchGone => info.verb == "watch",
                _ => true,
            }
    }
}

/// Identifies a rule set on a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

struct ActiveRule {
    id: FaultId,
    rule: FaultRule,
    matched: usize,
    fired: usize,
    rng: u64,
}

impl ActiveRule {
    /// Counts a match and says whether the rule fires on it.
    fn fires(&mut self) -> bool {
        self.matched += 1;
        let fire = match &self.rule.schedule {
            Schedule::Always => true,
            Schedule::Times(n) => self.fired < *n,
            Schedule::EveryNth(n) => self.matched.is_multiple_of(*n),
            Schedule::Probability { probability, .. } => {
                // splitmix64: tiny, seedable, good enough to spread faults.
                self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.rng;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                #[allow(clippy::cast_precision_loss)]
                let draw = (z >> 11) as f64 / (1u64 << 53) as f64;
                draw < *probability
            }
        };
        if fire {
            self.fired += 1;
        }
        fire
    }
}

/// The fault rules of one server, changeable while it runs.
pub struct Faults {
    rules: Mutex<(u64, Vec<ActiveRule>)>,
    /// Signals open watches that rules were set, so watch faults reach them too.
    changed: tokio::sync::watch::Sender<()>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::default(),
            changed: tokio::sync::watch::channel(()).0,
        }
    }
}

impl Faults {
    /// Rules in force from the start.
    pub fn new(rules: impl IntoIterator<Item = FaultRule>) -> Self {
        let faults = Self::default();
        for rule in rules {
            faults.set(rule);
        }
        faults
    }

    fn lock(&self) -> MutexGuard<'_, (u64, Vec<ActiveRule>)> {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a rule; it applies to requests that arrive from now on.
    pub fn set(&self, rule: FaultRule) -> FaultId {
        let mut rules = self.lock();
        rules.0 += 1;
        let id = FaultId(rules.0);
        let rng = match rule.schedule {
            Schedule::Probability { seed, .. } => seed,
            _ => 0,
        };
        rules.1.push(ActiveRule {
            id,
            rule,
            matched: 0,
            fired: 0,
            rng,
        });
        drop(rules);
        self.changed.send_replace(());
        id
    }

    /// Removes one rule.
    pub fn remove(&self, id: FaultId) {
        self.lock().1.retain(|r| r.id != id);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().1.clear();
    }

    /// How many requests the rule has fired on so far (0 for an unknown rule).
    pub fn fired(&self, id: FaultId) -> usize {
        self.lock()
            .1
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.fired)
    }

    /// The watch fault (if any) for a watch that is already open when rules change.
    fn decide_open_watch(&self, info: &RequestInfo) -> Option<FaultKind> {
        self.lock()
            .1
            .iter_mut()
            .filter(|r| {
                matches!(
                    r.rule.kind,
                    FaultKind::DropWatch { .. } | FaultKind::WatchGone
                )
            })
            .filter(|r| r.rule.matches(info))
            .find_map(|r| r.fires().then(|| r.rule.kind.clone()))
    }

    /// What to do with a request: the total added latency and the first non-latency
    /// fault among the rules that fire on it.
    fn decide(&self, info: &RequestInfo) -> (Duration, Option<FaultKind>) {
        let mut latency = Duration::ZERO;
        let mut fault = None;
        for active in self.lock().1.iter_mut() {
            if !active.rule.matches(info) {
                continue;
            }
            // A rule that would be shadowed by an earlier fault does not consume a firing.
            if fault.is_some() && !matches!(active.rule.kind, FaultKind::Latency(_)) {
                continue;
            }
            if !active.fires() {
                continue;
            }
            match &active.rule.kind {
                FaultKind::Latency(d) => latency += *d,
                other => fault = Some(other.clone()),
            }
        }
        (latency, fault)
    }
}

/// The middleware: applies the rules that fire on the request, and keeps watching the
/// rules for the lifetime of a watch response.
pub async fn layer(
    AxumState(faults): AxumState<Arc<Faults>>,
    request: Request,
    next: Next,
) -> Response {
    let info = RequestInfo::of(request.method(), request.uri());
    let (latency, fault) = faults.decide(&info);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = &fault {
        tracing::debug!(verb = %info.verb, resource = %info.resource, ?fault, "injecting fault");
    }
    let cut_after = match fault {
        None | Some(FaultKind::Latency(_)) => None,
        Some(FaultKind::Error500) => {
            return ApiServerError::internal("injected fault").into_response();
        }
        Some(FaultKind::TooManyRequests { retry_after }) => {
            return ApiServerError::too_many_requests(retry_after.as_secs()).into_response();
        }
        Some(FaultKind::Conflict) => return conflict(&info).into_response(),
        Some(FaultKind::WatchGone) => return Response::new(Body::from(gone_line())),
        Some(FaultKind::DropWatch { after }) => Some(after),
    };
    let response = next.run(request).await;
    if info.verb == "watch" && response.status().is_success() {
        guard_watch(response, faults, info, cut_after)
    } else {
        response
    }
}

/// A watch response whose body also obeys watch fault rules set while it is open.
fn guard_watch(
    response: Response,
    faults: Arc<Faults>,
    info: RequestInfo,
    cut_after: Option<Duration>,
) -> Response {
    let (parts, body) = response.into_parts();
    let guard = WatchGuard {
        body: body.into_data_stream().boxed(),
        rules: faults.changed.subscribe(),
        faults,
        info,
        cut: cut_after.map(|after| Box::pin(tokio::time::sleep(after))),
        ended: false,
    };
    let stream = futures::stream::unfold(guard, |mut guard| async move {
        guard.next().await.map(|item| (item, guard))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

struct WatchGuard {
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, axum::Error>>,
    rules: tokio::sync::watch::Receiver<()>,
    faults: Arc<Faults>,
    info: RequestInfo,
    cut: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
}

impl WatchGuard {
    async fn next(&mut self) -> Option<Result<bytes::Bytes, std::io::Error>> {
        if self.ended {
            return None;
        }
        loop {
            let Self {
                body, rules, cut, ..
            } = self;
            let cut_due = async {
                match cut {
                    Some(sleep) => sleep.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                chunk = body.next() => {
                    return chunk.map(|c| c.map_err(std::io::Error::other));
                }
                () = cut_due => {
                    // Ending the body with an error closes the connection without the
                    // final chunk, as a broken connection looks to the client.
                    self.ended = true;
                    return Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "injected fault: watch connection dropped",
                    )));
                }
                changed = rules.changed() => {
                    if changed.is_err() {
                        // The server is gone; its watches end with it.
                        return None;
                    }
                    match self.faults.decide_open_watch(&self.info) {
                        Some(FaultKind::WatchGone) => {
                            self.ended = true;
                            return Some(Ok(gone_line()));
                        }
                        Some(FaultKind::DropWatch { after }) if self.cut.is_none() => {
                            self.cut = Some(Box::pin(tokio::time::sleep(after)));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

fn conflict(info: &RequestInfo) -> ApiServerError {
    let name = if info.name.is_empty() {
        String::new()
    } else {
        format!(" {:?}", info.name)
    };
    let qualified = if info.group.is_empty() {
        info.resource.clone()
    } else {
        format!("{}.{}", info.resource, info.group)
    };
    ApiServerError::Status(Box::new(super::ApiStatus {
        code: 409,
        reason: "Conflict",
        message: format!(
            "Operation cannot be fulfilled on {qualified}{name}: the object has been modified; please apply your changes to the latest version and try again (injected fault)"
        ),
        details: Some(json!({"name": info.name, "group": info.group, "kind": info.resource})),
    }))
}

/// The ERROR event a watch gets when its resourceVersion is too old.
fn gone_line() -> bytes::Bytes {
    let status = ApiServerError::gone("too old resource version: injected fault").to_status();
    let mut line = json!({"type": "ERROR", "object": status}).to_string();
    line.push('\n');
    bytes::Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn info(method: Method, uri: &str) -> RequestInfo {
        RequestInfo::of(&method, &uri.parse().unwrap())
    }

    #[test]
    fn rules_match_verb_and_resource_and_count_down() {
        let faults = Faults::default();
        let id = faults.set(
            FaultRule::new(FaultKind::Error500)
                .verbs(["create"])
                .resource("configmaps")
                .times(2),
        );
        let create = info(Method::POST, "/api/v1/namespaces/a/configmaps");
        let get = info(Method::GET, "/api/v1/namespaces/a/configmaps/x");
        assert_eq!(faults.decide(&get).1, None);
        assert_eq!(faults.decide(&create).1, Some(FaultKind::Error500));
        assert_eq!(faults.decide(&create).1, Some(FaultKind::Error500));
        assert_eq!(faults.decide(&create).1, None);
        assert_eq!(faults.fired(id), 2);
    }

    #[test]
    fn subresource_rules_and_watch_faults_only_match_their_requests() {
        let status = FaultRule::new(FaultKind::Conflict).resource("mcpservers/status");
        let main = info(
            Method::PATCH,
            "/apis/mcp-operator.dev/v1alpha1/namespaces/a/mcpservers/x",
        );
        let sub = info(
            Method::PATCH,
            "/apis/mcp-operator.dev/v1alpha1/namespaces/a/mcpservers/x/status",
        );
        assert!(!status.matches(&main) && status.matches(&sub));
        let gone = FaultRule::new(FaultKind::WatchGone);
        assert!(!gone.matches(&info(Method::GET, "/api/v1/configmaps")));
        assert!(gone.matches(&info(Method::GET, "/api/v1/configmaps?watch=true")));
    }

    #[test]
    fn every_nth_and_seeded_probability_are_deterministic() {
        let faults = Faults::default();
        faults.set(FaultRule::new(FaultKind::Error500).every_nth(3));
        let get = info(Method::GET, "/api/v1/namespaces/a/secrets/s");
        let fired: Vec<bool> = (0..6).map(|_| faults.decide(&get).1.is_some()).collect();
        assert_eq!(fired, [false, false, true, false, false, true]);

        let draws = |seed| {
            let faults = Faults::default();
            faults.set(FaultRule::new(FaultKind::Error500).probability(0.5, seed));
            (0..64)
                .map(|_| faults.decide(&get).1.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let hits = draws(7).iter().filter(|f| **f).count();
        assert!((16..48).contains(&hits), "{hits} of 64");
    }

    #[test]
    fn latencies_add_up_and_do_not_hide_errors() {
        let faults = Faults::default();
        faults.set(FaultRule::new(FaultKind::Latency(Duration::from_millis(5))));
        faults.set(FaultRule::new(FaultKind::Latency(Duration::from_millis(7))));
        faults.set(FaultRule::new(FaultKind::Error500).times(1));
        let get = info(Method::GET, "/api/v1/namespaces/a/secrets/s");
        assert_eq!(
            faults.decide(&get),
            (Duration::from_millis(12), Some(FaultKind::Error500))
        );
        assert_eq!(faults.decide(&get), (Duration::from_millis(12), None));
    }
}
