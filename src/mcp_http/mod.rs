//! MCP over HTTP, the parts the gateway and the bridge share: JSON-RPC message
//! classification and error bodies ([`jsonrpc`]), the two protocol eras and their routing
//! headers ([`era`]), Streamable HTTP header names and
//! protocol versions, a Streamable HTTP server over any message-level backend
//! ([`streamable`]) and the legacy-SSE-upstream translation built on it ([`sse_upstream`]). No policy and no process handling live here.

pub mod era;
pub mod jsonrpc;
pub mod sse_upstream;
pub mod streamable;

/// Session header of the Streamable HTTP transport.
pub const SESSION_ID: &str = "mcp-session-id";
/// Negotiated protocol version header, sent by clients after initialize.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// SSE resumption header.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Protocol versions this code knows, oldest first. `initialize` answers negotiate within
/// these (see [`negotiate_version`]).
pub const KNOWN_PROTOCOL_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The version to answer a client's `initialize` with, when the server itself answered
/// `server_version` to the latest version we asked for: the client's version when it is a
/// known one not newer than the server's (servers keep supporting older versions), else
/// the server's (the client then decides whether it can continue).
pub fn negotiate_version(client_requested: Option<&str>, server_version: &str) -> String {
    let rank = |v: &str| KNOWN_PROTOCOL_VERSIONS.iter().position(|k| *k == v);
    match (client_requested.and_then(rank), rank(server_version)) {
        (Some(c), Some(s)) if c <= s => KNOWN_PROTOCOL_VERSIONS[c].to_string(),
        _ => server_version.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(
            negotiate_version(Some("2025-03-26"), "2025-11-25"),
            "2025-03-26"
        );
        assert_eq!(
            negotiate_version(Some("2026-07-28"), "2025-11-25"),
            "2025-11-25"
        );
        assert_eq!(
            negotiate_version(Some("1999-01-01"), "2025-11-25"),
            "2025-11-25"
        );
        assert_eq!(negotiate_version(None, "2025-06-18"), "2025-06-18");
    }
}
