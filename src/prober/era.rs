//! Which protocol era a probe speaks: [`EraPreference`] (`--era auto|legacy|modern`) and the
//! pure decision the official clients make after a `server/discover` probe fails
//! ([`after_discover`]).
//!
//! The rule is the Python SDK 2.3's (`mcp/client/_probe.py`), a *denylist*: anything that
//! is not positive evidence of a modern server falls back to the legacy `initialize`
//! handshake — every JSON-RPC error, every HTTP error status (the SDK's transport turns a
//! bare 4xx/5xx into a JSON-RPC error), a non-MCP answer, a result that is no
//! `DiscoverResult`, a `DiscoverResult` listing no modern version — except -32022 whose
//! `data.supported` names only versions of the modern era that we do not speak: that
//! server is modern-only and incompatible, and an `initialize` would only be refused too.
//! Network failures (refused, unreachable, TLS, a denied destination, a timeout) are never
//! an era verdict: they end the attempt as they are.
//!
//! The one retry at a mutual modern version after a -32022 happens inside rmcp's discover
//! start-up (it retries the same version once when the server lists it).

use serde::{Deserialize, Serialize};

use super::error::{ProbeError, ProbeErrorCode};
use crate::mcp_http::era::{Era, LATEST_LEGACY, LEGACY_VERSIONS, MODERN_VERSIONS};

pub use crate::api::server_status::ProtocolEra;

/// At most this many of a server's versions are kept (status) or quoted (messages).
pub const MAX_VERSIONS: usize = 16;
/// A version string longer than this is cut (known versions have 10 characters).
pub const MAX_VERSION_CHARS: usize = 32;

/// Which era(s) the probe may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EraPreference {
    /// `server/discover` first, `initialize` when the answer says "legacy server" (what
    /// the official SDK clients do by default).
    #[default]
    Auto,
    /// Only the `initialize` handshake (2025-11-25 and older).
    Legacy,
    /// Only `server/discover` (2026-07-28): a legacy-only server fails the probe.
    Modern,
}

impl EraPreference {
    /// As written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Legacy => "legacy",
            Self::Modern => "modern",
        }
    }
}

/// Status's name for an era.
pub fn status_era(era: Era) -> ProtocolEra {
    match era {
        Era::Legacy => ProtocolEra::Legacy,
        Era::Modern => ProtocolEra::Modern,
    }
}

/// What the modern probe's failure means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDiscover {
    /// No evidence of a modern server: try `initialize`. `discover` says why.
    Fallback { discover: ProbeError },
    /// Final: report this error.
    Fail(ProbeError),
}

/// How the `server/discover` probe failed, in the terms the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoverFailure {
    /// -32022 (or a discover result) naming the server's versions, none of which we speak.
    NoCommonVersion { server: Vec<String> },
    /// Anything else, already classified.
    Other(ProbeError),
}

/// The Python SDK's fallback rule (see the module docs). `tried` names the request.
pub fn after_discover(tried: &str, failure: DiscoverFailure) -> AfterDiscover {
    match failure {
        DiscoverFailure::NoCommonVersion { server } => {
            // As the Python SDK: a list naming a handshake version is a legacy
            // advertisement. An empty one says nothing: `initialize` will tell.
            let speaks_legacy = server.iter().any(|v| LEGACY_VERSIONS.contains(&v.as_str()));
            let error = no_common_version(tried, &server);
            if speaks_legacy || server.is_empty() {
                AfterDiscover::Fallback { discover: error }
            } else {
                AfterDiscover::Fail(error)
            }
        }
        DiscoverFailure::Other(error) => match error.code() {
            ProbeErrorCode::ConnectionFailed
            | ProbeErrorCode::Timeout
            | ProbeErrorCode::TlsError
            | ProbeErrorCode::DestinationDenied
            | ProbeErrorCode::InvalidUrl => AfterDiscover::Fail(error),
            ProbeErrorCode::AuthRequired
            | ProbeErrorCode::NotMcpServer
            | ProbeErrorCode::ProtocolError
            | ProbeErrorCode::ServerError => AfterDiscover::Fallback { discover: error },
        },
    }
}

/// `ProtocolError` naming what we offered and what the server supports.
pub fn no_common_version(tried: &str, server: &[String]) -> ProbeError {
    ProbeError::ProtocolError(format!(
        "{tried}: no common protocol version: the server supports {}; the prober speaks {}",
        quote_versions(server),
        ours().join(", ")
    ))
}

