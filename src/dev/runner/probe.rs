//! Container probes as kubelet runs them, against the pod's loopback address: `httpGet`
//! (2xx/3xx is success) and `tcpSocket` (a connection is success), with
//! `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`, `successThreshold` and
//! `failureThreshold`. `exec` and `grpc` probes are not run: they count as passing
//! (documented).

use std::{net::Ipv4Addr, time::Duration};

use k8s_openapi::{
    api::core::v1::{Container, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};

/// One probe, resolved.
#[derive(Clone, Debug)]
pub struct ProbeCheck {
    kind: Kind,
    pub initial_delay: Duration,
    pub period: Duration,
    timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug)]
enum Kind {
    Http(String),
    Tcp(Ipv4Addr, u16),
    Pass,
}

impl ProbeCheck {
    /// `probe` of container `c` on `ip`; Err when a named port does not exist.
    pub fn new(probe: &Probe, c: &Container, ip: Ipv4Addr) -> Result<Self, String> {
        let kind = if let Some(h) = &probe.http_get {
            let port = port(&h.port, c)?;
            let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
            let path = h.path.as_deref().unwrap_or("/");
            Kind::Http(format!("{scheme}://{ip}:{port}{path}"))
        } else if let Some(t) = &probe.tcp_socket {
            Kind::Tcp(ip, port(&t.port, c)?)
        } else {
            Kind::Pass
        };
        let secs = |v: Option<i32>, d: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(d).max(0)).unwrap_or(0))
        };
        let count = |v: Option<i32>, d: i32| u32::try_from(v.unwrap_or(d).max(1)).unwrap_or(1);
        Ok(Self {
            kind,
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_millis(500)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_millis(500)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        })
    }

    /// One attempt.
    pub async fn check(&self, client: &reqwest::Client) -> bool {
        match &self.kind {
            Kind::Pass => true,
            Kind::Tcp(ip, port) => {
                tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((*ip, *port)))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
            Kind::Http(url) => client
                .get(url)
                .timeout(self.timeout)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success() || r.status().is_redirection()),
        }
    }
}

/// A probe port: a number, or the name of one of the container's ports.
fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .map(|cp| cp.container_port)
            .ok_or_else(|| format!("container {}: no port named {name}", c.name))?,
    };
    u16::try_from(n).map_err(|_| format!("container {}: port {n} out of range", c.name))
}
