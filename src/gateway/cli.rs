//! `mcp-operator gateway`: command-line arguments and entry point.

/// Arguments of `mcp-operator gateway`.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {}

/// Runs the gateway until SIGTERM.
pub fn run(_args: &GatewayArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
