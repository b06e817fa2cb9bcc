//! The `mcp-operator` command line: parses arguments and calls one function per subcommand.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-operator",
    version,
    about = "Kubernetes operator for MCP servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: controllers, prober, leader election, metrics and health.
    Run(mcp_operator::controller::run::RunArgs),
    /// Print the CustomResourceDefinitions (what crds/ holds) as YAML.
    Crd(mcp_operator::api::crd::CrdArgs),
    /// Probe an MCP server once: initialize, list tools/resources/prompts, print the inventory.
    Probe(mcp_operator::prober::cli::ProbeArgs),
    /// Run the gateway sidecar: authenticated, policy-enforcing MCP front door.
    Gateway(mcp_operator::gateway::cli::GatewayArgs),
    /// Serve a stdio MCP server as Streamable HTTP on loopback (one long-lived process).
    Bridge(mcp_operator::bridge::cli::BridgeArgs),
    /// Copy this binary into DIR (the init container of Stdio server pods).
    InstallBridge { dir: std::path::PathBuf },
    /// Local playground: embedded API server, the operator, and its pods run as local
    /// processes (development only).
    Dev(mcp_operator::dev::DevArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => mcp_operator::controller::run::run(&args),
        Command::Crd(args) => mcp_operator::api::crd::run(&args),
        Command::Probe(args) => mcp_operator::prober::cli::run(&args),
        Command::Gateway(args) => mcp_operator::gateway::cli::run(&args),
        Command::Bridge(args) => mcp_operator::bridge::cli::run(&args),
        Command::InstallBridge { dir } => mcp_operator::bridge::install::run(&dir),
        Command::Dev(args) => mcp_operator::dev::run(&args),
    }
}
