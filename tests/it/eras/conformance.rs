//! The MCP conformance suite's server scenarios, each upstream directly and through the
//! gateway: per scenario and per check, the gateway gives the upstream's own result.
//!
//! Suites: the newest release (0.2.0-alpha, `mcp-conformance-2`) with the 2026-07-28
//! revision's required scenarios (`--requirements 2026-07-28`) and with its default
//! (active) set, and 0.1.16's default set. Upstreams: server-everything (legacy era only),
//! the TypeScript SDK v2 server dual and `legacy: 'reject'` (modern only), and the Python
//! SDK 2.3 server dual.
//!
//! These servers are not the suite's reference server, so many checks fail directly (no
//! `test_image_content` tool, no prompts, ...); the point is that the gateway changes
//! none of them. Checks whose outcome changes between two direct runs are unstable (the
//! suite's timing), reported and not compared. The differences by design are the checks
//! the gateway answers itself ([`GATEWAY_OWN_CHECKS`]): they must pass through it whatever
//! the server does directly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::gateway::harness::{GatewayProcess, config};
use crate::support;
use crate::support::era_peers::EraServer;

/// One conformance run's results.
#[derive(Default)]
struct Run {
    /// scenario → "N passed, M failed" (the suite's summary line).
    summary: BTreeMap<String, String>,
    /// "scenario/check id" → status (SUCCESS, FAILURE, WARNING, ...).
    checks: BTreeMap<String, String>,
    /// "scenario/check id" → the check's error message, for the report.
    messages: BTreeMap<String, String>,
}

/// A suite: which package, with which arguments.
struct Suite {
    label: &'static str,
    package: &'static str,
    args: &'static [&'static str],
}

const MODERN_REQUIRED: Suite = Suite {
    label: "0.2.0-alpha --requirements 2026-07-28",
    package: "node_modules/mcp-conformance-2/dist/index.js",
    args: &["--requirements", "2026-07-28"],
};
const MODERN_DEFAULT: Suite = Suite {
    label: "0.2.0-alpha default",
    package: "node_modules/mcp-conformance-2/dist/index.js",
    args: &[],
};
const LEGACY_DEFAULT: Suite = Suite {
    label: "0.1.16 default",
    package: "node_modules/@modelcontextprotocol/conformance/dist/index.js",
    args: &[],
};

/// Runs `suite`'s server scenarios against `url`, results under `out_dir`.
fn run(suite: &Suite, url: &str, out_dir: &Path) -> Run {
    let out = Command::new(support::peer_path("bin/node22"))
        .arg(support::peer_path(suite.package))
        .args(["server", "--url", url])
        .args(suite.args)
        .arg("-o")
        .arg(out_dir)
        .output()
        .expect("running the conformance suite");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let summary: BTreeMap<String, String> = text
        .lines()
        .skip_while(|l| !l.contains("=== SUMMARY ==="))
        .filter_map(|l| {
            let l = l.trim_start_matches(['✓', '✗', ' ']);
            let (name, counts) = l.split_once(": ")?;
            (name != "Total" && counts.contains("passed"))
                .then(|| (name.to_owned(), counts.to_owned()))
        })
        .collect();
    assert!(
        !summary.is_empty(),
        "{}: no conformance summary against {url}:\n{text}",
        suite.label
    );
    let mut result = Run {
        summary,
        ..Run::default()
    };
    // server-<scenario>-<timestamp>
    let timestamp = regex::Regex::new(r"-\d{4}-\d{2}-\d{2}T.*$").unwrap();
    for dir in std::fs::read_dir(out_dir).unwrap().flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let scenario = timestamp.replace(&name, "");
        let scenario = scenario.strip_prefix("server-").unwrap_or(&scenario);
        let Ok(text) = std::fs::read_to_string(dir.path().join("checks.json")) else {
            continue;
        };
        let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        for c in list {
            let key = format!("{scenario}/{}", c["id"].as_str().unwrap_or("?"));
            let status = c["status"].as_str().unwrap_or("?").to_owned();
            if let Some(m) = c["errorMessage"].as_str() {
                result
                    .messages
                    .insert(key.clone(), m.chars().take(300).collect());
            }
            // A check id may repeat within a scenario: keep every outcome.
            result
                .checks
                .entry(key)
                .and_modify(|s| {
                    s.push(',');
                    s.push_str(&status);
                })
                .or_insert(status);
        }
    }
    result
}

/// Checks the gateway answers itself, whatever the upstream does: each must pass through
/// the gateway (directly it may fail), with the reason.
const GATEWAY_OWN_CHECKS: &[(&str, &str)] = &[
    (
        "dns-rebinding-protection/localhost-host-rebinding-rejected",
        "the gateway refuses a Host/Origin it does not serve (403) before the upstream sees it",
    ),
    (
        "server-stateless/sep-2575-http-server-header-mismatch-400",
        "the gateway refuses a routing header that disagrees with the body (400 -32020) itself",
    ),
    (
        "tasks-request-headers/tasks-headers-reject-mismatched-method",
        "the gateway refuses an Mcp-Method that disagrees with the body (-32020) itself",
    ),
    (
        "server-session-lifecycle/server-session-terminated-returns-404",
        "the gateway tracks sessions: a DELETEd session's id gets 404 from the gateway",
    ),
];

