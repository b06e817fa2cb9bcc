//! Probe scheduling and targets. A server is probed when its spec changed, when its
//! Deployment became Available, and every `spec.probe.interval` (jittered ±10%); the
//! reconcile requeues itself for the next one. Probes share one semaphore
//! (`--probe-concurrency`) across all reconciles. The target is the gateway (status.url,
//! with the operator's probe token as bearer), or the remote URL directly (headers from
//! Secrets, TLS settings) when the gateway is disabled. Outside the cluster, `*.svc` URLs
//! go through the API server's service proxy.
//!
//! A remote URL is chosen by whoever may create McpServers, so a direct probe runs under
//! the operator's destination policy ([`Context::probe_destinations`] plus the API
//! server's own addresses): it cannot be aimed at loopback, link-local (cloud metadata) or
//! the API server (`Reachable=False`, reason `DestinationDenied`). The gateway is the
//! operator's own Service and is probed without that policy.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::{Api, ResourceExt};

use super::{
    context::{Context, ServiceProxy},
    error::{Error, is_not_found},
};
use crate::{
    api::{
        McpServer,
        policy::EgressRule,
        server::{McpServerStatus, ProbeSpec, RemoteSpec, Transport},
    },
    prober::{
        Cidr, DestinationPolicy, Header, HttpTarget, ProbeOptions, ProbeReport, ProbeTarget,
        TlsOptions, TransportKind, probe_many_shared,
    },
};

/// Interval used when `spec.probe.interval` cannot be parsed (admission prevents it).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// When to probe next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Probe in this reconcile (the reason, for logs).
    Now(&'static str),
    /// Not yet: requeue after this long.
    Later(Duration),
    /// Not at all (disabled, rejected, or waiting for the Deployment).
    Never,
}

