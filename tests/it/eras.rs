//! The two MCP protocol eras end to end, with real peers (`support::era_peers`): our own
//! small servers on the TypeScript SDK v2 and the Python SDK 2.3 (dual and modern-only),
//! server-everything (legacy only), and the clients that negotiate an era (Python SDK 2.3,
//! TypeScript SDK v2, Inspector 2.x). `peers` shows each peer does what its name says;
//! `matrix` runs every client against every server directly, through the gateway, the
//! bridge and bridge + gateway.

mod conformance;
mod matrix;
mod peers;
