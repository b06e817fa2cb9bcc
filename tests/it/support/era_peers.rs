//! The peers of the two protocol eras (see `mcp_operator::mcp_http::era`): servers that
//! speak only the legacy era (server-everything), both eras ("dual") or only 2026-07-28
//! ("modern-only"), on the TypeScript SDK v2 and the Python SDK 2.3, each over Streamable
//! HTTP ([`EraServer::http`]) and stdio ([`EraServer::stdio_cmd`]); and the clients that
//! negotiate an era ([`EraClient`]: the Python SDK 2.3 client, the TypeScript SDK v2 client,
//! the Inspector 2.x CLI), run to completion and parsed into a [`ClientRun`].
//!
//! The scripts live in `tests/peers/` (`ts_era_server.cjs`, `py_era_server.py`,
//! `ts_era_client.cjs`, `py_era_client.py`); the SDKs in the peers folder (`make peers`).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::peers::{PeerProcess, free_port, loopback_preload, node, peer_path, python, repo_path};

/// How long one client run may take before it is killed and reported as an error.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
/// At most this much of a client's output is kept.
const OUTPUT_LIMIT: usize = 1 << 20;

/// The pinned Node 22 (the TypeScript SDK v2 and the Inspector 2.x need it).
pub fn node22() -> String {
    peer_path("bin/node22").to_string_lossy().into_owned()
}

fn lossy(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// A server of a known era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EraServer {
    /// server-everything: legacy era only (`initialize`).
    Everything,
    /// TypeScript SDK v2, both eras (the SDK's default).
    TsDual,
    /// TypeScript SDK v2 with `legacy: 'reject'`.
    TsModernOnly,
    /// Python SDK 2.3 `MCPServer`, both eras (the SDK's default).
    PyDual,
    /// Python SDK 2.3 `MCPServer` refusing the handshake with -32022 (a middleware: the SDK
    /// has no switch).
    PyModernOnly,
}

impl EraServer {
    pub const ALL: [EraServer; 5] = [
        EraServer::Everything,
        EraServer::TsDual,
        EraServer::TsModernOnly,
        EraServer::PyDual,
        EraServer::PyModernOnly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EraServer::Everything => "server-everything (legacy)",
            EraServer::TsDual => "ts dual",
            EraServer::TsModernOnly => "ts modern-only",
            EraServer::PyDual => "py dual",
            EraServer::PyModernOnly => "py modern-only",
        }
    }

    /// The command line serving this server on stdio (program first).
    pub fn stdio_cmd(self) -> Vec<String> {
        let ts = |extra: &[&str]| {
            let mut v = vec![node22(), lossy(repo_path("tests/peers/ts_era_server.cjs"))];
            v.push("stdio".into());
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        let py = |config: &str| {
            vec![
                lossy(python()),
                lossy(repo_path("tests/peers/py_era_server.py")),
                config.into(),
                "stdio".into(),
            ]
        };
        match self {
            EraServer::Everything => {
                let (node, args) = super::peers::server_everything_stdio();
                std::iter::once(node).chain(args).collect()
            }
            EraServer::TsDual => ts(&[]),
            EraServer::TsModernOnly => ts(&["--modern-only"]),
            EraServer::PyDual => py("dual"),
            EraServer::PyModernOnly => py("modern-only"),
        }
    }

    /// Starts the server on Streamable HTTP (127.0.0.1, path `/mcp`) and waits for its port.
    pub fn http(self) -> PeerProcess {
        let port = free_port();
        let mut cmd;
        match self {
            EraServer::Everything => {
                cmd = Command::new(node());
                cmd.arg("--require")
                    .arg(loopback_preload())
                    .arg(super::peers::server_everything_js())
                    .arg("streamableHttp");
            }
            EraServer::TsDual | EraServer::TsModernOnly => {
                cmd = Command::new(node22());
                cmd.arg(repo_path("tests/peers/ts_era_server.cjs"))
                    .arg("http");
                if self == EraServer::TsModernOnly {
                    cmd.arg("--modern-only");
                }
            }
            EraServer::PyDual | EraServer::PyModernOnly => {
                cmd = Command::new(python());
                let config = if self == EraServer::PyDual {
                    "dual"
                } else {
                    "modern-only"
                };
                cmd.arg(repo_path("tests/peers/py_era_server.py"))
                    .args([config, "streamable-http"])
                    .arg(port.to_string());
            }
        }
        cmd.env("PORT", port.to_string());
        PeerProcess::spawn(self.name(), cmd, port)
    }

    /// A tool call every era of this server answers, and the text its result starts with.
    /// Our own servers' call carries an `x-mcp-header` argument (`Mcp-Param-Region`).
    pub fn sample_call(self) -> ToolCall {
        match self {
            EraServer::Everything => ToolCall {
                tool: "get-sum",
                args: json!({"a": 2, "b": 3}),
            },
            _ => ToolCall {
                tool: "region_echo",
                args: json!({"region": "eu-west", "text": "hi"}),
            },
        }
    }
}

