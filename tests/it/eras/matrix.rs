//! Client era × server era × path. Clients: Python SDK 2.3 auto and pinned 2026-07-28, the
//! TypeScript SDK v2 client (auto), Inspector 2.x modern and legacy. Servers:
//! server-everything (legacy only), dual and modern-only (TypeScript SDK v2 and Python SDK
//! 2.3). Paths: direct, gateway (in front of the server's Streamable HTTP), bridge (in front
//! of its stdio command line) and bridge + gateway.
//!
//! One `#[test]` per server × path; its cells are the clients. What each path must show:
//! * **direct**: the server's Streamable HTTP and stdio answer every client alike (the
//!   baselines the other paths are held to).
//! * **gateway**: every cell is what it is directly over HTTP: same success, negotiated
//!   version, tools and call result; a cell that fails directly fails through it too.
//! * **bridge**, **bridge + gateway**: every client works, whatever the child's era (the
//!   bridge speaks both eras to clients), with the tools and call result the child gives
//!   directly over stdio, at the version the client negotiates with a dual server directly
//!   (so an auto client in front of a legacy child is modern, a legacy client in front of
//!   a modern-only child is legacy).
//!
//! A failing test prints the whole row set as a table.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use crate::bridge::Bridge;
use crate::gateway::harness::{GatewayProcess, config};
use crate::support::era_peers::{ClientRun, EraClient, EraServer, Target};

const CLIENTS: [EraClient; 5] = [
    EraClient::PythonAuto,
    EraClient::PythonPinned,
    EraClient::TsAuto,
    EraClient::InspectorModern,
    EraClient::InspectorLegacy,
];

