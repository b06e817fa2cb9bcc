//! Error classification: what went wrong in transport/client terms → one [`ProbeError`].
//!
//! The pure part ([`from_http_status`], [`auth_hint`], [`from_jsonrpc_error`]) maps
//! observations (status, content type, challenge, JSON-RPC error) to codes. The rest walks
//! error chains from reqwest, rustls and rmcp and calls the pure part. Messages name what
//! was tried (`tried`, e.g. `"initialize: POST http://h/mcp"`) and what came back.
//!
//! Messages reach status, which every namespace user may read, so a probe aimed at an
//! internal service must not turn it into a way to read that service's answers: a message
//! holds HTTP status codes, media types, JSON-RPC error codes, JSON positions and the
//! `WWW-Authenticate` scheme and parameters (sanitised), never a response body, a server's
//! error message or text parsed out of either. Those go to the log ([`log_detail`], at
//! most [`LOG_DETAIL_BYTES`]), where the operator's administrators can read them.

use std::error::Error as StdError;

use rmcp::ErrorData;
use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError,
};

use super::error::ProbeError;
use super::inventory::truncate_chars;

/// Bound on a challenge parameter quoted in a message.
const QUOTE_CHARS: usize = 200;
/// Bound on server text written to the log.
pub const LOG_DETAIL_BYTES: usize = 2048;
/// Bound on a media type quoted in a message.
const MEDIA_TYPE_CHARS: usize = 64;

/// Logs what a server said (a body, an error message) for the operator's administrators;
/// never put into a [`ProbeError`] message.
pub fn log_detail(tried: &str, what: &str, detail: &str) {
    let detail = detail.trim();
    if detail.is_empty() {
        return;
    }
    let detail = super::inventory::truncate_bytes(detail, LOG_DETAIL_BYTES);
    tracing::info!(
        tried,
        what,
        detail,
        "probe: server answer (not shown in status)"
    );
}

/// The media type of a `Content-Type` value (no parameters), if it looks like one.
fn media_type(content_type: Option<&str>) -> Option<String> {
    let t = content_type?.split(';').next()?.trim();
    let ok = !t.is_empty()
        && t.chars().count() <= MEDIA_TYPE_CHARS
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/+-.!#$&^_".contains(c));
    Some(if ok {
        t.to_ascii_lowercase()
    } else {
        "an unrecognised content type".to_owned()
    })
}

/// A failed HTTP exchange that returned a status: which code and what to say.
pub fn from_http_status(
    tried: &str,
    status: u16,
    content_type: Option<&str>,
    body_preview: &str,
    www_authenticate: Option<&str>,
) -> ProbeError {
    // Unknown when rmcp reports the status alone: then say nothing about it.
    let ct = media_type(content_type)
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    log_detail(tried, &format!("HTTP {status} body"), body_preview);
    match status {
        401 | 403 => {
            let hint = www_authenticate
                .map(|h| format!("; {}", auth_hint(h)))
                .unwrap_or_default();
            ProbeError::AuthRequired(format!(
                "{tried} answered HTTP {status}: the server wants credentials{hint}; \
                 send them with --header NAME=VALUE (remote.headersFrom in an McpServer)"
            ))
        }
        // 501 Not Implemented: a web server that does not take POST here, not a failing MCP
        // server (405 falls through to the same verdict below).
        501 => ProbeError::NotMcpServer(format!(
            "{tried} answered HTTP 501{ct}: the server does not implement POST here, not MCP"
        )),
        500..=599 | 429 => ProbeError::ServerError(format!("{tried} answered HTTP {status}{ct}")),
        300..=399 => ProbeError::NotMcpServer(format!(
            "{tried} answered a redirect (HTTP {status}); redirects are not followed, \
             probe the final URL instead"
        )),
        _ => ProbeError::NotMcpServer(format!("{tried} answered HTTP {status}{ct}, not MCP")),
    }
}