/// A tool and its arguments.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub tool: &'static str,
    pub args: Value,
}

/// Where a client connects.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A Streamable HTTP endpoint.
    Url(&'a str),
    /// A stdio server the client starts itself (program first).
    Stdio(&'a [String]),
}

/// A client and the era it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EraClient {
    /// Python SDK 2.3 `Client(mode="auto")`: `server/discover`, `initialize` as the fallback.
    PythonAuto,
    /// Python SDK 2.3 `Client(mode="2026-07-28")`: modern, no probe, no fallback.
    PythonPinned,
    /// Python SDK 2.3 `Client(mode="legacy")`.
    PythonLegacy,
    /// TypeScript SDK v2 client, `versionNegotiation: {mode: 'auto'}`.
    TsAuto,
    /// TypeScript SDK v2 client, `versionNegotiation: {mode: {pin: '2026-07-28'}}`.
    TsPinned,
    /// TypeScript SDK v2 client, `versionNegotiation: {mode: 'legacy'}`.
    TsLegacy,
    /// Inspector 2.x CLI, `--protocol-era modern`.
    InspectorModern,
    /// Inspector 2.x CLI, `--protocol-era legacy`.
    InspectorLegacy,
    /// Inspector 2.x CLI, `--protocol-era auto`.
    InspectorAuto,
}

/// What one client run saw: the negotiated version and tool names, the call's result, or
/// the error that stopped it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRun {
    pub protocol_version: Option<String>,
    pub tools: Vec<String>,
    /// The tools/call result (when a call was asked for).
    pub result: Option<Value>,
    /// Why the run failed (client's own message), `None` when it worked.
    pub error: Option<String>,
}

impl ClientRun {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.protocol_version.is_some()
    }

    /// The text of the call result's first content item.
    pub fn result_text(&self) -> Option<&str> {
        self.result
            .as_ref()?
            .get("content")?
            .get(0)?
            .get("text")?
            .as_str()
    }

    fn failed(error: String) -> ClientRun {
        ClientRun {
            protocol_version: None,
            tools: vec![],
            result: None,
            error: Some(error),
        }
    }
}

impl EraClient {
    pub fn name(self) -> &'static str {
        match self {
            EraClient::PythonAuto => "py auto",
            EraClient::PythonPinned => "py 2026-07-28",
            EraClient::PythonLegacy => "py legacy",
            EraClient::TsAuto => "ts auto",
            EraClient::TsPinned => "ts 2026-07-28",
            EraClient::TsLegacy => "ts legacy",
            EraClient::InspectorModern => "inspector modern",
            EraClient::InspectorLegacy => "inspector legacy",
            EraClient::InspectorAuto => "inspector auto",
        }
    }

    /// Connects, lists tools and (with `call`) calls one; never panics on a client failure
    /// (that is a [`ClientRun`] with `error`), only on a broken test set-up.
    pub fn run(self, target: Target<'_>, call: Option<&ToolCall>) -> ClientRun {
        match self {
            EraClient::PythonAuto => sdk_client(python_driver(), "auto", target, call),
            EraClient::PythonPinned => sdk_client(python_driver(), "2026-07-28", target, call),
            EraClient::PythonLegacy => sdk_client(python_driver(), "legacy", target, call),
            EraClient::TsAuto => sdk_client(ts_driver(), "auto", target, call),
            EraClient::TsPinned => sdk_client(ts_driver(), "2026-07-28", target, call),
            EraClient::TsLegacy => sdk_client(ts_driver(), "legacy", target, call),
            EraClient::InspectorModern => inspector(target, "modern", call),
            EraClient::InspectorLegacy => inspector(target, "legacy", call),
            EraClient::InspectorAuto => inspector(target, "auto", call),
        }
    }
}

fn python_driver() -> Vec<String> {
    vec![
        lossy(python()),
        lossy(repo_path("tests/peers/py_era_client.py")),
    ]
}

