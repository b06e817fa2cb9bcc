//! The stdio bridge: keeps a stdio MCP server process alive and serves it as Streamable
//! HTTP on loopback, multiplexing sessions (Shared) or handing each session a warm process
//! (PerSession). The HTTP session handling is the shared
//! [`crate::mcp_http::streamable`] server; this module only supplies processes.
//!
//! Layout: [`cli`] arguments and runtime · [`server`] routes, health, metrics, shutdown ·
//! [`backend`] Shared and PerSession backends, warm pool · [`mux`] id/progress/cancel
//! mapping between sessions and one process · [`supervisor`] restarts with backoff ·
//! [`child`] spawning, stdin writer, stderr to the log, the era-finding handshake ·
//! [`eras`] translation between a client's protocol era and the child's ·
//! [`lines`] the bounded line reader for the child's pipes · [`metrics`] process counters ·
//! [`error`] the error type. No Kubernetes code and no policy live here.

pub mod backend;
pub mod child;
pub mod cli;
pub mod eras;
pub mod error;
pub mod install;
pub mod lines;
pub mod metrics;
pub mod mux;
pub mod server;
pub mod supervisor;
