//! Property tests of the policy merge: adding a policy never exposes a hidden tool,
//! never raises a limit, never weakens audit or pinning; policy order does not matter.
use super::*;
use crate::api::common::GoDuration;
use crate::api::policy::{Audit, Limits, RateLimit, ToolRules};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

/// Tool names over a tiny alphabet, so that random globs often match.
fn tool_name() -> impl Strategy<Value = String> {
    "[ab_]{1,5}"
}

fn glob() -> impl Strategy<Value = String> {
    "[ab_*?]{0,4}"
}

fn globs() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(glob(), 0..3)
}

/// Two possible hashes: pins match or differ often.
fn sha() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".repeat(64)), Just("b".repeat(64))]
}

fn pins() -> impl Strategy<Value = Vec<PinnedTool>> {
    prop::collection::vec(
        (tool_name(), sha()).prop_map(|(name, sha256)| PinnedTool { name, sha256 }),
        0..4,
    )
}

fn access() -> impl Strategy<Value = ToolAccess> {
    (
        prop::option::of((globs(), globs())),
        prop::collection::vec(tool_name(), 0..3),
    )
        .prop_map(|(narrowing, grants)| ToolAccess {
            narrowing: narrowing.map(|(allow, deny)| ToolNarrowing { allow, deny }),
            grants,
        })
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        (1u64..10_000_000).prop_map(|n| Quantity(n.to_string())),
        (1u64..4096).prop_map(|n| Quantity(format!("{n}Ki"))),
        (1u64..64).prop_map(|n| Quantity(format!("{n}Mi"))),
        (1u64..64).prop_map(|n| Quantity(format!("{n}M"))),
    ]
}

fn duration() -> impl Strategy<Value = GoDuration> {
    prop_oneof![
        (1u64..600).prop_map(|n| GoDuration(format!("{n}s"))),
        (1u64..30).prop_map(|n| GoDuration(format!("{n}m"))),
        (1u64..60_000).prop_map(|n| GoDuration(format!("{n}ms"))),
    ]
}

fn spec() -> impl Strategy<Value = McpPolicySpec> {
    let tools = prop::option::of((globs(), globs(), globs()).prop_map(
        |(allow, deny, require_grant)| ToolRules {
            allow,
            deny,
            require_grant,
        },
    ));
    let pinning = prop_oneof![
        Just(PinningMode::Off),
        Just(PinningMode::Warn),
        Just(PinningMode::Enforce)
    ];
    let scope = prop_oneof![Just(RateLimitScope::Binding), Just(RateLimitScope::Server)];
    let rate = prop::option::of(
        (1i32..100_000, prop::option::of(1i32..10_000), scope).prop_map(
            |(requests_per_minute, burst, per)| RateLimit {
                requests_per_minute,
                burst,
                per,
            },
        ),
    );
    let limits = prop::option::of(
        (
            prop::option::of(quantity()),
            prop::option::of(quantity()),
            prop::option::of(duration()),
            prop::option::of(1i32..1000),
        )
            .prop_map(|(req, resp, timeout, conc)| Limits {
                max_request_bytes: req,
                max_response_bytes: resp,
                call_timeout: timeout,
                max_concurrent_calls: conc,
            }),
    );
    let level = prop_oneof![
        Just(AuditLevel::Metadata),
        Just(AuditLevel::Hashes),
        Just(AuditLevel::Payloads)
    ];
    let audit = prop::option::of(
        (level, prop::collection::vec("[a-z]{1,6}", 0..3))
            .prop_map(|(level, redact_keys)| Audit { level, redact_keys }),
    );
    (tools, pinning, rate, limits, audit).prop_map(|(tools, pinning, rate_limit, limits, audit)| {
        McpPolicySpec {
            tools,
            pinning,
            rate_limit,
            limits,
            audit,
            ..Default::default()
        }
    })
}

/// A set of policies (named p0, p1, …) and one more policy to add.
fn policies_and_one_more() -> impl Strategy<Value = (Vec<McpPolicySpec>, McpPolicySpec)> {
    (prop::collection::vec(spec(), 0..4), spec())
}