fn ts_driver() -> Vec<String> {
    vec![node22(), lossy(repo_path("tests/peers/ts_era_client.cjs"))]
}

/// The SDK client drivers share one command line: `MODE URL|stdio [TOOL ARGS] [-- CMD]`,
/// and print one JSON line.
fn sdk_client(
    driver: Vec<String>,
    mode: &str,
    target: Target<'_>,
    call: Option<&ToolCall>,
) -> ClientRun {
    let mut cmd = Command::new(&driver[0]);
    cmd.args(&driver[1..]).arg(mode);
    match target {
        Target::Url(url) => cmd.arg(url),
        Target::Stdio(_) => cmd.arg("stdio"),
    };
    if let Some(call) = call {
        cmd.arg(call.tool).arg(call.args.to_string());
    }
    if let Target::Stdio(server) = target {
        cmd.arg("--").args(server);
    }
    let (_, stdout, stderr) = run_bounded(cmd);
    let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
        return ClientRun::failed(format!(
            "no JSON line; stdout: {stdout}; stderr: {}",
            tail(&stderr)
        ));
    };
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return ClientRun::failed(format!("bad JSON line ({e}): {line}")),
    };
    if let Some(error) = v.get("error") {
        return ClientRun::failed(
            error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned),
        );
    }
    ClientRun {
        protocol_version: v["protocolVersion"].as_str().map(str::to_owned),
        tools: names(&v["tools"]),
        result: v.get("result").cloned(),
        error: None,
    }
}

fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().or_else(|| t["name"].as_str()).map(str::to_owned))
        .collect()
}

/// The Inspector 2.x CLI answers one method per run: `initialize` (its result carries the
/// negotiated `protocolVersion`), then `tools/list`, then `tools/call`.
fn inspector(target: Target<'_>, era: &str, call: Option<&ToolCall>) -> ClientRun {
    let run = |method_args: &[&str]| -> Result<Value, String> {
        let mut cmd = Command::new(node22());
        cmd.arg(peer_path(
            "node_modules/mcp-inspector-2/clients/launcher/build/index.js",
        ))
        .arg("--cli")
        .args(["--protocol-era", era, "--format", "json", "-q"])
        .args(method_args);
        match target {
            Target::Url(url) => cmd.arg(url).args(["--transport", "http"]),
            Target::Stdio(server) => cmd.arg("--").args(server),
        };
        let (_, stdout, stderr) = run_bounded(cmd);
        let parsed = serde_json::from_str::<Value>(stdout.trim())
            .or_else(|_| serde_json::from_str::<Value>(stderr.trim()));
        match parsed {
            Ok(v) if v.get("result").is_some() => Ok(v["result"].clone()),
            Ok(v) => Err(v["error"]["message"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_owned)),
            Err(_) => Err(format!(
                "no JSON; stdout: {}; stderr: {}",
                tail(&stdout),
                tail(&stderr)
            )),
        }
    };
    let init = match run(&["--method", "initialize"]) {
        Ok(v) => v,
        Err(e) => return ClientRun::failed(e),
    };
    let tools = match run(&["--method", "tools/list"]) {
        Ok(v) => names(&v["tools"]),
        Err(e) => return ClientRun::failed(format!("tools/list: {e}")),
    };
    let result = match call {
        None => None,
        Some(call) => {
            let args = call.args.to_string();
            match run(&[
                "--method",
                "tools/call",
                "--tool-name",
                call.tool,
                "--tool-args-json",
                &args,
            ]) {
                Ok(v) => Some(v),
                Err(e) => return ClientRun::failed(format!("tools/call: {e}")),
            }
        }
    };
    ClientRun {
        protocol_version: init["protocolVersion"].as_str().map(str::to_owned),
        tools,
        result,
        error: None,
    }
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// Runs `cmd` to completion within [`CLIENT_DEADLINE`] (killed after), keeping at most
/// [`OUTPUT_LIMIT`] bytes of each stream. Returns (exited successfully, stdout, stderr).
fn run_bounded(mut cmd: Command) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e} (run `make peers`?)"));
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut r).take(OUTPUT_LIMIT as u64).read_to_end(&mut buf);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let status =
        super::eventually::poll_blocking(CLIENT_DEADLINE, || child.try_wait().ok().flatten()).ok();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let Some(status) = status else {
        // Not joined: a grandchild (a stdio server) may still hold the pipes open.
        return (
            false,
            String::new(),
            format!("(killed after {CLIENT_DEADLINE:?})"),
        );
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    (status.success(), stdout, stderr)
}
