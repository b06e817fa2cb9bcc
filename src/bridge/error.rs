//! The bridge's error type: what can go wrong starting, initializing or talking to the
//! stdio server process.

/// Errors of the stdio bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The command could not be started.
    #[error("starting the MCP server process {program:?} failed: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// The process exited or closed stdout before its handshake (`server/discover` or
    /// `initialize`) was answered.
    #[error("the MCP server process ended before answering server/discover or initialize")]
    EndedDuringInitialize,
    /// The process did not finish its handshake in time.
    #[error("the MCP server process did not answer server/discover or initialize within {0:?}")]
    InitializeTimeout(std::time::Duration),
    /// The process answered `initialize` with an error.
    #[error("the MCP server process refused initialize: {0}")]
    InitializeRejected(String),
    /// Reading from or writing to the process failed.
    #[error("talking to the MCP server process failed: {0}")]
    Io(#[from] std::io::Error),
}
