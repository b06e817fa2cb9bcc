//! What to probe: an HTTP endpoint (URL, transport, extra headers, TLS) or a stdio command.
//!
//! Header values and environment values are secrets: they are only handed to the
//! transport, `Debug` redacts them, and nothing here formats them into a message.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use super::destination::DestinationPolicy;
use super::era::EraPreference;
use super::error::ProbeError;

/// How an HTTP target speaks MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TransportKind {
    /// A path ending in `/sse` means legacy HTTP+SSE, anything else Streamable HTTP.
    #[default]
    Auto,
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp,
    /// Legacy HTTP+SSE (MCP 2024-11-05): `GET` an event stream, `POST` to the announced endpoint.
    Sse,
}

impl TransportKind {
    /// The concrete transport for `url` (`Auto` resolved by the path).
    pub fn resolve(self, url: &Url) -> TransportKind {
        match self {
            TransportKind::Auto if url.path().trim_end_matches('/').ends_with("/sse") => {
                TransportKind::Sse
            }
            TransportKind::Auto => TransportKind::StreamableHttp,
            other => other,
        }
    }
}

/// One extra request header. The value is a secret: `Debug` shows only the name.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    name: String,
    value: String,
}

impl Header {
    /// A header sent with every request of the probe.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The header name (not secret).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header value. Hand it to a transport; never format it.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Header({}: <redacted>)", self.name)
    }
}

/// TLS settings for `https://` targets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM bundle of extra trusted CA certificates (added to the platform roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate. For development only: the connection is not authenticated.
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem_bytes", &self.ca_pem.as_ref().map(Vec::len))
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// An MCP server reachable over HTTP. `Debug` shows the URL without credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The endpoint, e.g. `http://memory.agents.svc:8080/mcp` or `…/sse`.
    pub url: String,
    /// Which HTTP transport to speak.
    pub transport: TransportKind,
    /// Extra headers (credentials) sent with every request.
    pub headers: Vec<Header>,
    /// TLS trust settings.
    pub tls: TlsOptions,
    /// Where the probe may connect; None: anywhere (the `probe` command).
    pub destinations: Option<Arc<DestinationPolicy>>,
    /// Which protocol era(s) to speak (Streamable HTTP only; SSE is legacy by definition).
    pub era: EraPreference,
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("url", &redact(&self.url))
            .field("transport", &self.transport)
            .field("headers", &self.headers)
            .field("tls", &self.tls)
            .field("destinations", &self.destinations)
            .field("era", &self.era)
            .finish()
    }
}

impl HttpTarget {
    /// A target with the `Auto` transport, no headers and platform TLS roots.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            transport: TransportKind::Auto,
            headers: Vec::new(),
            tls: TlsOptions::default(),
            destinations: None,
            era: EraPreference::Auto,
        }
    }

    /// Parses and checks the URL: http(s) with a host, else `InvalidUrl`.
    pub fn parsed_url(&self) -> Result<Url, ProbeError> {
        let url = Url::parse(&self.url).map_err(|e| {
            ProbeError::InvalidUrl(format!(
                "cannot parse {:?} as a URL: {e}",
                redact(&self.url)
            ))
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(ProbeError::InvalidUrl(format!(
                    "{}: scheme {other:?} is not supported; an MCP endpoint is http:// or https://",
                    redact_url(&url)
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ProbeError::InvalidUrl(format!(
                "{}: the URL has no host",
                redact_url(&url)
            )));
        }
        Ok(url)
    }
}

/// An MCP server started as a child process speaking newline-delimited JSON-RPC on stdio.
#[derive(Clone, PartialEq, Eq)]
pub struct StdioTarget {
    /// The program to run.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (values are secrets).
    pub env: Vec<(String, String)>,
    /// Working directory; the current one when `None`.
    pub cwd: Option<PathBuf>,
    /// Which protocol era(s) to speak.
    pub era: EraPreference,
}

impl StdioTarget {
    /// `command args…` with the inherited environment.
    pub fn new(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            era: EraPreference::Auto,
        }
    }
}

impl fmt::Debug for StdioTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, _)| format!("{k}=<redacted>"))
            .collect();
        f.debug_struct("StdioTarget")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &env)
            .field("cwd", &self.cwd)
            .field("era", &self.era)
            .finish()
    }
}

/// Something to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// Streamable HTTP or legacy SSE.
    Http(HttpTarget),
    /// A local process on stdio (`mcp-operator probe -- CMD ARGS…`).
    Stdio(StdioTarget),
}

impl ProbeTarget {
    /// An HTTP target with default settings.
    pub fn http(url: impl Into<String>) -> Self {
        Self::Http(HttpTarget::new(url))
    }

    /// A stdio target.
    pub fn stdio(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::Stdio(StdioTarget::new(command, args))
    }

    /// The era preference of either kind of target.
    pub fn era(&self) -> EraPreference {
        match self {
            Self::Http(t) => t.era,
            Self::Stdio(t) => t.era,
        }
    }

    /// A short, credential-free description for logs and messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Http(t) => redact(&t.url),
            Self::Stdio(t) => {
                let mut s = t.command.clone();
                for a in &t.args {
                    s.push(' ');
                    s.push_str(a);
                }
                format!("stdio: {s}")
            }
        }
    }
}

/// Query parameter names whose values are treated as credentials in displayed URLs.
const SECRET_QUERY_HINTS: [&str; 7] = [
    "token",
    "key",
    "secret",
    "pass",
    "auth",
    "sig",
    "credential",
];

/// `url` for display: user-info removed, credential-looking query values replaced by `REDACTED`.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = SECRET_QUERY_HINTS.iter().any(|h| lower.contains(h));
                let v = if secret {
                    "REDACTED".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Like [`redact_url`] for a string that may not parse (then only what precedes `@`/`?` is kept).
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => redact_url(&u),
        Err(_) => {
            let cut = url.find(['?', '@']).unwrap_or(url.len());
            url[..cut].to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_transport_follows_the_path() {
        let sse = Url::parse("http://h/sse").unwrap();
        let sse_slash = Url::parse("http://h/api/sse/").unwrap();
        let mcp = Url::parse("http://h/mcp").unwrap();
        assert_eq!(TransportKind::Auto.resolve(&sse), TransportKind::Sse);
        assert_eq!(TransportKind::Auto.resolve(&sse_slash), TransportKind::Sse);
        assert_eq!(
            TransportKind::Auto.resolve(&mcp),
            TransportKind::StreamableHttp
        );
        assert_eq!(TransportKind::Sse.resolve(&mcp), TransportKind::Sse);
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        for bad in [
            "ftp://example.com/mcp",
            "not a url",
            "file:///tmp/x",
            "http://",
        ] {
            let err = HttpTarget::new(bad).parsed_url().unwrap_err();
            assert_eq!(
                err.code(),
                super::super::ProbeErrorCode::InvalidUrl,
                "{bad}"
            );
        }
        assert!(
            HttpTarget::new("https://example.com/mcp")
                .parsed_url()
                .is_ok()
        );
    }

    #[test]
    fn debug_and_describe_never_show_secrets() {
        let mut t = HttpTarget::new("https://user:pw@example.com/mcp?api_key=s3cr3t&x=1");
        t.headers
            .push(Header::new("Authorization", "Bearer s3cr3t"));
        t.tls.ca_pem = Some(b"s3cr3t".to_vec());
        let target = ProbeTarget::Http(t);
        let shown = format!("{target:?} {}", target.describe());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(shown.contains("x=1"));
        let mut s = StdioTarget::new("srv", ["--flag"]);
        s.env.push(("TOKEN".into(), "s3cr3t".into()));
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