/// A 2xx answer with a content type that is neither JSON nor an event stream.
pub fn from_content_type(tried: &str, content_type: Option<&str>, expected: &str) -> ProbeError {
    ProbeError::NotMcpServer(format!(
        "{tried} answered with Content-Type {}, expected {expected}",
        media_type(content_type).unwrap_or_else(|| "(none)".to_owned())
    ))
}

/// The useful part of a `WWW-Authenticate` challenge: scheme, `resource_metadata`
/// (where OAuth protected-resource metadata lives), `scope`, `error`.
pub fn auth_hint(www_authenticate: &str) -> String {
    let scheme = www_authenticate.split_whitespace().next().unwrap_or("");
    let mut parts = vec![format!("WWW-Authenticate scheme {}", printable(scheme, 32))];
    for key in ["resource_metadata", "scope", "error"] {
        if let Some(v) = auth_param(www_authenticate, key) {
            parts.push(format!("{key}={}", printable(&v, QUOTE_CHARS)));
        }
    }
    parts.join(", ")
}

/// `s` cut to `max` characters, with anything but printable ASCII replaced by `?`.
fn printable(s: &str, max: usize) -> String {
    truncate_chars(s, max)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The value of `key=value` or `key="value"` in a challenge (case-insensitive key).
fn auth_param(header: &str, key: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(key) {
        let start = from + pos;
        let before_ok = start == 0 || matches!(lower.as_bytes()[start - 1], b' ' | b',' | b'\t');
        let after = &header[start + key.len()..];
        let after_trim = after.trim_start();
        if before_ok && after_trim.starts_with('=') {
            let v = after_trim[1..].trim_start();
            let value = match v.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or(""),
                None => v.split([',', ' ']).next().unwrap_or(""),
            };
            return Some(value.to_owned());
        }
        from = start + key.len();
    }
    None
}

/// JSON-RPC error codes that answer the request itself, not the server's state: asking
/// again gets the same answer, so they are `ProtocolError` (not retried), never
/// `ServerError`. Parse error, invalid request, method not found, invalid params, and the
/// modern era's header mismatch, missing client capability and unsupported version.
pub const DETERMINISTIC_CODES: [i32; 7] = [-32700, -32600, -32601, -32602, -32020, -32021, -32022];

/// A JSON-RPC error answer to `tried` (initialize, discover or a list call). The message
/// says the code (and, for -32022, the date-shaped versions the server supports) only;
/// the server's message and data are logged.
pub fn from_jsonrpc_error(tried: &str, error: &ErrorData) -> ProbeError {
    let text = format!("{tried} answered JSON-RPC error {}", error.code.0);
    let data = error
        .data
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    log_detail(
        tried,
        "JSON-RPC error",
        &format!("{} {data}", error.message),
    );
    let version_problem = error
        .message
        .to_ascii_lowercase()
        .contains("protocol version")
        || error
            .data
            .as_ref()
            .is_some_and(|d| d.get("supported").is_some());
    if error.code.0 == -32022 {
        let supported = error
            .data
            .as_ref()
            .and_then(|data| {
                crate::mcp_http::era::unsupported_version_list(&serde_json::json!({"data": data}))
            })
            .unwrap_or_default();
        ProbeError::ProtocolError(format!(
            "no common protocol version: {text}: the server supports {}",
            super::era::quote_versions(&supported)
        ))
    } else if version_problem {
        ProbeError::ProtocolError(format!("no common protocol version: {text}"))
    } else if DETERMINISTIC_CODES.contains(&error.code.0) {
        ProbeError::ProtocolError(format!("{text}; asking again cannot help"))
    } else {
        ProbeError::ServerError(text)
    }
}

