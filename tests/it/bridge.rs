//! Bridge tests: stdio peers served over Streamable HTTP by `mcp-operator bridge` (the real
//! binary), and a legacy SSE server served through `mcp_http::sse_upstream` in-process.
//!
//! [`client`] is a small Streamable HTTP client (reqwest) that shows exactly which
//! messages reach which session.

pub mod client;
mod crash;
mod eras;
mod per_session;
mod routing;
mod sessions;
mod sse_upstream;
mod third_party;

use std::process::Command;
use std::time::Duration;

use crate::support::{self, PeerProcess};

/// A running `mcp-operator bridge`; killed on drop.
pub struct Bridge {
    pub peer: PeerProcess,
}

impl Bridge {
    /// Starts the bridge on a free port with `flags`, serving `cmd` (after `--`), and waits
    /// until `/readyz` says the process is initialized.
    pub fn start(flags: &[&str], cmd: &[String], env: &[(&str, &str)]) -> Bridge {
        let port = support::free_port();
        let mut command = Command::new(bridge_bin());
        command
            .arg("bridge")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(flags)
            .arg("--")
            .args(cmd)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut bridge = Bridge {
            peer: PeerProcess::spawn("mcp-operator bridge", command, port),
        };
        bridge.wait_ready();
        bridge
    }

    fn wait_ready(&mut self) {
        let url = self.peer.url("/readyz");
        crate::support::eventually::eventually_blocking(
            "the bridge's /readyz to answer 2xx",
            Duration::from_secs(30),
            || {
                let ok = std::process::Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", &url])
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    Ok(())
                } else {
                    Err(format!("its output:\n{}", self.peer.output()))
                }
            },
        );
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        self.peer.url("/mcp")
    }

    /// One value from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = client::http_client()
            .get(self.peer.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
    }

    /// Polls `/metrics` until `name` satisfies `want` (at most 30 s).
    pub async fn wait_metric(&mut self, name: &str, want: impl Fn(u64) -> bool) -> u64 {
        crate::support::eventually::eventually(
            &format!("the bridge's metric {name} to reach the wanted value"),
            Duration::from_secs(30),
            async || {
                let value = self.metric(name).await;
                if want(value) {
                    Ok(value)
                } else {
                    Err(format!(
                        "{name} {value}; bridge output:\n{}",
                        self.peer.output()
                    ))
                }
            },
        )
        .await
    }
}

/// The `mcp-operator` binary the bridge tests run: `$MCP_OPERATOR_BRIDGE_BIN` when set (to
/// run the tests against another build, e.g. the one before a change), else this build's.
pub fn bridge_bin() -> std::ffi::OsString {
    std::env::var_os("MCP_OPERATOR_BRIDGE_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mcp-operator").into())
}

/// The command running `tests/peers/bridge_stdio_server.py` (echo, pid, slow, crash).
pub fn test_server_cmd() -> Vec<String> {
    vec![
        support::python().to_string_lossy().into_owned(),
        support::repo_path("tests/peers/bridge_stdio_server.py")
            .to_string_lossy()
            .into_owned(),
    ]
}

/// The command running server-everything on stdio.
pub fn everything_cmd() -> Vec<String> {
    let (node, args) = support::server_everything_stdio();
    std::iter::once(node).chain(args).collect()
}