/// Decides whether `server` is probed now. `available_now` says the Deployment is
/// Available (or there is none to wait for); `was_available` whether status said so.
pub fn schedule(
    server: &McpServer,
    available_now: bool,
    was_available: bool,
    now: Timestamp,
) -> Schedule {
    let probe = server.spec.probe.clone().unwrap_or_default();
    if probe.disabled || !available_now {
        return Schedule::Never;
    }
    let status = server.status.clone().unwrap_or_default();
    let Some(last) = status.last_probe.as_ref() else {
        return Schedule::Now("first probe");
    };
    if status.observed_generation != server.metadata.generation {
        return Schedule::Now("spec changed");
    }
    if !was_available {
        return Schedule::Now("Deployment became Available");
    }
    let interval = next_interval(&probe, status.consecutive_failures.unwrap_or(0));
    let elapsed = now.duration_since(last.time.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or_default();
    let earliest = interval.mul_f64(0.9);
    if elapsed >= earliest {
        Schedule::Now("interval elapsed")
    } else {
        Schedule::Later(
            jittered(interval)
                .saturating_sub(elapsed)
                .max(earliest - elapsed),
        )
    }
}

/// First retry delay after a failed probe; doubles per consecutive failure.
const RETRY_BASE: Duration = Duration::from_secs(5);

/// When the next probe is due after `failures` consecutive failures: the interval when
/// the last probe succeeded, else 5 s, 10 s, 20 s … capped at the interval. A server that
/// is still starting (a stdio child initializing behind a ready gateway) is therefore
/// re-probed within seconds instead of after a whole interval.
pub fn next_interval(probe: &ProbeSpec, failures: i32) -> Duration {
    let interval = interval(probe);
    if failures <= 0 {
        return interval;
    }
    let factor = 1u32 << (failures - 1).clamp(0, 16);
    RETRY_BASE.saturating_mul(factor).min(interval)
}

/// `spec.probe.interval`, parsed.
pub fn interval(probe: &ProbeSpec) -> Duration {
    probe
        .interval
        .parse()
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// `d` times a random factor in [0.9, 1.1].
pub fn jittered(d: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u16;
    d.mul_f64(0.9 + 0.2 * f64::from(random) / f64::from(u16::MAX))
}

/// Probe options from the spec.
pub fn options(probe: &ProbeSpec) -> ProbeOptions {
    let d = ProbeOptions::default();
    ProbeOptions {
        timeout: probe.timeout.parse().unwrap_or(d.timeout),
        retries: u32::try_from(probe.retries).unwrap_or(d.retries),
        retry_delay: probe.retry_delay.parse().unwrap_or(d.retry_delay),
    }
}

/// Runs one probe of `target`, waiting for a permit of the shared limit.
pub async fn run(ctx: &Context, target: ProbeTarget, opts: ProbeOptions) -> ProbeReport {
    let mut stream = std::pin::pin!(probe_many_shared(
        vec![target],
        opts,
        ctx.probe_limit.clone()
    ));
    let (_, report) = stream.next().await.expect("one target gives one report");
    let result = report.code().map_or("Succeeded", |c| c.as_str());
    ctx.metrics
        .probed(result, Duration::from_millis(report.latency_ms));
    report
}

/// The gateway as a probe target: `url` with the probe token as bearer, through the
/// service proxy when running outside the cluster.
pub fn gateway_target(
    url: &str,
    namespace: &str,
    token: &str,
    proxy: Option<&ServiceProxy>,
) -> ProbeTarget {
    let url = proxy
        .and_then(|p| proxied_url(url, namespace, &p.api_server))
        .unwrap_or_else(|| url.to_owned());
    let mut target = HttpTarget::new(url);
    target.transport = TransportKind::StreamableHttp;
    target.headers = vec![Header::new("Authorization", format!("Bearer {token}"))];
    ProbeTarget::Http(target)
}

/// `http://<name>.<ns>.svc:<port>/<path>` as
/// `<api>/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>`; None for other URLs.
pub fn proxied_url(url: &str, namespace: &str, api_server: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let name = host
        .strip_suffix(".svc")
        .or_else(|| host.strip_suffix(".svc.cluster.local"))?
        .strip_suffix(&format!(".{namespace}"))?;
    let port = parsed.port_or_known_default()?;
    Some(format!(
        "{}/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy{}",
        api_server.trim_end_matches('/'),
        parsed.path()
    ))
}

/// A remote server probed directly: header values and the CA read from Secrets. Err is
/// the message of a missing Secret or key.
pub async fn remote_target(
    ctx: &Context,
    server: &McpServer,
    remote: &RemoteSpec,
) -> Result<Result<ProbeTarget, String>, Error> {
    let ns = server.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut target = HttpTarget::new(remote.url.clone());
    target.destinations = Some(Arc::new(remote_destinations(ctx).await));
    target.transport = match server.spec.transport {
        Transport::Sse => TransportKind::Sse,
        _ => TransportKind::StreamableHttp,
    };
    for h in &remote.headers_from {
        let r = &h.value_from.secret_key_ref;
        match secret_value(&secrets, &r.name, &r.key).await? {
            Some(v) => target.headers.push(Header::new(
                &h.name,
                format!("{}{}", h.prefix, String::from_utf8_lossy(&v)),
            )),
            None => return Ok(Err(format!("Secret {}/{} key {}", ns, r.name, r.key))),
        }
    }
    if let Some(tls) = &remote.tls {
        let mut opts = TlsOptions {
            insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
            ..TlsOptions::default()
        };
        if let Some(r) = &tls.ca_secret_ref {
            match secret_value(&secrets, &r.name, &r.key).await? {
                Some(v) => opts.ca_pem = Some(v),
                None => return Ok(Err(format!("Secret {}/{} key {}", ns, r.name, r.key))),
            }
        }
        target.tls = opts;
    }
    Ok(Ok(ProbeTarget::Http(target)))
}

/// The destination policy of a direct probe: the operator's, with the API server's
/// addresses (its EndpointSlices and ClusterIPs, read and cached as for NetworkPolicies)
/// denied on top.
pub async fn remote_destinations(ctx: &Context) -> DestinationPolicy {
    let api_server = ctx.api_server_egress.rules().await;
    ctx.probe_destinations
        .with_denied(api_server_ranges(&api_server))
}

/// The address ranges of the API server's egress rules.
pub fn api_server_ranges(rules: &[EgressRule]) -> Vec<Cidr> {
    rules.iter().filter_map(|r| r.cidr.parse().ok()).collect()
}

/// The bytes of `key` in Secret `name`; None when the Secret or key is missing.
pub async fn secret_value(
    api: &Api<Secret>,
    name: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, Error> {
    match api.get(name).await {
        Ok(secret) => {
            let from_data = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.clone());
            let from_string = secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes());
            Ok(from_data.or(from_string))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The time of the latest probe in `status`, if any.
pub fn last_probe_time(status: &McpServerStatus) -> Option<Time> {
    status.last_probe.as_ref().map(|p| p.time.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_probes_retry_with_backoff_capped_at_the_interval() {
        let probe = ProbeSpec {
            interval: crate::api::common::GoDuration("1m".into()),
            ..ProbeSpec::default()
        };
        let secs = |f| next_interval(&probe, f).as_secs();
        assert_eq!(
            [
                secs(0),
                secs(1),
                secs(2),
                secs(3),
                secs(4),
                secs(5),
                secs(40)
            ],
            [60, 5, 10, 20, 40, 60, 60]
        );
    }

    #[test]
    fn service_urls_go_through_the_proxy() {
        assert_eq!(
            proxied_url(
                "http://memory.agents.svc:8080/mcp",
                "agents",
                "https://k:6443/"
            )
            .as_deref(),
            Some("https://k:6443/api/v1/namespaces/agents/services/memory:8080/proxy/mcp")
        );
        assert_eq!(
            proxied_url("https://example.com/mcp", "agents", "https://k"),
            None
        );
    }

    #[test]
    fn the_api_server_addresses_are_denied_ranges() {
        let rules = [
            EgressRule {
                cidr: "10.96.0.1/32".into(),
                ports: vec![443],
            },
            EgressRule {
                cidr: "fd00::3/128".into(),
                ports: vec![6443],
            },
        ];
        let ranges = api_server_ranges(&rules);
        let policy = DestinationPolicy::default().with_denied(ranges);
        for ip in ["10.96.0.1", "fd00::3", "::ffff:10.96.0.1"] {
            assert!(policy.denying(ip.parse().unwrap()).is_some(), "{ip}");
        }
        assert!(policy.denying("10.96.0.2".parse().unwrap()).is_none());
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
