//! The gateway sidecar: the only open port of a server pod. Authenticates bearer tokens,
//! enforces the effective policy, limits and rate limits, audits every request and proxies
//! to the upstream MCP server (Streamable HTTP, or legacy SSE translated).
//! No Kubernetes client code lives here: configuration comes from a file.

pub mod cli;
pub mod config;