/// An rmcp handshake failure.
pub fn from_init_error(tried: &str, err: &ClientInitializeError) -> ProbeError {
    use ClientInitializeError as E;
    match err {
        E::TransportError { error, .. } => from_chain(tried, error),
        E::JsonRpcError(e) => from_jsonrpc_error(tried, e),
        E::NoCompatibleProtocolVersion {
            client_supported,
            server_supported,
        } => {
            log_detail(
                tried,
                "server protocol versions",
                &format!("{server_supported:?}"),
            );
            let server: Vec<String> = server_supported.iter().map(ToString::to_string).collect();
            let client: Vec<String> = client_supported.iter().map(ToString::to_string).collect();
            ProbeError::ProtocolError(format!(
                "{tried}: no common protocol version: the server supports {}; the prober \
                 offered {}",
                super::era::quote_versions(&server),
                client.join(", ")
            ))
        }
        E::ConnectionClosed(_) | E::Cancelled => ProbeError::ConnectionFailed(format!(
            "{tried}: the connection closed before the server answered"
        )),
        E::LegacyFallbackFailed { fallback, .. } => from_init_error(tried, fallback),
        E::ExpectedInitResponse(_) | E::ExpectedInitResult(_) => {
            log_detail(tried, "not an initialize result", &err.to_string());
            ProbeError::ProtocolError(format!(
                "{tried}: the answer to initialize is not an initialize result"
            ))
        }
        E::ConflictInitResponseId(..) | E::UncorrelatedErrorResponse { .. } => {
            ProbeError::ProtocolError(format!(
                "{tried}: the answer to initialize carries another request id"
            ))
        }
        other => unexpected(tried, other),
    }
}

/// An rmcp request failure after the handshake (a list call).
pub fn from_service_error(tried: &str, err: &ServiceError) -> ProbeError {
    match err {
        ServiceError::McpError(e) => from_jsonrpc_error(tried, e),
        ServiceError::TransportSend(e) => from_chain(tried, e),
        ServiceError::TransportClosed => ProbeError::ConnectionFailed(format!(
            "{tried}: the connection closed before the server answered"
        )),
        ServiceError::Timeout { timeout } => {
            ProbeError::Timeout(format!("{tried}: no answer within {timeout:?}"))
        }
        other => unexpected(tried, other),
    }
}

