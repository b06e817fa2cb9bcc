//! Effective policy: several McpPolicies merged into the strictest one, glob matching,
//! and the per-tool decision (exposed, or hidden for which reason). Pure: no client, no
//! I/O. The controller uses it for `status.tools[].exposed/reason` and to render the
//! gateway's configuration; the gateway uses it on every `tools/list` and `tools/call`.
//!
//! Policies match the server's own tool names (without `toolPrefix`), as pins do.

use serde::{Deserialize, Serialize};

use crate::api::binding::ToolNarrowing;
use crate::api::common::parse_duration;
use crate::api::policy::{AuditLevel, McpPolicySpec, PinningMode, RateLimitScope};
use crate::api::server::PinnedTool;
use crate::api::server_status::ToolHiddenReason;

/// Keys always redacted in Payloads audit records (compared case-insensitively).
pub const BUILTIN_REDACT_KEYS: &[&str] = &[
    "authorization",
    "password",
    "secret",
    "token",
    "apiKey",
    "api_key",
];

/// The strictest combination of every policy that targets one server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectivePolicy {
    /// Names of the merged policies, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// One allow list per policy that has one; a tool must match every list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Vec<String>>,
    /// Union of the deny lists; deny always wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Union of the requireGrant lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_grant: Vec<String>,
    /// Strictest pinning mode.
    #[serde(default)]
    pub pinning: PinningMode,
    /// Lowest rate; None = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<EffectiveRateLimit>,
    /// Lowest limits; unset fields fall back to the gateway defaults.
    #[serde(default)]
    pub limits: EffectiveLimits,
    /// Highest audit level and every redact key.
    #[serde(default)]
    pub audit: EffectiveAudit,
}

/// A token bucket: `requests_per_minute` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectiveRateLimit {
    pub requests_per_minute: u32,
    pub burst: u32,
    pub per: RateLimitScope,
}

/// Gateway limits in plain units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectiveLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
}

/// Audit settings after merging: the highest level, every key (built-ins included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EffectiveAudit {
    #[serde(default)]
    pub level: AuditLevel,
    #[serde(default)]
    pub redact_keys: Vec<String>,
}

impl Default for EffectiveAudit {
    fn default() -> Self {
        Self {
            level: AuditLevel::Metadata,
            redact_keys: BUILTIN_REDACT_KEYS.iter().map(|k| k.to_string()).collect(),
        }
    }
}

/// A policy field that cannot be turned into an effective value (admission normally
/// prevents these; they become a condition, not a crash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "policy {policy}: {field} {value:?} is not a valid quantity (use e.g. 1Mi, 512Ki, 1000000)"
    )]
    Quantity {
        policy: String,
        field: &'static str,
        value: String,
    },
    #[error("policy {policy}: {field} {value:?} is not a valid duration (use e.g. 30s, 2m)")]
    Duration {
        policy: String,
        field: &'static str,
        value: String,
    },
}

