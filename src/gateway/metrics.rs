//! The gateway's Prometheus metrics (text exposition format, hand-rolled on atomics):
//! requests by method/tool/outcome, request latency, upstream errors, active sessions,
//! rate-limit trips, denials by rule, config reloads, Kubernetes Events and TokenReviews. Label sets are bounded: unknown
//! methods count as `other`, and past [`MAX_SERIES`] new tool names count as `other`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::refusal::Rule;

/// Most (method, tool, outcome) series kept.
pub const MAX_SERIES: usize = 2048;
/// Most sessions tracked for the active-sessions gauge.
const MAX_SESSIONS: usize = 100_000;

const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every client-to-server method of the spec (2024-11-05 … 2026-07-28, with the tasks
/// extension), the client notifications, and the HTTP methods that name a request refused
/// whole; anything else is `other`.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "server/discover",
    "subscriptions/listen",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "tasks/update",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "POST",
    "GET",
    "DELETE",
];

/// All counters of one gateway.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(String, String, &'static str), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    pub upstream_errors: AtomicU64,
    sessions: Mutex<HashSet<String>>,
    pub rate_limited: AtomicU64,
    denied: [AtomicU64; Rule::ALL.len()],
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Kubernetes Events written, failed, and occurrences dropped (queue full, or no
    /// configuration to name the server yet).
    pub events_sent: AtomicU64,
    pub events_failed: AtomicU64,
    pub events_dropped: AtomicU64,
    /// TokenReview calls by result, and answers from the cache.
    pub token_reviews_authenticated: AtomicU64,
    pub token_reviews_rejected: AtomicU64,
    pub token_reviews_failed: AtomicU64,
    pub token_review_cache_hits: AtomicU64,
}

impl Metrics {
    /// Counts one finished request.
    pub fn request(&self, method: &str, tool: &str, outcome: &'static str, took: Duration) {
        let method = if KNOWN_METHODS.contains(&method) {
            method
        } else {
            "other"
        };
        {
            let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            let key = (method.to_owned(), tool.to_owned(), outcome);
            if map.len() >= MAX_SERIES && !map.contains_key(&key) {
                *map.entry((method.to_owned(), "other".into(), outcome))
                    .or_default() += 1;
            } else {
                *map.entry(key).or_default() += 1;
            }
        }
        let secs = took.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a refusal by its rule.
    pub fn refused(&self, rule: Rule) {
        if rule == Rule::RateLimited {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(i) = Rule::ALL.iter().position(|r| *r == rule) {
            self.denied[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn session_opened(&self, id: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < MAX_SESSIONS {
            s.insert(id.to_owned());
        }
    }

    pub fn session_closed(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Denials of one rule so far.
    pub fn denied_count(&self, rule: Rule) -> u64 {
        Rule::ALL
            .iter()
            .position(|r| *r == rule)
            .map_or(0, |i| self.denied[i].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP mcp_gateway_requests_total JSON-RPC requests by method, tool and outcome.\n# TYPE mcp_gateway_requests_total counter\n");
        {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort();
            for ((method, tool, outcome), n) in rows {
                let _ = writeln!(
                    out,
                    "mcp_gateway_requests_total{{method=\"{}\",tool=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(method),
                    escape(tool)
                );
            }
        }
        out.push_str("# HELP mcp_gateway_request_duration_seconds Time from request to answer.\n# TYPE mcp_gateway_request_duration_seconds histogram\n");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mcp_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.latency_buckets[i])
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "mcp_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nmcp_gateway_request_duration_seconds_sum {}\nmcp_gateway_request_duration_seconds_count {count}",
            load(&self.latency_sum_micros) as f64 / 1e6
        );
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_upstream_errors_total Upstream requests that failed (connection, HTTP 5xx, unreadable).\n# TYPE mcp_gateway_upstream_errors_total counter\nmcp_gateway_upstream_errors_total {}\n\
             # HELP mcp_gateway_active_sessions MCP sessions opened through this gateway and not yet deleted.\n# TYPE mcp_gateway_active_sessions gauge\nmcp_gateway_active_sessions {sessions}\n\
             # HELP mcp_gateway_rate_limited_total Requests refused by the rate limit.\n# TYPE mcp_gateway_rate_limited_total counter\nmcp_gateway_rate_limited_total {}",
            load(&self.upstream_errors),
            load(&self.rate_limited)
        );
        out.push_str("# HELP mcp_gateway_denied_total Requests refused, by rule.\n# TYPE mcp_gateway_denied_total counter\n");
        for (i, rule) in Rule::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "mcp_gateway_denied_total{{rule=\"{}\"}} {}",
                rule.as_str(),
                load(&self.denied[i])
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_config_reloads_total Configuration file loads by result.\n# TYPE mcp_gateway_config_reloads_total counter\n\
             mcp_gateway_config_reloads_total{{result=\"success\"}} {}\nmcp_gateway_config_reloads_total{{result=\"failure\"}} {}",
            load(&self.reloads_ok),
            load(&self.reloads_failed)
        );
        let _ = writeln!(
            out,
            "# HELP mcp_gateway_kube_events_total Kubernetes Events about denials, rate-limit trips and 401s, by result (dropped: occurrences not counted into an Event).\n# TYPE mcp_gateway_kube_events_total counter\n\
             mcp_gateway_kube_events_total{{result=\"sent\"}} {}\nmcp_gateway_kube_events_total{{result=\"failed\"}} {}\nmcp_gateway_kube_events_total{{result=\"dropped\"}} {}\n\
             # HELP mcp_gateway_token_reviews_total TokenReview calls for ServiceAccount tokens, by result.\n# TYPE mcp_gateway_token_reviews_total counter\n\
             mcp_gateway_token_reviews_total{{result=\"authenticated\"}} {}\nmcp_gateway_token_reviews_total{{result=\"rejected\"}} {}\nmcp_gateway_token_reviews_total{{result=\"error\"}} {}\n\
             # HELP mcp_gateway_token_review_cache_hits_total ServiceAccount tokens answered from the cache.\n# TYPE mcp_gateway_token_review_cache_hits_total counter\n\
             mcp_gateway_token_review_cache_hits_total {}",
            load(&self.events_sent),
            load(&self.events_failed),
            load(&self.events_dropped),
            load(&self.token_reviews_authenticated),
            load(&self.token_reviews_rejected),
            load(&self.token_reviews_failed),
            load(&self.token_review_cache_hits),
        );
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.request("tools/call", "echo", "allowed", Duration::from_millis(2));
        m.request("weird/x", "", "allowed", Duration::from_millis(2));
        m.request("server/discover", "", "allowed", Duration::from_millis(2));
        m.request(
            "subscriptions/listen",
            "",
            "allowed",
            Duration::from_millis(2),
        );
        m.request("GET", "", "denied", Duration::from_millis(2));
        m.refused(Rule::RateLimited);
        m.session_opened("s1");
        let text = m.render();
        assert!(text.contains(
            "mcp_gateway_requests_total{method=\"tools/call\",tool=\"echo\",outcome=\"allowed\"} 1"
        ));
        assert!(text.contains("method=\"other\""));
        for method in ["server/discover", "subscriptions/listen", "GET"] {
            assert!(text.contains(&format!("method=\"{method}\"")), "{method}");
        }
        assert!(text.contains("mcp_gateway_rate_limited_total 1"));
        assert!(text.contains("mcp_gateway_denied_total{rule=\"RateLimited\"} 1"));
        assert!(text.contains("mcp_gateway_active_sessions 1"));
        assert!(text.contains("mcp_gateway_request_duration_seconds_count 5"));
    }
}
