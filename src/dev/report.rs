//! What `mcp-operator dev` prints: how to point kubectl at the playground, then one line
//! per McpServer whenever its phase, tool count or URL changes — the URL being where a
//! client on this machine connects.

use std::{collections::BTreeMap, future::Future, path::Path};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};

use super::playground::Playground;
use crate::api::McpServer;

/// The start-up lines: API server, kubeconfig, logs, peers.
pub fn banner(playground: &Playground, kubeconfig: &Path, peers: Option<&Path>) {
    if playground.is_real_control_plane() {
        println!(
            "mcp-operator dev: API server {} (real etcd, kube-apiserver, kube-controller-manager; files in {}/control-plane)",
            playground.url(),
            playground.dir().display()
        );
    } else {
        println!(
            "mcp-operator dev: API server {} (in-memory, development only)",
            playground.url()
        );
    }
    println!(
        "  pods and logs: {}/pods/<namespace>/<pod>/logs/",
        playground.dir().display()
    );
    match peers {
        Some(p) => println!("  commands run with the pinned peers in {}", p.display()),
        None => println!(
            "  no .peers folder: npx/uvx download what the examples name (make peers avoids it)"
        ),
    }
    println!();
    println!("In another terminal:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get mcpservers");
    println!();
}

/// One line per server state change, until `stop` completes.
pub async fn follow(client: &Client, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let api: Api<McpServer> = Api::all(client.clone());
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            next = stream.next() => match next {
                Some(Ok(server)) => {
                    let key = format!("{}/{}", server.namespace().unwrap_or_default(), server.name_any());
                    let line = describe(&server);
                    if seen.get(&key) != Some(&line) {
                        println!("  {key:<32} {line}");
                        seen.insert(key, line);
                    }
                }
                Some(Err(error)) => tracing::debug!(%error, "watching McpServers"),
                None => return Ok(()),
            },
        }
    }
}

/// `Ready  13 tools  http://127.0.x.y:8080/mcp`, or the phase and the failing reason.
fn describe(server: &McpServer) -> String {
    let Some(status) = &server.status else {
        return "Pending".into();
    };
    let phase = status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Pending".into());
    let tools = status
        .tool_count
        .map(|n| format!("{n} tools"))
        .unwrap_or_default();
    let why = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status != "True")
        .map(|c| format!("{}: {}", c.reason, truncate(&c.message, 120)))
        .unwrap_or_default();
    let url = status.url.clone().unwrap_or_default();
    if why.is_empty() {
        format!("{phase:<12} {tools:<10} {url}")
    } else {
        format!("{phase:<12} {why}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