fn merged(specs: &[McpPolicySpec]) -> EffectivePolicy {
    let names: Vec<String> = (0..specs.len()).map(|i| format!("p{i}")).collect();
    EffectivePolicy::merge(names.iter().map(String::as_str).zip(specs)).expect("valid")
}

/// `None` (unlimited) is the highest limit.
fn at_most<T: Ord>(after: Option<T>, before: Option<T>) -> bool {
    match (after, before) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn adding_a_policy_never_exposes_a_hidden_tool(
        (specs, extra) in policies_and_one_more(),
        pins in pins(),
        access in access(),
        tools in prop::collection::vec((tool_name(), sha()), 1..6),
    ) {
        let before = merged(&specs);
        let mut more = specs.clone();
        more.push(extra);
        let after = merged(&more);
        for (tool, sha) in &tools {
            if before.server_decision(&pins, tool, sha).is_err() {
                prop_assert!(after.server_decision(&pins, tool, sha).is_err(), "{tool} exposed by adding a policy");
            }
            if before.binding_decision(&pins, &access, tool, sha).is_err() {
                prop_assert!(after.binding_decision(&pins, &access, tool, sha).is_err(), "{tool} exposed to a binding by adding a policy");
            }
            // A binding never sees more than the server exposes.
            if after.server_decision(&pins, tool, sha).is_err() {
                prop_assert!(after.binding_decision(&pins, &access, tool, sha).is_err());
            }
        }
    }

    #[test]
    fn adding_a_policy_never_raises_a_limit_or_lowers_audit_or_pinning(
        (specs, extra) in policies_and_one_more(),
    ) {
        let before = merged(&specs);
        let mut more = specs.clone();
        more.push(extra);
        let after = merged(&more);
        let rate = |e: &EffectivePolicy| e.rate_limit.map(|r| r.requests_per_minute);
        let burst = |e: &EffectivePolicy| e.rate_limit.map(|r| r.burst);
        prop_assert!(at_most(rate(&after), rate(&before)), "rate raised");
        prop_assert!(at_most(burst(&after), burst(&before)), "burst raised");
        if before.rate_limit.is_some_and(|r| r.per == RateLimitScope::Server) {
            prop_assert_eq!(after.rate_limit.unwrap().per, RateLimitScope::Server);
        }
        let (a, b) = (&after.limits, &before.limits);
        prop_assert!(at_most(a.max_request_bytes, b.max_request_bytes), "maxRequestBytes raised");
        prop_assert!(at_most(a.max_response_bytes, b.max_response_bytes), "maxResponseBytes raised");
        prop_assert!(at_most(a.call_timeout_ms, b.call_timeout_ms), "callTimeout raised");
        prop_assert!(at_most(a.max_concurrent_calls, b.max_concurrent_calls), "maxConcurrentCalls raised");
        prop_assert!(after.audit.level >= before.audit.level, "audit level lowered");
        for key in &before.audit.redact_keys {
            prop_assert!(after.audit.redact_keys.contains(key), "redact key {key} dropped");
        }
        prop_assert!(after.pinning >= before.pinning, "pinning lowered");
        for d in &before.deny {
            prop_assert!(after.deny.contains(d));
        }
        for g in &before.require_grant {
            prop_assert!(after.require_grant.contains(g));
        }
    }

    #[test]
    fn order_of_policies_does_not_matter(
        specs in prop::collection::vec(spec(), 1..5),
        seed in any::<u64>(),
    ) {
        let names: Vec<String> = (0..specs.len()).map(|i| format!("p{i}")).collect();
        let mut pairs: Vec<(&str, &McpPolicySpec)> =
            names.iter().map(String::as_str).zip(&specs).collect();
        let forward = EffectivePolicy::merge(pairs.clone()).unwrap();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..pairs.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            pairs.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let shuffled = EffectivePolicy::merge(pairs.clone()).unwrap();
        prop_assert_eq!(&forward, &shuffled);
        pairs.reverse();
        prop_assert_eq!(&forward, &EffectivePolicy::merge(pairs).unwrap());
    }
}
