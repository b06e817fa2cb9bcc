//! mcp-operator: a Kubernetes operator for MCP (Model Context Protocol) servers.
//!
//! The library holds everything; `main.rs` only parses the command line and calls one
//! function per subcommand. Module map (one line per submodule in docs/architecture.md; the
//! API contract in docs/api.md):
//! - [`api`]: the three CRD types, their admission rules and CRD generation.
//! - [`admission`]: checks a manifest the way the API server would (schema + CEL).
//! - [`apiserver`]: an embedded, in-memory Kubernetes API server for development and tests.
//! - [`prober`]: the MCP client side: connectivity tests and tool inventories.
//! - [`policy`]: policies merged into the effective policy; the per-tool decision.
//! - [`mcp_http`]: MCP over HTTP pieces shared by the gateway and the bridge.
//! - [`gateway`]: the sidecar front door: auth, policy, limits, audit, metrics.
//! - [`telemetry`]: logging setup.
//! - [`bridge`]: a stdio server kept alive and served over Streamable HTTP on loopback.
//! - [`controller`]: controllers for the three kinds; `controller::build` holds the pure builders.
//! - [`dev`]: `mcp-operator dev`, the local playground (API server, controller, pod runner).
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod apiserver;
pub mod bridge;
pub mod controller;
pub mod dev;
pub mod gateway;
pub mod mcp_http;
pub mod policy;
pub mod prober;
pub mod telemetry;