/// Any error chain: the first link that says what happened decides.
pub fn from_chain(tried: &str, root: &(dyn StdError + 'static)) -> ProbeError {
    // Our own verdict (a denied destination from the resolver) explains everything.
    if let Some(p) = chain(root).find_map(|c| c.downcast_ref::<ProbeError>()) {
        return p.clone();
    }
    // A TLS failure deep inside (e.g. in an io::Error) explains everything above it.
    if let Some(tls) = chain(root).find_map(|c| c.downcast_ref::<rustls::Error>()) {
        return ProbeError::TlsError(format!("{tried}: TLS handshake failed: {tls}"));
    }
    for e in chain(root) {
        if let Some(s) = e.downcast_ref::<StreamableHttpError<reqwest::Error>>()
            && let Some(p) = from_streamable(tried, s)
        {
            return p;
        }
        if let Some(a) = e.downcast_ref::<AuthRequiredError>() {
            return from_http_status(tried, 401, None, "", Some(&a.www_authenticate_header));
        }
        if let Some(a) = e.downcast_ref::<InsufficientScopeError>() {
            return from_http_status(tried, 403, None, "", Some(&a.www_authenticate_header));
        }
        if let Some(h) = e.downcast_ref::<HttpStatusError>() {
            return from_http_status(tried, h.status, None, "", None);
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            return from_reqwest(tried, r);
        }
        if let Some(j) = e.downcast_ref::<serde_json::Error>() {
            return malformed_json(tried, j);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return ProbeError::ConnectionFailed(format!("{tried}: {}", io.kind()));
        }
    }
    unexpected(tried, root)
}

/// A JSON (JSON-RPC) parse failure: where, not what (serde quotes the offending values).
pub fn malformed_json(tried: &str, e: &serde_json::Error) -> ProbeError {
    log_detail(tried, "malformed JSON", &e.to_string());
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    ProbeError::ProtocolError(format!(
        "{tried}: malformed JSON-RPC ({what} at line {} column {})",
        e.line(),
        e.column()
    ))
}

/// An error nothing above recognised: which kind, details to the log.
fn unexpected(tried: &str, e: &dyn std::fmt::Display) -> ProbeError {
    log_detail(tried, "unexpected error", &e.to_string());
    ProbeError::ProtocolError(format!(
        "{tried}: unexpected answer (details in the operator log)"
    ))
}

fn from_streamable(tried: &str, e: &StreamableHttpError<reqwest::Error>) -> Option<ProbeError> {
    use StreamableHttpError as S;
    Some(match e {
        S::Client(r) => from_reqwest(tried, r),
        // `HttpStatus` is `#[error(transparent)]`: its `source()` skips the status itself.
        S::HttpStatus(h) => from_http_status(tried, h.status, None, "", None),
        S::AuthRequired(a) => {
            from_http_status(tried, 401, None, "", Some(&a.www_authenticate_header))
        }
        S::InsufficientScope(a) => {
            from_http_status(tried, 403, None, "", Some(&a.www_authenticate_header))
        }
        S::UnexpectedContentType(ct) => from_content_type(
            tried,
            ct.as_deref(),
            "application/json or text/event-stream",
        ),
        S::UnexpectedServerResponse(text) => from_unexpected_response(tried, text),
        S::Deserialize(j) => malformed_json(tried, j),
        S::Sse(err) => {
            log_detail(tried, "malformed event stream", &err.to_string());
            ProbeError::ProtocolError(format!("{tried}: malformed event stream"))
        }
        S::UnexpectedEndOfStream => {
            ProbeError::ProtocolError(format!("{tried}: the event stream ended before the answer"))
        }
        S::ResponseBodyTooLarge { max_size } => {
            ProbeError::ProtocolError(format!("{tried}: the answer exceeded {max_size} bytes"))
        }
        S::ReservedHeaderConflict(name) => ProbeError::InvalidUrl(format!(
            "header {name:?} is set by the MCP transport itself and cannot be overridden"
        )),
        S::SessionExpired | S::MissingSessionIdInResponse => {
            ProbeError::ProtocolError(format!("{tried}: {e}"))
        }
        _ => return None,
    })
}

/// `<digits> column <digits>`: a serde_json position, the only part of its message kept.
fn is_position(p: &str) -> bool {
    p.split_once(" column ").is_some_and(|(l, c)| {
        [l, c]
            .iter()
            .all(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// rmcp reports non-JSON HTTP failures as `"HTTP <status line>: <body>"`.
fn from_unexpected_response(tried: &str, text: &str) -> ProbeError {
    let status = text
        .strip_prefix("HTTP ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(status) => {
            let body = text.split_once(": ").map(|(_, b)| b).unwrap_or("");
            from_http_status(tried, status, None, body, None)
        }
        // rmcp's words for a POST answer that is no JSON-RPC message (it quotes the body).
        None if text.starts_with("could not parse JSON") => {
            log_detail(tried, "malformed JSON-RPC", text);
            let position = text
                .split_once(" at line ")
                .and_then(|(_, rest)| rest.split(':').next())
                .filter(|p| is_position(p))
                .map(|p| format!(" at line {p}"))
                .unwrap_or_default();
            ProbeError::ProtocolError(format!(
                "{tried}: malformed JSON-RPC (the answer is no JSON-RPC message{position})"
            ))
        }
        None => unexpected(tried, &text),
    }
}

/// A reqwest failure: TLS, timeout, refused connection, …
pub fn from_reqwest(tried: &str, e: &reqwest::Error) -> ProbeError {
    if let Some(p) = chain(e).find_map(|c| c.downcast_ref::<ProbeError>()) {
        return p.clone();
    }
    let root = root_cause(e);
    if let Some(tls) = chain(e).find_map(|c| c.downcast_ref::<rustls::Error>()) {
        return ProbeError::TlsError(format!("{tried}: TLS handshake failed: {tls}"));
    }
    if e.is_timeout() {
        return ProbeError::Timeout(format!("{tried}: timed out: {root}"));
    }
    if e.is_builder() {
        return ProbeError::InvalidUrl(format!("{tried}: cannot build the request: {root}"));
    }
    if looks_like_tls(&root) {
        return ProbeError::TlsError(format!("{tried}: TLS handshake failed: {root}"));
    }
    if e.is_decode() {
        log_detail(tried, "undecodable answer", &root);
        return ProbeError::ProtocolError(format!("{tried}: cannot decode the answer"));
    }
    ProbeError::ConnectionFailed(format!("{tried}: {root}"))
}

fn looks_like_tls(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "ssl"]
        .iter()
        .any(|k| t.contains(k))
}

/// Every link of an error chain, also looking inside `io::Error`s (whose `source()`
/// skips the wrapped error itself).
pub fn chain<'a>(
    root: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> + 'a {
    let mut next = Some(root);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

/// The innermost message of a chain, e.g. `Connection refused (os error 111)`.
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    chain(e).last().map(|c| c.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::ProbeErrorCode;

    #[test]
    fn statuses_map_to_codes() {
        let c = |s| from_http_status("t", s, Some("text/html"), "<html>", None).code();
        assert_eq!(c(401), ProbeErrorCode::AuthRequired);
        assert_eq!(c(403), ProbeErrorCode::AuthRequired);
        assert_eq!(c(500), ProbeErrorCode::ServerError);
        assert_eq!(c(503), ProbeErrorCode::ServerError);
        assert_eq!(c(429), ProbeErrorCode::ServerError);
        assert_eq!(c(404), ProbeErrorCode::NotMcpServer);
        assert_eq!(c(405), ProbeErrorCode::NotMcpServer);
        assert_eq!(
            c(501),
            ProbeErrorCode::NotMcpServer,
            "a web server, not a failing one"
        );
        assert_eq!(c(502), ProbeErrorCode::ServerError);
        assert_eq!(c(302), ProbeErrorCode::NotMcpServer);
        assert_eq!(
            from_content_type("t", Some("text/html"), "x").code(),
            ProbeErrorCode::NotMcpServer
        );
    }

    #[test]
    fn auth_hint_quotes_resource_metadata() {
        let h = r#"Bearer realm="mcp", error="invalid_token", resource_metadata="https://h/.well-known/oauth-protected-resource", scope="a b""#;
        let hint = auth_hint(h);
        assert!(
            hint.contains("resource_metadata=https://h/.well-known/oauth-protected-resource"),
            "{hint}"
        );
        assert!(
            hint.contains("scope=a b") && hint.contains("error=invalid_token"),
            "{hint}"
        );
        let e = from_http_status("POST x", 401, None, "", Some(h));
        assert_eq!(e.code(), ProbeErrorCode::AuthRequired);
        assert!(e.message().contains("oauth-protected-resource"));
        assert_eq!(
            auth_param("Bearer resource_metadata=https://u", "resource_metadata").as_deref(),
            Some("https://u")
        );
        assert_eq!(auth_param("Basic realm=x", "scope"), None);
    }

    #[test]
    fn jsonrpc_errors() {
        let e = ErrorData::internal_error("boom", None);
        assert_eq!(
            from_jsonrpc_error("t", &e).code(),
            ProbeErrorCode::ServerError
        );
        let v = ErrorData::invalid_params(
            "Unsupported protocol version",
            Some(serde_json::json!({"supported": ["1999-01-01"]})),
        );
        assert_eq!(
            from_jsonrpc_error("t", &v).code(),
            ProbeErrorCode::ProtocolError
        );
    }

    #[test]
    fn deterministic_jsonrpc_errors_are_final_and_32022_names_only_versions() {
        use rmcp::model::ErrorCode;
        for code in DETERMINISTIC_CODES {
            let e = ErrorData::new(ErrorCode(code), "the server's own words", None);
            let p = from_jsonrpc_error("t", &e);
            assert_eq!(p.code(), ProbeErrorCode::ProtocolError, "{code}");
            assert!(!p.is_transient(), "{code}");
            assert!(!p.message().contains("own words"), "{p}");
        }
        for code in [-32603, -32000, -32001, 1] {
            let e = ErrorData::new(ErrorCode(code), "m", None);
            assert_eq!(
                from_jsonrpc_error("t", &e).code(),
                ProbeErrorCode::ServerError,
                "{code}"
            );
        }
        let e = ErrorData::new(
            ErrorCode(-32022),
            "no",
            Some(serde_json::json!({"supported": ["2026-07-28", "<b>secret</b>"]})),
        );
        let p = from_jsonrpc_error("t", &e);
        assert!(p.message().contains("2026-07-28"), "{p}");
        assert!(!p.message().contains("secret"), "{p}");
    }

    #[test]
    fn rmcp_unexpected_responses() {
        let c = |t| from_unexpected_response("t", t).code();
        assert_eq!(
            c("HTTP 404 Not Found: <html>"),
            ProbeErrorCode::NotMcpServer
        );
        assert_eq!(c("HTTP 401 Unauthorized: no"), ProbeErrorCode::AuthRequired);
        assert_eq!(c("HTTP 502 Bad Gateway: x"), ProbeErrorCode::ServerError);
        assert_eq!(c("garbage"), ProbeErrorCode::ProtocolError);
    }

    #[test]
    fn messages_never_quote_what_the_server_sent() {
        const SECRET: &str = "AKIA-secret-value";
        for status in [200, 302, 404, 429, 500, 503] {
            let e = from_http_status("t", status, Some("text/html"), SECRET, None);
            assert!(!e.message().contains(SECRET), "{e}");
            assert!(e.message().contains(&status.to_string()), "{e}");
        }
        let e = from_http_status("t", 500, Some(&format!("text/plain; x={SECRET}")), "", None);
        assert!(
            e.message().contains("text/plain") && !e.message().contains(SECRET),
            "{e}"
        );
        let e = from_content_type("t", Some(&format!("{SECRET}\u{7}/x")), "json");
        assert!(!e.message().contains(SECRET), "{e}");
        let rpc = ErrorData::internal_error(SECRET, Some(serde_json::json!(SECRET)));
        let e = from_jsonrpc_error("t", &rpc);
        assert!(
            e.message().contains("-32603") && !e.message().contains(SECRET),
            "{e}"
        );
        let bad = serde_json::from_str::<u32>(&format!("\"{SECRET}\"")).unwrap_err();
        assert!(bad.to_string().contains(SECRET), "serde quotes values");
        let e = malformed_json("t", &bad);
        assert!(
            !e.message().contains(SECRET) && e.message().contains("line 1"),
            "{e}"
        );
        let e = from_unexpected_response(
            "t",
            &format!(
                "could not parse JSON response as ServerJsonRpcMessage: EOF while parsing an object at line 1 column 34: {{\"x\":\"{SECRET}\""
            ),
        );
        assert_eq!(e.code(), ProbeErrorCode::ProtocolError);
        assert!(
            e.message().contains("JSON-RPC") && e.message().contains("line 1 column 34"),
            "{e}"
        );
        assert!(!e.message().contains(SECRET), "{e}");
        let sneaky =
            format!("could not parse JSON response: invalid type: string \" at line {SECRET}: x\"");
        assert!(
            !from_unexpected_response("t", &sneaky)
                .message()
                .contains(SECRET)
        );
        let e = from_unexpected_response("t", &format!("garbage {SECRET}"));
        assert!(!e.message().contains(SECRET), "{e}");
        let e = from_unexpected_response("t", &format!("HTTP 500 Internal: {SECRET}"));
        assert!(!e.message().contains(SECRET), "{e}");
        let init = ClientInitializeError::ConnectionClosed(SECRET.into());
        assert!(!from_init_error("t", &init).message().contains(SECRET));
    }

    #[test]
    fn chains_look_inside_io_errors() {
        let tls = rustls::Error::General("bad cert".into());
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert_eq!(from_chain("t", &io).code(), ProbeErrorCode::TlsError);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            from_chain("t", &refused).code(),
            ProbeErrorCode::ConnectionFailed
        );
        let own = ProbeError::NotMcpServer("x".into());
        assert_eq!(from_chain("t", &own), own);
    }
}