/// The `--era modern` failure against a server that gave no modern evidence.
pub fn not_modern(tried: &str, discover_error: &ProbeError) -> ProbeError {
    // The discover error starts with the same `tried`: say it once.
    let answer = discover_error.message();
    let answer = answer
        .strip_prefix(tried)
        .map(|rest| rest.trim_start_matches([':', ' ']))
        .unwrap_or(answer);
    ProbeError::ProtocolError(format!(
        "{tried}: the server does not speak the modern era ({}): {} ({answer}); probe with \
         --era auto or --era legacy",
        MODERN_VERSIONS.join(", "),
        discover_error.code(),
    ))
}

/// Every version the prober speaks, newest first.
pub fn ours() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .rev()
        .chain(LEGACY_VERSIONS.iter().rev())
        .copied()
        .collect()
}

/// The version `initialize` proposes.
pub const INITIALIZE_VERSION: &str = LATEST_LEGACY;

/// A server's versions as status keeps them: at most [`MAX_VERSIONS`], each at most
/// [`MAX_VERSION_CHARS`] characters (cut ones end with "…").
pub fn bound_versions(versions: &[String]) -> Vec<String> {
    versions
        .iter()
        .take(MAX_VERSIONS)
        .map(|v| super::inventory::cut_chars(v, MAX_VERSION_CHARS))
        .collect()
}

/// A server's versions for a message: only date-shaped strings are quoted (never other
/// server text), at most [`MAX_VERSIONS`].
pub fn quote_versions(versions: &[String]) -> String {
    let shown: Vec<String> = versions
        .iter()
        .take(MAX_VERSIONS)
        .map(|v| {
            if looks_like_a_version(v) {
                v.clone()
            } else {
                "(something else)".to_owned()
            }
        })
        .collect();
    let more = versions.len().saturating_sub(MAX_VERSIONS);
    match (shown.is_empty(), more) {
        (true, _) => "no version".to_owned(),
        (false, 0) => shown.join(", "),
        (false, n) => format!("{} and {n} more", shown.join(", ")),
    }
}

/// `YYYY-MM-DD`.
pub fn looks_like_a_version(v: &str) -> bool {
    v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_code(d: AfterDiscover) -> Option<ProbeErrorCode> {
        match d {
            AfterDiscover::Fallback { .. } => None,
            AfterDiscover::Fail(e) => Some(e.code()),
        }
    }

    fn versions(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_a_disjoint_modern_only_list_is_final() {
        let disjoint = DiscoverFailure::NoCommonVersion {
            server: versions(&["2099-01-01"]),
        };
        let AfterDiscover::Fail(e) = after_discover("server/discover", disjoint) else {
            panic!("a modern-only server we cannot speak to is final")
        };
        assert_eq!(e.code(), ProbeErrorCode::ProtocolError);
        assert!(e.message().contains("2099-01-01") && e.message().contains("2026-07-28"));
        assert!(e.message().contains("2025-11-25"), "{e}");
        // Versions we do not know and cannot read are no legacy advertisement either.
        let junk = DiscoverFailure::NoCommonVersion {
            server: versions(&["junk"]),
        };
        assert!(matches!(after_discover("d", junk), AfterDiscover::Fail(_)));
        // A list naming a legacy version, or none at all, is no proof of a modern server.
        for server in [vec!["2099-01-01", "2025-06-18"], vec![]] {
            let f = DiscoverFailure::NoCommonVersion {
                server: versions(&server),
            };
            assert_eq!(fail_code(after_discover("d", f)), None, "{server:?}");
        }
    }

    #[test]
    fn network_failures_are_never_an_era_verdict() {
        for code in ProbeErrorCode::ALL {
            let d = after_discover("d", DiscoverFailure::Other(ProbeError::new(code, "m")));
            let final_ = matches!(
                code,
                ProbeErrorCode::ConnectionFailed
                    | ProbeErrorCode::Timeout
                    | ProbeErrorCode::TlsError
                    | ProbeErrorCode::DestinationDenied
                    | ProbeErrorCode::InvalidUrl
            );
            assert_eq!(fail_code(d), final_.then_some(code), "{code}");
        }
    }

    #[test]
    fn versions_are_bounded_and_only_dates_are_quoted() {
        let many: Vec<String> = (0..40)
            .map(|i| format!("2030-01-{:02}", i % 28 + 1))
            .collect();
        assert_eq!(bound_versions(&many).len(), MAX_VERSIONS);
        let long = bound_versions(&["x".repeat(1000)]);
        assert_eq!(long[0].chars().count(), MAX_VERSION_CHARS);
        let quoted = quote_versions(&versions(&["2026-07-28", "<script>alert(1)</script>"]));
        assert_eq!(quoted, "2026-07-28, (something else)");
        assert!(quote_versions(&many).ends_with("and 24 more"));
        assert_eq!(ours()[0], "2026-07-28");
    }
}