/// server-everything offers these only to clients declaring roots, sampling or
/// elicitation; the bridge declares all three to its process, so they appear through it
/// (as in `bridge::third_party`).
const CAPABILITY_GATED_TOOLS: &[&str] = &[
    "get-roots-list",
    "trigger-elicitation-request",
    "trigger-url-elicitation",
    "trigger-sampling-request",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct,
    Gateway,
    Bridge,
    BridgeGateway,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Gateway => "gateway",
            Path::Bridge => "bridge",
            Path::BridgeGateway => "bridge+gateway",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Transport {
    Http,
    Stdio,
}

type Runs = Vec<ClientRun>;
/// One baseline per server and transport, each computed by the first test asking for it.
type Baselines = HashMap<(EraServer, Transport), Arc<OnceLock<Runs>>>;

/// Every client run directly against `server` over `transport`, computed once per test
/// binary run (each server × path test needs its baseline; servers start once for it).
fn direct(server: EraServer, transport: Transport) -> Runs {
    static CACHE: OnceLock<Mutex<Baselines>> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((server, transport))
        .or_default()
        .clone();
    slot.get_or_init(|| match transport {
        Transport::Http => {
            let peer = server.http();
            run_all(server, Target::Url(&peer.url("/mcp")))
        }
        Transport::Stdio => run_all(server, Target::Stdio(&server.stdio_cmd())),
    })
    .clone()
}

fn run_all(server: EraServer, target: Target<'_>) -> Runs {
    let call = server.sample_call();
    CLIENTS.iter().map(|c| c.run(target, Some(&call))).collect()
}

/// The runs through `path` in front of `server`.
fn through(server: EraServer, path: Path) -> Runs {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gateway_in_front = |upstream: &str| {
        rt.block_on(GatewayProcess::start(
            upstream,
            &config(serde_json::json!({"auth": "None"})),
            &[],
        ))
    };
    match path {
        Path::Direct => unreachable!("direct is the baseline"),
        Path::Gateway => {
            let peer = server.http();
            let gateway = gateway_in_front(&peer.url("/mcp"));
            run_all(server, Target::Url(&gateway.url()))
        }
        Path::Bridge => {
            let bridge = Bridge::start(&[], &server.stdio_cmd(), &[]);
            run_all(server, Target::Url(&bridge.mcp_url()))
        }
        Path::BridgeGateway => {
            let bridge = Bridge::start(&[], &server.stdio_cmd(), &[]);
            let gateway = gateway_in_front(&bridge.mcp_url());
            run_all(server, Target::Url(&gateway.url()))
        }
    }
}

fn without_gated(tools: &[String]) -> Vec<&str> {
    tools
        .iter()
        .map(String::as_str)
        .filter(|t| !CAPABILITY_GATED_TOOLS.contains(t))
        .collect()
}

/// `got` shows what `want` shows: same version, tools (capability-gated ones aside when
/// `gated_may_differ`) and call result text.
fn same(
    got: &ClientRun,
    want: &ClientRun,
    version: Option<&str>,
    gated_may_differ: bool,
) -> Result<(), String> {
    if !got.ok() {
        return Err(got.error.clone().unwrap_or_else(|| "no version".into()));
    }
    if got.protocol_version.as_deref() != version {
        return Err(format!(
            "negotiated {:?}, expected {version:?}",
            got.protocol_version
        ));
    }
    let tools_differ = if gated_may_differ {
        without_gated(&got.tools) != without_gated(&want.tools)
    } else {
        got.tools != want.tools
    };
    if tools_differ {
        return Err(format!("tools {:?}, expected {:?}", got.tools, want.tools));
    }
    if got.result_text() != want.result_text() {
        return Err(format!(
            "call result {:?}, expected {:?}",
            got.result_text(),
            want.result_text()
        ));
    }
    Ok(())
}

fn short(run: &ClientRun) -> String {
    match (&run.protocol_version, &run.error) {
        (Some(v), None) => format!("{v} ({} tools)", run.tools.len()),
        (_, error) => {
            let e = error.as_deref().unwrap_or("no version");
            // An HTTP error body quoted by the client: its JSON-RPC message says more.
            let e = e
                .split_once(r#""message":""#)
                .and_then(|(_, rest)| rest.split('"').next())
                .unwrap_or(e);
            let e: String = e.chars().take(40).collect();
            format!("FAIL {}", e.replace('\n', " "))
        }
    }
}

struct Row {
    client: EraClient,
    baseline: String,
    got: String,
    verdict: Result<(), String>,
}

/// Prints the rows as a table (seen with `--nocapture`); panics with it when a cell fails.
fn report(server: EraServer, path: Path, baseline_name: &str, rows: &[Row]) {
    let mut table = format!(
        "{} × {}\n{:<18} {:<46} {:<46} verdict\n",
        server.name(),
        path.name(),
        "client",
        baseline_name,
        path.name()
    );
    for r in rows {
        let verdict = match &r.verdict {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAILS: {e}"),
        };
        let _ = writeln!(
            table,
            "{:<18} {:<46} {:<46} {verdict}",
            r.client.name(),
            r.baseline,
            r.got
        );
    }
    if rows.iter().any(|r| r.verdict.is_err()) {
        panic!("{table}");
    }
    println!("{table}");
}

/// Direct over HTTP and over stdio agree cell by cell.
fn check_direct(server: EraServer) {
    let http = direct(server, Transport::Http);
    let stdio = direct(server, Transport::Stdio);
    let rows: Vec<Row> = CLIENTS
        .iter()
        .zip(http.iter().zip(&stdio))
        .map(|(&client, (h, s))| Row {
            client,
            baseline: short(h),
            got: short(s),
            verdict: match (h.ok(), s.ok()) {
                (true, _) => same(s, h, h.protocol_version.as_deref(), false),
                (false, false) => Ok(()),
                (false, true) => Err("works over stdio only".into()),
            },
        })
        .collect();
    report(server, Path::Direct, "direct http", &rows);
    assert!(
        http.iter().any(ClientRun::ok),
        "{}: no client works directly: {http:?}",
        server.name()
    );
}

fn check_gateway(server: EraServer) {
    let baseline = direct(server, Transport::Http);
    let runs = through(server, Path::Gateway);
    let rows: Vec<Row> = CLIENTS
        .iter()
        .zip(baseline.iter().zip(&runs))
        .map(|(&client, (want, got))| Row {
            client,
            baseline: short(want),
            got: short(got),
            verdict: if want.ok() {
                same(got, want, want.protocol_version.as_deref(), false)
            } else if got.ok() {
                Err("works through the gateway but not directly".into())
            } else {
                Ok(())
            },
        })
        .collect();
    report(server, Path::Gateway, "direct http", &rows);
}

fn check_bridge(server: EraServer, path: Path) {
    let baseline = direct(server, Transport::Stdio);
    // The version each client settles on with a server that speaks both eras.
    let dual = direct(EraServer::TsDual, Transport::Stdio);
    let any_ok = baseline
        .iter()
        .find(|r| r.ok())
        .unwrap_or_else(|| panic!("{}: no client works directly over stdio", server.name()))
        .clone();
    let runs = through(server, path);
    let rows: Vec<Row> = CLIENTS
        .iter()
        .enumerate()
        .map(|(i, &client)| {
            let want = if baseline[i].ok() {
                &baseline[i]
            } else {
                &any_ok
            };
            let version = dual[i].protocol_version.as_deref();
            Row {
                client,
                baseline: short(&baseline[i]),
                got: short(&runs[i]),
                verdict: same(&runs[i], want, version, true),
            }
        })
        .collect();
    report(server, path, "direct stdio", &rows);
}

// ---- server-everything (legacy only) ---------------------------------------------------

#[test]
fn legacy_only_direct() {
    check_direct(EraServer::Everything);
}

#[test]
fn legacy_only_through_gateway() {
    check_gateway(EraServer::Everything);
}

#[test]
fn legacy_only_through_bridge() {
    check_bridge(EraServer::Everything, Path::Bridge);
}

#[test]
fn legacy_only_through_bridge_and_gateway() {
    check_bridge(EraServer::Everything, Path::BridgeGateway);
}

// ---- TypeScript SDK v2, dual ---------------------------------------------------------------

#[test]
fn ts_dual_direct() {
    check_direct(EraServer::TsDual);
}

#[test]
fn ts_dual_through_gateway() {
    check_gateway(EraServer::TsDual);
}

#[test]
fn ts_dual_through_bridge() {
    check_bridge(EraServer::TsDual, Path::Bridge);
}

#[test]
fn ts_dual_through_bridge_and_gateway() {
    check_bridge(EraServer::TsDual, Path::BridgeGateway);
}

// ---- TypeScript SDK v2, modern only (`legacy: 'reject'`) -----------------------------------

#[test]
fn ts_modern_only_direct() {
    check_direct(EraServer::TsModernOnly);
}

#[test]
fn ts_modern_only_through_gateway() {
    check_gateway(EraServer::TsModernOnly);
}

#[test]
fn ts_modern_only_through_bridge() {
    check_bridge(EraServer::TsModernOnly, Path::Bridge);
}

#[test]
fn ts_modern_only_through_bridge_and_gateway() {
    check_bridge(EraServer::TsModernOnly, Path::BridgeGateway);
}

// ---- Python SDK 2.3, dual ------------------------------------------------------------------

#[test]
fn py_dual_direct() {
    check_direct(EraServer::PyDual);
}

#[test]
fn py_dual_through_gateway() {
    check_gateway(EraServer::PyDual);
}

#[test]
fn py_dual_through_bridge() {
    check_bridge(EraServer::PyDual, Path::Bridge);
}

#[test]
fn py_dual_through_bridge_and_gateway() {
    check_bridge(EraServer::PyDual, Path::BridgeGateway);
}

// ---- Python SDK 2.3, modern only -----------------------------------------------------------

#[test]
fn py_modern_only_direct() {
    check_direct(EraServer::PyModernOnly);
}

#[test]
fn py_modern_only_through_gateway() {
    check_gateway(EraServer::PyModernOnly);
}

#[test]
fn py_modern_only_through_bridge() {
    check_bridge(EraServer::PyModernOnly, Path::Bridge);
}

#[test]
fn py_modern_only_through_bridge_and_gateway() {
    check_bridge(EraServer::PyModernOnly, Path::BridgeGateway);
}