fn gateway_own(check: &str) -> Option<&'static str> {
    GATEWAY_OWN_CHECKS
        .iter()
        .find(|(id, _)| *id == check)
        .map(|(_, why)| *why)
}

/// Every way `gateway` differs from `direct`: per check, all but the unstable ones and the
/// gateway's own (those must pass through it); per scenario (the summary counts), those
/// with neither.
fn differences(direct: &Run, gateway: &Run, unstable: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let why = |r: &Run, check: &str| r.messages.get(check).cloned().unwrap_or_default();
    let checks: BTreeSet<&String> = direct.checks.keys().chain(gateway.checks.keys()).collect();
    for check in checks {
        if unstable.contains(check) {
            continue;
        }
        let d = direct.checks.get(check).map_or("missing", String::as_str);
        let g = gateway.checks.get(check).map_or("missing", String::as_str);
        if let Some(reason) = gateway_own(check) {
            if g != "SUCCESS" && d != "missing" {
                out.push(format!(
                    "check {check}: {g} through the gateway, which answers it itself ({reason}): {}",
                    why(gateway, check)
                ));
            }
        } else if d != g {
            out.push(format!(
                "check {check}: direct {d}, gateway {g}\n    direct: {}\n    gateway: {}",
                why(direct, check),
                why(gateway, check)
            ));
        }
    }
    let scenarios: BTreeSet<&String> = direct
        .summary
        .keys()
        .chain(gateway.summary.keys())
        .collect();
    for scenario in scenarios {
        let prefix = format!("{scenario}/");
        let excepted = unstable.iter().any(|c| c.starts_with(&prefix))
            || GATEWAY_OWN_CHECKS
                .iter()
                .any(|(c, _)| c.starts_with(&prefix));
        let d = direct
            .summary
            .get(scenario)
            .map_or("missing", String::as_str);
        let g = gateway
            .summary
            .get(scenario)
            .map_or("missing", String::as_str);
        if d != g && !excepted {
            out.push(format!("scenario {scenario}: direct {d}, gateway {g}"));
        }
    }
    out
}

/// Runs every suite against `upstream` directly (twice) and through a gateway; prints the
/// per-scenario table and every difference; fails when any remains.
async fn same_through_the_gateway(name: &str, upstream: &str, suites: &[&Suite]) {
    let gw = GatewayProcess::start(upstream, &config(json!({"auth": "None"})), &[]).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (i, suite) in suites.iter().enumerate() {
        let dir = |what: &str| dirs.path().join(format!("{i}-{what}"));
        let direct = run(suite, upstream, &dir("direct"));
        let again = run(suite, upstream, &dir("direct-again"));
        let through = run(suite, &gw.url(), &dir("gateway"));
        let unstable: BTreeSet<String> = direct
            .checks
            .iter()
            .filter(|(c, s)| again.checks.get(*c) != Some(*s))
            .map(|(c, _)| c.clone())
            .chain(
                again
                    .checks
                    .keys()
                    .filter(|c| !direct.checks.contains_key(*c))
                    .cloned(),
            )
            .collect();
        println!(
            "== {name}, conformance {}: scenario | direct | gateway",
            suite.label
        );
        for (scenario, d) in &direct.summary {
            let g = through
                .summary
                .get(scenario)
                .map_or("missing", String::as_str);
            let mark = if d == g { "same" } else { "DIFFERENT" };
            println!("  {scenario} | {d} | {g} | {mark}");
        }
        for c in &unstable {
            println!("  unstable directly (not compared): {c}");
        }
        for (check, reason) in GATEWAY_OWN_CHECKS {
            if let (Some(d), Some(g)) = (direct.checks.get(*check), through.checks.get(*check))
                && d != g
            {
                println!("  by design: {check}: direct {d}, gateway {g} ({reason})");
            }
        }
        for d in differences(&direct, &through, &unstable) {
            all.push(format!("[{}] {d}", suite.label));
        }
    }
    for d in &all {
        println!("difference ({name}): {d}");
    }
    assert!(
        all.is_empty(),
        "{name}: {} difference(s) between direct and gateway:\n{}",
        all.len(),
        all.join("\n")
    );
}

/// Every suite against `server` over Streamable HTTP, directly and through the gateway.
async fn check(server: EraServer, suites: &[&Suite]) {
    let upstream = server.http();
    same_through_the_gateway(server.name(), &upstream.url("/mcp"), suites).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_legacy_same_through_the_gateway() {
    check(
        EraServer::Everything,
        &[&MODERN_REQUIRED, &MODERN_DEFAULT, &LEGACY_DEFAULT],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_v2_dual_same_through_the_gateway() {
    check(
        EraServer::TsDual,
        &[&MODERN_REQUIRED, &MODERN_DEFAULT, &LEGACY_DEFAULT],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_v2_modern_only_same_through_the_gateway() {
    check(
        EraServer::TsModernOnly,
        &[&MODERN_REQUIRED, &MODERN_DEFAULT, &LEGACY_DEFAULT],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_dual_same_through_the_gateway() {
    check(
        EraServer::PyDual,
        &[&MODERN_REQUIRED, &MODERN_DEFAULT, &LEGACY_DEFAULT],
    )
    .await;
}