impl EffectivePolicy {
    /// Merges policies (name, spec) into the strictest combination. Order does not matter.
    pub fn merge<'a>(
        policies: impl IntoIterator<Item = (&'a str, &'a McpPolicySpec)>,
    ) -> Result<Self, PolicyError> {
        let mut policies: Vec<(&str, &McpPolicySpec)> = policies.into_iter().collect();
        policies.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = EffectivePolicy::default();
        for (name, spec) in policies {
            out.policies.push(name.to_string());
            if let Some(tools) = &spec.tools {
                if !tools.allow.is_empty() {
                    out.allow.push(tools.allow.clone());
                }
                union_into(&mut out.deny, &tools.deny);
                union_into(&mut out.require_grant, &tools.require_grant);
            }
            out.pinning = out.pinning.max(spec.pinning);
            if let Some(rl) = &spec.rate_limit {
                let rpm = rl.requests_per_minute.max(1) as u32;
                let burst = rl
                    .burst
                    .map(|b| b.max(1) as u32)
                    .unwrap_or((rpm / 6).max(1));
                let next = EffectiveRateLimit {
                    requests_per_minute: rpm,
                    burst,
                    per: rl.per,
                };
                out.rate_limit = Some(match out.rate_limit {
                    None => next,
                    Some(cur) => EffectiveRateLimit {
                        requests_per_minute: cur.requests_per_minute.min(next.requests_per_minute),
                        burst: cur.burst.min(next.burst),
                        // One shared bucket is stricter than one per consumer.
                        per: if cur.per == RateLimitScope::Server
                            || next.per == RateLimitScope::Server
                        {
                            RateLimitScope::Server
                        } else {
                            RateLimitScope::Binding
                        },
                    },
                });
            }
            if let Some(limits) = &spec.limits {
                let q = |field: &'static str,
                         v: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>|
                 -> Result<Option<u64>, PolicyError> {
                    v.as_ref()
                        .map(|q| {
                            parse_quantity_bytes(&q.0).ok_or_else(|| PolicyError::Quantity {
                                policy: name.to_string(),
                                field,
                                value: q.0.clone(),
                            })
                        })
                        .transpose()
                };
                min_into(
                    &mut out.limits.max_request_bytes,
                    q("limits.maxRequestBytes", &limits.max_request_bytes)?,
                );
                min_into(
                    &mut out.limits.max_response_bytes,
                    q("limits.maxResponseBytes", &limits.max_response_bytes)?,
                );
                let timeout = limits
                    .call_timeout
                    .as_ref()
                    .map(|d| {
                        parse_duration(&d.0)
                            .map(|d| d.as_millis() as u64)
                            .map_err(|_| PolicyError::Duration {
                                policy: name.to_string(),
                                field: "limits.callTimeout",
                                value: d.0.clone(),
                            })
                    })
                    .transpose()?;
                min_into(&mut out.limits.call_timeout_ms, timeout);
                min_into(
                    &mut out.limits.max_concurrent_calls,
                    limits.max_concurrent_calls.map(|n| n.max(1) as u32),
                );
            }
            if let Some(audit) = &spec.audit {
                out.audit.level = out.audit.level.max(audit.level);
                union_into(&mut out.audit.redact_keys, &audit.redact_keys);
            }
        }
        Ok(out)
    }

    /// Whether the server exposes a tool at all (bindings aside): `Ok(())` or the reason
    /// it is hidden. `sha256` is the tool's definition hash (see `prober::inventory`).
    pub fn server_decision(
        &self,
        pins: &[PinnedTool],
        tool: &str,
        sha256: &str,
    ) -> Result<(), ToolHiddenReason> {
        if self.deny.iter().any(|p| glob_match(p, tool))
            || !self
                .allow
                .iter()
                .all(|list| list.iter().any(|p| glob_match(p, tool)))
        {
            return Err(ToolHiddenReason::Denied);
        }
        if self.pinning == PinningMode::Enforce {
            match pins.iter().find(|p| p.name == tool) {
                None => return Err(ToolHiddenReason::Unpinned),
                Some(pin) if !pin.sha256.eq_ignore_ascii_case(sha256) => {
                    return Err(ToolHiddenReason::Changed);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether one consumer may see and call a tool: the server decision, then the
    /// binding's narrowing (Denied) and grants (NotGranted).
    pub fn binding_decision(
        &self,
        pins: &[PinnedTool],
        access: &ToolAccess,
        tool: &str,
        sha256: &str,
    ) -> Result<(), ToolHiddenReason> {
        self.server_decision(pins, tool, sha256)?;
        if let Some(n) = &access.narrowing
            && (n.deny.iter().any(|p| glob_match(p, tool))
                || (!n.allow.is_empty() && !n.allow.iter().any(|p| glob_match(p, tool))))
        {
            return Err(ToolHiddenReason::Denied);
        }
        if self.require_grant.iter().any(|p| glob_match(p, tool))
            && !access.grants.iter().any(|g| g == tool)
        {
            return Err(ToolHiddenReason::NotGranted);
        }
        Ok(())
    }
}

/// What one consumer (binding) adds to the effective policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowing: Option<ToolNarrowing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// The rule name a refusal reports (also the status `reason`).
pub fn reason_name(reason: ToolHiddenReason) -> &'static str {
    match reason {
        ToolHiddenReason::Denied => "Denied",
        ToolHiddenReason::NotGranted => "NotGranted",
        ToolHiddenReason::Unpinned => "Unpinned",
        ToolHiddenReason::Changed => "Changed",
    }
}

fn union_into(into: &mut Vec<String>, from: &[String]) {
    for item in from {
        if !into.iter().any(|i| i == item) {
            into.push(item.clone());
        }
    }
}

fn min_into<T: Ord + Copy>(into: &mut Option<T>, next: Option<T>) {
    *into = match (*into, next) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

/// Glob match: `*` any run of characters (including none), `?` exactly one, everything
/// else literal. Linear time (no backtracking blow-up).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Parses a Kubernetes quantity as a byte count: plain integers, binary suffixes
/// (Ki Mi Gi Ti Pi Ei), decimal suffixes (k M G T P E) and exponents (`1e6`). Fractions
/// round up. None for anything else (including negative values).
pub fn parse_quantity_bytes(input: &str) -> Option<u64> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let bytes = (number * multiplier).ceil();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{Audit, Limits, RateLimit, ToolRules};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pol(allow: &[&str], deny: &[&str], grant: &[&str]) -> McpPolicySpec {
        McpPolicySpec {
            tools: Some(ToolRules {
                allow: allow.iter().map(|s| s.to_string()).collect(),
                deny: deny.iter().map(|s| s.to_string()).collect(),
                require_grant: grant.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("read_*", "read_file"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*_file*", "read_file_x"));
        assert!(!glob_match("read_*", "write_file"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn every_allow_list_must_match_and_deny_wins() {
        let a = pol(&["read_*", "search_*"], &[], &[]);
        let b = pol(&["*_file"], &["delete_*"], &[]);
        let c = pol(&[], &["read_secret*"], &[]);
        let eff = EffectivePolicy::merge([("b", &b), ("a", &a), ("c", &c)]).unwrap();
        assert_eq!(eff.policies, ["a", "b", "c"]);
        assert_eq!(eff.server_decision(&[], "read_file", "x"), Ok(()));
        assert_eq!(
            eff.server_decision(&[], "search_docs", "x"),
            Err(ToolHiddenReason::Denied),
            "matches a's allow but not b's"
        );
        assert_eq!(
            eff.server_decision(&[], "read_secret_file", "x"),
            Err(ToolHiddenReason::Denied)
        );
        let empty = EffectivePolicy::merge([]).unwrap();
        assert_eq!(empty.server_decision(&[], "anything", "x"), Ok(()));
    }

    #[test]
    fn pinning_enforce_refuses_unpinned_and_changed_warn_does_not() {
        let pins = vec![PinnedTool {
            name: "echo".into(),
            sha256: "ab".repeat(32),
        }];
        let mut spec = McpPolicySpec {
            pinning: PinningMode::Warn,
            ..Default::default()
        };
        let warn = EffectivePolicy::merge([("w", &spec)]).unwrap();
        assert_eq!(warn.server_decision(&pins, "other", "cd"), Ok(()));
        spec.pinning = PinningMode::Enforce;
        let off = McpPolicySpec::default();
        let enforce = EffectivePolicy::merge([("w", &off), ("e", &spec)]).unwrap();
        assert_eq!(enforce.pinning, PinningMode::Enforce);
        assert_eq!(
            enforce.server_decision(&pins, "echo", &"ab".repeat(32)),
            Ok(())
        );
        assert_eq!(
            enforce.server_decision(&pins, "echo", &"cd".repeat(32)),
            Err(ToolHiddenReason::Changed)
        );
        assert_eq!(
            enforce.server_decision(&pins, "other", "x"),
            Err(ToolHiddenReason::Unpinned)
        );
    }

    #[test]
    fn binding_narrows_and_grants() {
        let p = pol(&[], &["delete_*"], &["create_*"]);
        let eff = EffectivePolicy::merge([("p", &p)]).unwrap();
        let none = ToolAccess::default();
        let granted = ToolAccess {
            narrowing: Some(ToolNarrowing {
                allow: vec!["create_*".into(), "read_*".into()],
                deny: vec!["read_secret".into()],
            }),
            grants: vec!["create_entities".into(), "delete_all".into()],
        };
        assert_eq!(
            eff.binding_decision(&[], &none, "create_entities", "x"),
            Err(ToolHiddenReason::NotGranted)
        );
        assert_eq!(
            eff.binding_decision(&[], &granted, "create_entities", "x"),
            Ok(())
        );
        assert_eq!(
            eff.binding_decision(&[], &granted, "create_other", "x"),
            Err(ToolHiddenReason::NotGranted),
            "grants name tools exactly"
        );
        assert_eq!(
            eff.binding_decision(&[], &granted, "delete_all", "x"),
            Err(ToolHiddenReason::Denied),
            "a grant never widens past deny"
        );
        assert_eq!(
            eff.binding_decision(&[], &granted, "read_secret", "x"),
            Err(ToolHiddenReason::Denied)
        );
        assert_eq!(
            eff.binding_decision(&[], &granted, "list_things", "x"),
            Err(ToolHiddenReason::Denied),
            "not in the binding's allow"
        );
        assert_eq!(eff.binding_decision(&[], &none, "list_things", "x"), Ok(()));
    }

    #[test]
    fn limits_rates_and_audit_take_the_strictest() {
        let a = McpPolicySpec {
            rate_limit: Some(RateLimit {
                requests_per_minute: 600,
                burst: None,
                per: RateLimitScope::Binding,
            }),
            limits: Some(Limits {
                max_request_bytes: Some(Quantity("1Mi".into())),
                max_response_bytes: None,
                call_timeout: Some(crate::api::common::GoDuration("30s".into())),
                max_concurrent_calls: Some(32),
            }),
            audit: Some(Audit {
                level: AuditLevel::Payloads,
                redact_keys: vec!["ssn".into()],
            }),
            ..Default::default()
        };
        let b = McpPolicySpec {
            rate_limit: Some(RateLimit {
                requests_per_minute: 1200,
                burst: Some(50),
                per: RateLimitScope::Server,
            }),
            limits: Some(Limits {
                max_request_bytes: Some(Quantity("512Ki".into())),
                max_response_bytes: Some(Quantity("8M".into())),
                call_timeout: Some(crate::api::common::GoDuration("1m".into())),
                max_concurrent_calls: None,
            }),
            audit: Some(Audit {
                level: AuditLevel::Hashes,
                redact_keys: vec![],
            }),
            ..Default::default()
        };
        let eff = EffectivePolicy::merge([("a", &a), ("b", &b)]).unwrap();
        assert_eq!(
            eff.rate_limit,
            Some(EffectiveRateLimit {
                requests_per_minute: 600,
                burst: 50,
                per: RateLimitScope::Server
            })
        );
        assert_eq!(
            eff.limits,
            EffectiveLimits {
                max_request_bytes: Some(512 * 1024),
                max_response_bytes: Some(8_000_000),
                call_timeout_ms: Some(30_000),
                max_concurrent_calls: Some(32),
            }
        );
        assert_eq!(eff.audit.level, AuditLevel::Payloads);
        assert!(eff.audit.redact_keys.iter().any(|k| k == "ssn"));
        assert!(eff.audit.redact_keys.iter().any(|k| k == "password"));
        // default burst is a sixth of the rate
        let only_a = EffectivePolicy::merge([("a", &a)]).unwrap();
        assert_eq!(only_a.rate_limit.unwrap().burst, 100);
    }

    #[test]
    fn bad_quantity_is_an_error_naming_the_policy() {
        let a = McpPolicySpec {
            limits: Some(Limits {
                max_request_bytes: Some(Quantity("lots".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = EffectivePolicy::merge([("big", &a)]).unwrap_err();
        assert!(err.to_string().contains("policy big"), "{err}");
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity_bytes("1Mi"), Some(1 << 20));
        assert_eq!(parse_quantity_bytes("1000"), Some(1000));
        assert_eq!(parse_quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(parse_quantity_bytes("2k"), Some(2000));
        assert_eq!(parse_quantity_bytes("1e3"), Some(1000));
        assert_eq!(parse_quantity_bytes("-1"), None);
        assert_eq!(parse_quantity_bytes("1Xi"), None);
    }
}

/// Property tests: adding a policy only ever makes things stricter, and the order of
/// policies does not matter.
#[cfg(test)]
mod properties;
