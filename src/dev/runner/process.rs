//! One container's process on the host: started in a process group of its own (so `npx`,
//! the shell it starts and the server it runs are stopped together), output appended to
//! the container's log file, marked with [`POD_MARKER_ENV`] so tests can find every
//! descendant. Stopping sends SIGTERM to the group, then SIGKILL after a grace period;
//! dropping a [`Running`] kills the group. Signals go through `kill(1)`: the crate
//! forbids `unsafe`, and a signal to a process group needs it otherwise.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::process::{Child, Command};

use super::spec::ProcessSpec;

/// Environment variable naming the pod (`<namespace>/<pod>`) of every process the
/// runner starts; inherited by their children.
pub const POD_MARKER_ENV: &str = "MCP_OPERATOR_DEV_POD";

/// Environment variable holding the pid of the `mcp-operator dev` (or test) process that
/// started a process: [`reap_orphans`] kills what a session that died hard left behind.
pub const SESSION_ENV: &str = "MCP_OPERATOR_DEV_SESSION";

/// The pod's address, for the Node preload of [`crate::dev::host`].
pub const POD_IP_ENV: &str = "MCP_OPERATOR_DEV_POD_IP";

/// What every process of a pod is told about it.
pub struct PodEnv<'a> {
    /// The value of [`POD_MARKER_ENV`].
    pub marker: &'a str,
    pub ip: std::net::Ipv4Addr,
    /// Containers with a ServiceAccount token: a kubeconfig carrying it.
    pub kubeconfig: Option<&'a Path>,
}

/// Host variables a container does not inherit: they describe the developer's cluster
/// access, not the pod's.
const NOT_INHERITED: &[&str] = &[
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "NODE_OPTIONS",
];

/// How the host runs containers: PATH entries first on the PATH, the working directory
/// of containers without one, and extra variables.
#[derive(Clone, Debug, Default)]
pub struct HostEnv {
    pub path_prefix: Vec<PathBuf>,
    pub working_dir: Option<PathBuf>,
    /// Always set, after the container's own (e.g. NODE_OPTIONS with the bind preload).
    pub extra: Vec<(String, String)>,
    /// Set unless the container sets them.
    pub defaults: Vec<(String, String)>,
}

/// A started process.
pub struct Running {
    child: Child,
    pgid: Option<u32>,
}

/// Starts `spec` with `log` as stdout and stderr.
pub fn spawn(
    spec: &ProcessSpec,
    host: &HostEnv,
    pod: &PodEnv<'_>,
    log: &Path,
) -> std::io::Result<Running> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .process_group(0);
    for key in NOT_INHERITED {
        cmd.env_remove(key);
    }
    let mut path: Vec<PathBuf> = host.path_prefix.clone();
    path.extend(
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    if let Ok(joined) = std::env::join_paths(path) {
        cmd.env("PATH", joined);
    }
    for (k, v) in &host.defaults {
        if !spec.env.iter().any(|(name, _)| name == k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    for (k, v) in &host.extra {
        let value = match spec.env.iter().find(|(name, _)| name == k) {
            Some((_, own)) => format!("{own} {v}"),
            None => v.clone(),
        };
        cmd.env(k, value);
    }
    if let Some(kubeconfig) = pod.kubeconfig {
        cmd.env("KUBECONFIG", kubeconfig);
    }
    cmd.env(POD_MARKER_ENV, pod.marker);
    cmd.env(SESSION_ENV, std::process::id().to_string());
    cmd.env(POD_IP_ENV, pod.ip.to_string());
    if let Some(dir) = spec.working_dir.as_ref().or(host.working_dir.as_ref()) {
        cmd.current_dir(dir);
    }
    let child = cmd.spawn()?;
    let pgid = child.id();
    Ok(Running { child, pgid })
}

impl Running {
    /// The process id (also its group id).
    pub fn id(&self) -> Option<u32> {
        self.pgid
    }

    /// Waits for the process to exit; the rest of its group is killed then.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        self.signal_group("KILL");
        status
    }

    /// SIGTERM to the group; SIGKILL to what is left after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        self.signal_group("TERM");
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        self.signal_group("KILL");
        self.pgid = None;
    }

    fn signal_group(&self, signal: &str) {
        if let Some(pgid) = self.pgid {
            let _ = std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg("--")
                .arg(format!("-{pgid}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal_group("KILL");
    }
}

/// Kills processes started by sessions that are gone (killed with SIGKILL, say, so they
/// could not stop their pods); returns how many. Linux only (/proc), else 0.
pub fn reap_orphans() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let needle = format!("{SESSION_ENV}=");
    let mut reaped = 0;
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let session = environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(needle.as_bytes()))
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok());
        if let Some(session) = session
            && !Path::new(&format!("/proc/{session}")).exists()
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            reaped += 1;
        }
    }
    reaped
}

/// Pids of live processes carrying `marker` in [`POD_MARKER_ENV`] (Linux: /proc;
/// elsewhere always empty).
pub fn marked_processes(marker_prefix: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = format!("{POD_MARKER_ENV}={marker_prefix}");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            !zombie
                && environ
                    .split(|b| *b == 0)
                    .any(|kv| kv.starts_with(needle.as_bytes()))
        })
        .collect()
}
