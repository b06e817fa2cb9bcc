//! Where a probe goes. The target is the gateway (status.url, with the operator's probe
//! token as bearer), or the remote URL directly (headers from Secrets, TLS settings) when
//! the gateway is disabled. Outside the cluster, `*.svc` URLs go through the API server's
//! service proxy.
//!
//! A remote URL is chosen by whoever may create McpServers, so a direct probe runs under
//! the operator's destination policy ([`ProbeEnv::probe_destinations`] plus the API
//! server's own addresses): it cannot be aimed at loopback, link-local (cloud metadata) or
//! the API server (`Reachable=False`, reason `DestinationDenied`). The gateway is the
//! operator's own Service and is probed without that policy.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::probes::ProbeRequest;
use crate::{
    api::{
        McpServer,
        policy::EgressRule,
        server::{RemoteSpec, Transport},
    },
    controller::{
        api_server_egress::ApiServerEgress,
        error::{Error, is_not_found},
        metrics::Metrics,
        shared::{ProbeToken, ServiceProxy},
    },
    prober::{Cidr, DestinationPolicy, Header, HttpTarget, ProbeTarget, TlsOptions, TransportKind},
};

/// What the prober needs from the operator to build and run probes.
pub struct ProbeEnv {
    /// The API client (Secrets of remote servers).
    pub client: Client,
    /// The bearer shown to gateways.
    pub probe_token: ProbeToken,
    /// Set when running outside the cluster.
    pub service_proxy: Option<ServiceProxy>,
    /// The API server's addresses, denied to direct probes.
    pub api_server_egress: Arc<ApiServerEgress>,
    /// Where direct probes of remote servers may connect (`--probe-denied-cidrs`,
    /// `--probe-allowed-cidrs`).
    pub probe_destinations: Arc<DestinationPolicy>,
    /// Probe counts, latency and queue depth.
    pub metrics: Arc<Metrics>,
}

/// The target of `request`: None when there is nothing to probe (no URL yet) or a Secret
/// the probe needs is missing.
pub async fn target(env: &ProbeEnv, request: &ProbeRequest) -> Result<Option<ProbeTarget>, Error> {
    let server = &request.server;
    match (&server.spec.remote, request.gateway_enabled) {
        (Some(remote), false) => Ok(remote_target(env, server, remote).await?.ok()),
        _ => Ok(request.url.as_deref().map(|url| {
            let ns = server.namespace().unwrap_or_default();
            gateway_target(url, &ns, &env.probe_token.token, env.service_proxy.as_ref())
        })),
    }
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
    env: &ProbeEnv,
    server: &McpServer,
    remote: &RemoteSpec,
) -> Result<Result<ProbeTarget, String>, Error> {
    let ns = server.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let mut target = HttpTarget::new(remote.url.clone());
    target.destinations = Some(Arc::new(remote_destinations(env).await));
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
pub async fn remote_destinations(env: &ProbeEnv) -> DestinationPolicy {
    let api_server = env.api_server_egress.rules().await;
    env.probe_destinations
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
