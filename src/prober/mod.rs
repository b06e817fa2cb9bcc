//! The prober: the MCP *client* side of the operator. It connects to a server (Streamable
//! HTTP through rmcp, legacy HTTP+SSE through our own small transport, or a stdio process),
//! negotiates the protocol era (`server/discover` first, `initialize` as the fallback, see
//! [`era`]), runs the list calls, and turns the answer into a [`ToolInventory`]
//! shaped like `McpServer.status`, or a [`ProbeError`] with one code from docs/api.md.
//!
//! Layout: [`target`] what to probe · [`destination`] where it may connect · [`era`] which protocol era · [`tls`] trust settings · [`session`] one attempt · [`lifecycle`] discover / initialize ·
//! [`sse`] the legacy transport · [`classify`] error → code · [`run`] retries and bounded
//! concurrency · [`inventory`] hashing and truncation · [`diff`] tool changes ·
//! [`output`] / [`cli`] the `probe` subcommand · [`call`] its `--call`.
//!
//! What must not live here: Kubernetes clients or status writes (the controller calls
//! [`probe`] / [`probe_many`] and writes status), gateway/server-side MCP code.

pub mod call;
pub mod classify;
pub mod cli;
pub mod destination;
pub mod diff;
pub mod era;
pub mod error;
pub mod inventory;
pub mod lifecycle;
pub mod output;
pub mod run;
pub mod session;
pub mod sse;
pub mod target;
pub mod tls;

pub use destination::{Cidr, CidrList, DestinationPolicy};
pub use diff::InventoryDiff;
pub use era::{EraPreference, ProtocolEra};
pub use error::{ProbeError, ProbeErrorCode};
pub use inventory::{ServerCapabilities, ServerInfo, ToolInventory, ToolSummary};
pub use run::{
    ProbeOptions, ProbeOutcome, ProbeReport, probe, probe_all, probe_many, probe_many_shared,
};
pub use target::{Header, HttpTarget, ProbeTarget, StdioTarget, TlsOptions, TransportKind};
