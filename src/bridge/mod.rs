//! The stdio bridge: keeps a stdio MCP server process alive and serves it as Streamable
//! HTTP on loopback, multiplexing sessions (Shared) or handing each session a warm process
//! (PerSession).

pub mod cli;
