//! `mcp-operator bridge`: command-line arguments and entry point.

/// Arguments of `mcp-operator bridge`.
#[derive(clap::Args, Debug)]
pub struct BridgeArgs {}

/// Runs the bridge until SIGTERM.
pub fn run(_args: &BridgeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
