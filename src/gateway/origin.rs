//! `Host` and `Origin` checks on the MCP route, against DNS rebinding (the Streamable HTTP
//! transport's security warning): a browser page on a hostile name that resolves to the
//! gateway sends that name as `Host`, and its own origin as `Origin`.
//!
//! - `Host` must name an allowed host: `localhost`, any IP literal (a request addressed to
//!   an IP is not a rebound name: kubelet, a pod IP, `127.0.x.y` of the dev playground),
//!   or a name in `allowedHosts` (config file) or `--allowed-host`; the port is not
//!   compared. The operator renders the Service's DNS names. `*` allows any host.
//! - `Origin`, when present (browsers send it; other clients do not), must be a loopback
//!   origin, an origin whose host is an allowed name, or listed in `allowedOrigins` /
//!   `--allowed-origin` (`scheme://host[:port]`, exact). `*` allows any origin.
//!
//! Either refusal is HTTP 403 with a JSON-RPC error body. `/livez`, `/readyz` and
//! `/metrics` are not checked (probes address the pod IP, scrapers anything).

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response, header};
use axum::middleware::Next;
use serde_json::Value;

use super::refusal::{Refusal, Rule};
use super::state::Gateway;

/// The allowed names and origins from the command line (the config file adds its own).
#[derive(Clone, Debug, Default)]
pub struct AllowedFromFlags {
    pub hosts: Vec<String>,
    pub origins: Vec<String>,
}

/// State of the [`check`] middleware.
#[derive(Clone)]
pub struct OriginGuard {
    pub gw: Arc<Gateway>,
    pub flags: Arc<AllowedFromFlags>,
}

/// Middleware: refuses requests whose `Host` or `Origin` is not allowed.
pub async fn check(State(guard): State<OriginGuard>, req: Request, next: Next) -> Response<Body> {
    let cfg = guard.gw.config.current();
    let (hosts, origins) = match &cfg {
        Some(c) => (&c.file.allowed_hosts[..], &c.file.allowed_origins[..]),
        None => (&[][..], &[][..]),
    };
    let allowed = Allowed {
        hosts: [hosts, &guard.flags.hosts[..]],
        origins: [origins, &guard.flags.origins[..]],
    };
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    if let Err(refusal) = allowed.verify(req.headers(), authority.as_deref()) {
        guard.gw.metrics.refused(refusal.rule);
        return refusal.into_response(&[Value::Null], false);
    }
    next.run(req).await
}

/// The allowed hosts and origins of one request's check.
struct Allowed<'a> {
    hosts: [&'a [String]; 2],
    origins: [&'a [String]; 2],
}

impl Allowed<'_> {
    fn verify(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .or(authority);
        if let Some(host) = host
            && !self.host_allowed(host)
        {
            return Err(Refusal::new(
                Rule::HostNotAllowed,
                "the Host header names a host this gateway does not serve",
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("\u{0}");
            if !self.origin_allowed(origin) {
                return Err(Refusal::new(
                    Rule::OriginNotAllowed,
                    "the Origin header names an origin this gateway does not allow",
                ));
            }
        }
        Ok(())
    }

    fn listed_host(&self, name: &str) -> bool {
        self.hosts
            .iter()
            .flat_map(|l| l.iter())
            .any(|h| h == "*" || normal_name(h) == name)
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let Some(name) = host_of(authority) else {
            return false;
        };
        name == "localhost" || name.parse::<IpAddr>().is_ok() || self.listed_host(&name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let listed = self
            .origins
            .iter()
            .flat_map(|l| l.iter())
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if listed {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false; // `null` and anything else that is not an origin
        };
        if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return false;
        }
        let Some(name) = host_of(authority) else {
            return false;
        };
        let loopback =
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        loopback || self.listed_host(&name)
    }
}

/// The host of `host[:port]` or `[v6][:port]`, lowercased, without a trailing dot; None
/// when it is not a plausible authority.
fn host_of(authority: &str) -> Option<String> {
    if authority.is_empty() || authority.contains(['/', '@', ' ', '\u{0}']) {
        return None;
    }
    let host = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        v6
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => authority,
        }
    };
    let host = normal_name(host);
    (!host.is_empty()).then_some(host)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

fn normal_name(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(host: Option<&str>, origin: Option<&str>) -> Result<(), Rule> {
        let hosts = vec![
            "memory".to_owned(),
            "memory.agents.svc.cluster.local".to_owned(),
        ];
        let origins = vec!["https://console.example.com".to_owned()];
        let allowed = Allowed {
            hosts: [&hosts, &[]],
            origins: [&origins, &[]],
        };
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, v.parse().unwrap());
        }
        if let Some(v) = origin {
            h.insert(header::ORIGIN, v.parse().unwrap());
        }
        allowed.verify(&h, None).map_err(|r| r.rule)
    }

    #[test]
    fn hosts() {
        for ok in [
            "memory",
            "memory:8080",
            "MEMORY.agents.svc.cluster.local.:80",
            "localhost:3000",
            "127.0.3.7:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[fd00::5]",
        ] {
            assert_eq!(check(Some(ok), None), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example",
            "memory.evil.example",
            "memory.agents.svc.cluster.local.evil.example:80",
            "localhost.evil.example",
            "memory:80:80",
            "memory:http",
            "[::1",
            "",
            "user@memory",
        ] {
            assert_eq!(check(Some(bad), None), Err(Rule::HostNotAllowed), "{bad}");
        }
        assert_eq!(check(None, None), Ok(()));
    }

    #[test]
    fn origins() {
        for ok in [
            "http://localhost:6274",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
            "http://memory:8080",
            "https://console.example.com",
            "https://CONSOLE.example.com",
        ] {
            assert_eq!(check(Some("memory"), Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "null",
            "http://10.1.2.3",
            "file://localhost",
            "http://localhost.evil.example",
            "https://console.example.com.evil.example",
        ] {
            assert_eq!(
                check(Some("memory"), Some(bad)),
                Err(Rule::OriginNotAllowed),
                "{bad}"
            );
        }
    }
}
