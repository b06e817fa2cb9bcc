//! Child-process peers: [`PeerProcess`] (killed and reaped on drop), [`free_port`],
//! [`wait_for_port`], and where the pinned peers live (`MCP_OPERATOR_PEERS`, default
//! `<crate>/.peers`).

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The peers folder: `$MCP_OPERATOR_PEERS`, else `<CARGO_MANIFEST_DIR>/.peers`.
pub fn peers_dir() -> PathBuf {
    std::env::var_os("MCP_OPERATOR_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers"))
}

/// `rel` under the peers folder; panics with "run `make peers`" when it is missing.
pub fn peer_path(rel: &str) -> PathBuf {
    let p = peers_dir().join(rel);
    assert!(
        p.exists(),
        "test peer {} is missing: run `make peers` (or set MCP_OPERATOR_PEERS)",
        p.display()
    );
    p
}

/// A file shipped in the repository, relative to the crate root.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// server-everything's entry point.
pub fn server_everything_js() -> PathBuf {
    peer_path("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// The Python interpreter of the peers venv (with `mcp` installed).
pub fn python() -> PathBuf {
    peer_path("venv/bin/python")
}

/// `node` on PATH (Node 20 is enough for server-everything), else the pinned Node 22.
pub fn node() -> PathBuf {
    let on_path = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        PathBuf::from("node")
    } else {
        peer_path("bin/node22")
    }
}

/// The preload that forces Node servers onto 127.0.0.1.
pub fn loopback_preload() -> PathBuf {
    repo_path("tests/it/support/loopback.cjs")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    super::eventually::poll_blocking(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    })
    .is_ok()
}

/// A peer process; killed and reaped on drop. Output goes to a log file that is quoted
/// when the peer fails to come up.
pub struct PeerProcess {
    child: Child,
    /// The TCP port it listens on (0 for stdio peers).
    pub port: u16,
    name: String,
    log: tempfile::NamedTempFile,
}

impl PeerProcess {
    /// Starts `cmd` (stdout/stderr to a log) and, when `port` is not 0, waits for it to listen.
    pub fn spawn(name: &str, mut cmd: Command, port: u16) -> PeerProcess {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let out = log.reopen().expect("log file");
        let err = log.reopen().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting peer {name}: {e} (run `make peers`?)"));
        let mut peer = PeerProcess {
            child,
            port,
            name: name.to_owned(),
            log,
        };
        if port != 0 && !wait_for_port(port, Duration::from_secs(20)) {
            panic!(
                "peer {name} did not listen on 127.0.0.1:{port}; its output:\n{}",
                peer.output()
            );
        }
        if let Ok(Some(status)) = peer.child.try_wait() {
            panic!(
                "peer {name} exited with {status}; its output:\n{}",
                peer.output()
            );
        }
        peer
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the peer printed so far.
    pub fn output(&mut self) -> String {
        let mut s = String::new();
        let _ = self.log.reopen().and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// The peer's process id (to read `/proc/<pid>/status` in memory tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The peer's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// server-everything in `streamableHttp` (path `/mcp`) or `sse` (path `/sse`) mode.
pub fn server_everything(mode: &str) -> PeerProcess {
    let port = free_port();
    let mut cmd = Command::new(node());
    cmd.arg("--require")
        .arg(loopback_preload())
        .arg(server_everything_js())
        .arg(mode)
        .env("PORT", port.to_string());
    PeerProcess::spawn(&format!("server-everything {mode}"), cmd, port)
}

/// The command line that runs server-everything on stdio.
pub fn server_everything_stdio() -> (String, Vec<String>) {
    (
        node().to_string_lossy().into_owned(),
        vec![
            server_everything_js().to_string_lossy().into_owned(),
            "stdio".into(),
        ],
    )
}

/// The Python SDK test server (`tests/peers/py_server.py`) in `streamable-http`,
/// `stateless-json` (path `/mcp`) or `sse` (path `/sse`) mode.
pub fn python_server(mode: &str) -> PeerProcess {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(repo_path("tests/peers/py_server.py"))
        .arg(mode)
        .arg(port.to_string());
    PeerProcess::spawn(&format!("python sdk server {mode}"), cmd, port)
}

/// Tool names as the official Python client lists them (`tests/peers/py_list_tools.py`),
/// `transport` is `streamable-http`, `sse`, or `stdio` (then `target` is ignored and
/// `stdio_cmd` is run).
pub fn python_client_tools(target: &str, transport: &str, stdio_cmd: &[String]) -> Vec<String> {
    let out = Command::new(python())
        .arg(repo_path("tests/peers/py_list_tools.py"))
        .arg(target)
        .arg(transport)
        .args(stdio_cmd)
        .output()
        .expect("running py_list_tools.py");
    assert!(
        out.status.success(),
        "py_list_tools.py {target} {transport} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("py_list_tools.py JSON");
    v["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_owned())
        .collect()
}
