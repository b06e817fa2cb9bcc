//! The prober's one error type, [`ProbeError`], and its machine-readable [`ProbeErrorCode`].
//!
//! Each variant maps 1:1 to a code; the codes are the `Reachable` condition's False
//! reasons in docs/api.md and the `code` of `status.lastProbe`. Messages say what was tried
//! and what came back. They are built only from URLs, status codes, media types,
//! JSON-RPC error codes and header *names* — never from a request header value, and never
//! from a response body or a server's error message (those go to the log, see
//! `classify`): messages end up in status, which namespace users read.

use serde::{Deserialize, Serialize};

/// Why a probe failed, as a stable CamelCase code (`Timeout`, `TlsError`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProbeErrorCode {
    /// The target cannot be probed as given: not http(s), unparsable, empty command.
    InvalidUrl,
    /// Nothing answered: refused, unreachable, DNS failure, process did not start or died.
    ConnectionFailed,
    /// The attempt (connect + initialize + lists) did not finish within the timeout.
    Timeout,
    /// The TLS handshake failed: unknown CA, wrong name, expired certificate.
    TlsError,
    /// Reachable, but it wants credentials (HTTP 401/403).
    AuthRequired,
    /// It answers HTTP, but not MCP: HTML, wrong content type, no JSON-RPC.
    NotMcpServer,
    /// It speaks JSON-RPC badly: malformed messages, no common protocol version.
    ProtocolError,
    /// The server failed: HTTP 5xx or a JSON-RPC error on initialize or a list call.
    ServerError,
    /// The address to connect to is in a denied range (loopback, link-local, the API
    /// server, …): nothing was sent. Only probes under a destination policy (the operator's
    /// probes of remote servers) can fail this way.
    DestinationDenied,
}

impl ProbeErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ProbeErrorCode; 9] = [
        Self::InvalidUrl,
        Self::ConnectionFailed,
        Self::Timeout,
        Self::TlsError,
        Self::AuthRequired,
        Self::NotMcpServer,
        Self::ProtocolError,
        Self::ServerError,
        Self::DestinationDenied,
    ];

    /// The code as written in status and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUrl => "InvalidUrl",
            Self::ConnectionFailed => "ConnectionFailed",
            Self::Timeout => "Timeout",
            Self::TlsError => "TlsError",
            Self::AuthRequired => "AuthRequired",
            Self::NotMcpServer => "NotMcpServer",
            Self::ProtocolError => "ProtocolError",
            Self::ServerError => "ServerError",
            Self::DestinationDenied => "DestinationDenied",
        }
    }

    /// Whether another attempt may succeed without anyone changing anything.
    /// Only these codes are retried: ConnectionFailed, Timeout, ServerError.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::ConnectionFailed | Self::Timeout | Self::ServerError
        )
    }
}

impl std::fmt::Display for ProbeErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe attempt. `Display` is `"<Code>: <message>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// See [`ProbeErrorCode::InvalidUrl`].
    #[error("InvalidUrl: {0}")]
    InvalidUrl(String),
    /// See [`ProbeErrorCode::ConnectionFailed`].
    #[error("ConnectionFailed: {0}")]
    ConnectionFailed(String),
    /// See [`ProbeErrorCode::Timeout`].
    #[error("Timeout: {0}")]
    Timeout(String),
    /// See [`ProbeErrorCode::TlsError`].
    #[error("TlsError: {0}")]
    TlsError(String),
    /// See [`ProbeErrorCode::AuthRequired`].
    #[error("AuthRequired: {0}")]
    AuthRequired(String),
    /// See [`ProbeErrorCode::NotMcpServer`].
    #[error("NotMcpServer: {0}")]
    NotMcpServer(String),
    /// See [`ProbeErrorCode::ProtocolError`].
    #[error("ProtocolError: {0}")]
    ProtocolError(String),
    /// See [`ProbeErrorCode::ServerError`].
    #[error("ServerError: {0}")]
    ServerError(String),
    /// See [`ProbeErrorCode::DestinationDenied`].
    #[error("DestinationDenied: {0}")]
    DestinationDenied(String),
}

impl ProbeError {
    /// Builds the variant for `code`.
    pub fn new(code: ProbeErrorCode, message: impl Into<String>) -> Self {
        let m = message.into();
        match code {
            ProbeErrorCode::InvalidUrl => Self::InvalidUrl(m),
            ProbeErrorCode::ConnectionFailed => Self::ConnectionFailed(m),
            ProbeErrorCode::Timeout => Self::Timeout(m),
            ProbeErrorCode::TlsError => Self::TlsError(m),
            ProbeErrorCode::AuthRequired => Self::AuthRequired(m),
            ProbeErrorCode::NotMcpServer => Self::NotMcpServer(m),
            ProbeErrorCode::ProtocolError => Self::ProtocolError(m),
            ProbeErrorCode::ServerError => Self::ServerError(m),
            ProbeErrorCode::DestinationDenied => Self::DestinationDenied(m),
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ProbeErrorCode {
        match self {
            Self::InvalidUrl(_) => ProbeErrorCode::InvalidUrl,
            Self::ConnectionFailed(_) => ProbeErrorCode::ConnectionFailed,
            Self::Timeout(_) => ProbeErrorCode::Timeout,
            Self::TlsError(_) => ProbeErrorCode::TlsError,
            Self::AuthRequired(_) => ProbeErrorCode::AuthRequired,
            Self::NotMcpServer(_) => ProbeErrorCode::NotMcpServer,
            Self::ProtocolError(_) => ProbeErrorCode::ProtocolError,
            Self::ServerError(_) => ProbeErrorCode::ServerError,
            Self::DestinationDenied(_) => ProbeErrorCode::DestinationDenied,
        }
    }

    /// The human-readable message, without the code.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidUrl(m)
            | Self::ConnectionFailed(m)
            | Self::Timeout(m)
            | Self::TlsError(m)
            | Self::AuthRequired(m)
            | Self::NotMcpServer(m)
            | Self::ProtocolError(m)
            | Self::ServerError(m)
            | Self::DestinationDenied(m) => m,
        }
    }

    /// Whether the attempt may be retried (see [`ProbeErrorCode::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.code().is_transient()
    }

    /// The same error with `context` put in front of the message.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        let code = self.code();
        Self::new(code, format!("{context}: {}", self.message()))
    }
}

/// Wire form: `{"code": "Timeout", "message": "…"}`.
#[derive(Serialize, Deserialize)]
struct ProbeErrorRepr {
    code: ProbeErrorCode,
    message: String,
}

impl Serialize for ProbeError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProbeErrorRepr {
            code: self.code(),
            message: self.message().to_owned(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProbeError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = ProbeErrorRepr::deserialize(d)?;
        Ok(Self::new(r.code, r.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_variants_and_serde() {
        for code in ProbeErrorCode::ALL {
            let e = ProbeError::new(code, "m");
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), format!("{}: m", code.as_str()));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!(r#"{{"code":"{code}","message":"m"}}"#));
            assert_eq!(serde_json::from_str::<ProbeError>(&json).unwrap(), e);
            let code_json = serde_json::to_string(&code).unwrap();
            assert_eq!(code_json, format!("\"{code}\""));
        }
    }

    #[test]
    fn only_transient_codes_are_retried() {
        let transient: Vec<_> = ProbeErrorCode::ALL
            .into_iter()
            .filter(|c| c.is_transient())
            .collect();
        assert_eq!(
            transient,
            [
                ProbeErrorCode::ConnectionFailed,
                ProbeErrorCode::Timeout,
                ProbeErrorCode::ServerError
            ]
        );
    }
}
