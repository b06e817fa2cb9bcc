//! `mcp-operator dev`: the whole product on one machine, without a cluster. It starts the
//! embedded API server (development only), writes a kubeconfig, installs the CRDs, runs
//! the operator in-process, applies the given manifests and runs the pods the operator
//! creates as local processes, each pod on a loopback address of its own, so
//! `kubectl get mcpservers` shows real servers Ready with their tools and the printed URLs
//! work from this machine. Ctrl-C stops everything and leaves no process behind.
//!
//! Layout: [`playground`] everything wired together (also used by the end-to-end tests)
//! · [`runner`] the local pod runner · [`addresses`] loopback addresses of Services and
//! pods · [`host`] how container commands find the host's (pinned) tools ·
//! [`manifests`] `-f` · [`report`] what the terminal shows · [`control_plane`] real etcd,
//! kube-apiserver and kube-controller-manager instead of the embedded API server
//! (`--control-plane`). Nothing here is used by `mcp-operator run`.

pub mod addresses;
pub mod control_plane;
pub mod host;
pub mod manifests;
pub mod playground;
pub mod report;
pub mod runner;

use std::path::PathBuf;

use anyhow::Context as _;

use self::playground::{Playground, PlaygroundOptions};

/// Arguments of `mcp-operator dev`.
#[derive(clap::Args, Debug, Clone)]
pub struct DevArgs {
    /// Manifests to apply at start: files, or directories of *.yaml/*.yml/*.json
    /// (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "DIR|FILE")]
    pub files: Vec<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Directory for the kubeconfig, pod directories and logs (default: a new temporary
    /// directory, removed at exit).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Pinned peers folder whose node_modules and venv container commands use (default:
    /// $MCP_OPERATOR_PEERS, else ./.peers when it exists).
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// Also write the kubeconfig here.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Run on a real control plane instead of the embedded API server: the folder of the
    /// etcd, kube-apiserver and kube-controller-manager binaries `make control-plane`
    /// builds (.peers/control-plane/bin). Default: the embedded API server.
    #[arg(long = "control-plane", value_name = "BIN_DIR")]
    pub control_plane: Option<PathBuf>,
}

/// `mcp-operator dev`.
pub fn run(args: &DevArgs) -> anyhow::Result<()> {
    // The playground's own progress is what a newcomer wants to see, not every
    // reconcile: `warn` elsewhere unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mcp_operator::dev=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(args))
}

async fn serve(args: &DevArgs) -> anyhow::Result<()> {
    let temp = args
        .dir
        .is_none()
        .then(|| std::env::temp_dir().join(format!("mcp-operator-dev-{}", std::process::id())));
    let dir = args
        .dir
        .clone()
        .or_else(|| temp.clone())
        .context("a directory")?;
    let stop = shutdown_signal();
    let peers = host::peers_dir(args.peers.as_deref());
    let options = PlaygroundOptions {
        dir,
        operator_binary: std::env::current_exe().context("locating this executable")?,
        peers: peers.clone(),
    };
    let playground = match &args.control_plane {
        None => Playground::start(options).await?,
        Some(bin) => Playground::start_on_control_plane(options, bin).await?,
    };
    if let Some(path) = &args.kubeconfig {
        std::fs::copy(playground.kubeconfig(), path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| playground.kubeconfig().to_path_buf());
    report::banner(&playground, &kubeconfig, peers.as_deref());
    let result = async {
        let applied = playground.apply(&args.files, &args.namespace).await?;
        for a in &applied {
            println!("  applied {a}");
        }
        report::follow(&playground.client(), stop).await
    }
    .await;
    println!("stopping: pods, operator, API server");
    playground.stop().await;
    if let Some(temp) = temp {
        let _ = std::fs::remove_dir_all(temp);
    }
    result
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal during start-up is not lost (nor does it
/// kill the process before the pods are stopped).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}
