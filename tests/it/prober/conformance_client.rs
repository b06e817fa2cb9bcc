//! The MCP conformance suite's client scenarios (0.2.0-alpha, `mcp-conformance-2` in the
//! peers) against `mcp-operator probe`: the suite starts a scenario server, runs the
//! command given with the server's URL appended, and judges every request it received.
//!
//! - `initialize`: the handshake (protocol version, clientInfo) when the server is legacy;
//! - `request-metadata`: `_meta` envelope (protocolVersion, clientCapabilities, clientInfo)
//!   on every request, `MCP-Protocol-Version` equal to it, and one retry at a supported
//!   version after the server's -32022;
//! - `http-standard-headers`: `Mcp-Method` (and `Mcp-Name` where the method names
//!   something) on every POST;
//! - `sep-2322-client-request-state`: multi round-trip tool calls (`input_required`):
//!   `requestState` echoed exactly, a new JSON-RPC id per retry, no state invented when
//!   none was sent, nothing carried over to another call, an absent `resultType` read as
//!   complete. A probe calls no tool, so this one runs `probe --call` naming the
//!   scenario's four tools (the command a person would type to smoke-test them).

use std::process::Command;

use crate::support;

/// The tools the `sep-2322-client-request-state` scenario server offers.
const MRTR_TOOLS: [&str; 4] = [
    "test_mrtr_echo_state",
    "test_mrtr_no_state",
    "test_mrtr_unrelated",
    "test_mrtr_no_result_type",
];

/// Runs `scenario` against the probe; returns (passed, the suite's output).
fn run_scenario(scenario: &str, extra: &str) -> (bool, String) {
    let probe = format!(
        "{} probe -o json --retries 0 --timeout 20s{extra}",
        env!("CARGO_BIN_EXE_mcp-operator")
    );
    let out = Command::new(support::peer_path("bin/node22"))
        .arg(support::peer_path(
            "node_modules/mcp-conformance-2/dist/index.js",
        ))
        .args(["client", "--command", &probe, "--scenario", scenario])
        .args(["--timeout", "60000"])
        .output()
        .expect("running the conformance suite");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = out.status.success() && text.contains("OVERALL: PASSED");
    (passed, text)
}

#[test]
fn conformance_client_scenarios_pass_against_the_probe() {
    let mut failed = Vec::new();
    let calls: String = MRTR_TOOLS.iter().map(|t| format!(" --call {t}")).collect();
    for (scenario, extra) in [
        ("initialize", ""),
        ("request-metadata", ""),
        ("http-standard-headers", ""),
        ("sep-2322-client-request-state", calls.as_str()),
    ] {
        let (passed, text) = run_scenario(scenario, extra);
        println!("==== {scenario}: passed {passed}\n{text}");
        // A scenario whose checks were all skipped proves nothing.
        assert!(
            text.contains("SUCCESS"),
            "{scenario}: no check succeeded:\n{text}"
        );
        if !passed {
            failed.push(scenario);
        }
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
