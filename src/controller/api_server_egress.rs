//! Where the Kubernetes API server really listens, as egress rules for the server
//! NetworkPolicy ([`crate::controller::build::network_policy`]): under a policy that sets
//! `egress`, the gateway must still reach the API server (Events, TokenReview).
//!
//! NetworkPolicies are enforced after the Service DNAT, so the `kubernetes` Service's
//! ClusterIP alone is not enough: the rules name the addresses and ports of its
//! EndpointSlices in `default` (label `kubernetes.io/service-name=kubernetes`), or of the
//! Endpoints `kubernetes` where there are no slices, plus the ClusterIP and Service port
//! (harmless, and what the gateway dials).
//!
//! [`egress_rules`] is the pure conversion. [`ApiServerEgress`] reads them lazily (only
//! reconciles under an egress policy ask) and at most every [`REFRESH`]; when they cannot
//! be read (RBAC, not found) it warns once and keeps the last known rules (none at first):
//! a reconcile never fails for this.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client, api::ListParams};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::policy::EgressRule;

/// Namespace of the API server's Service.
pub const NAMESPACE: &str = "default";
/// Name of the API server's Service (and of its Endpoints).
pub const SERVICE: &str = "kubernetes";
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// How long read rules are used before they are read again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// CIDR → TCP ports (None: every port).
type Destinations = BTreeMap<String, Option<BTreeSet<i32>>>;

/// The egress rules reaching the API server: one per address (`/32` or `/128`) with its
/// TCP ports, sorted by CIDR. Addresses come from `slices` (IPv4 and IPv6 slices; FQDN
/// ones are skipped), or from `endpoints` when the slices have none; the Service's
/// ClusterIPs with its ports are added. Readiness is ignored: an API server that is not
/// ready now must be reachable when it is again.
pub fn egress_rules(
    slices: &[EndpointSlice],
    endpoints: Option<&Endpoints>,
    service: Option<&Service>,
) -> Vec<EgressRule> {
    let mut out = Destinations::new();
    for slice in slices {
        from_slice(slice, &mut out);
    }
    if out.is_empty()
        && let Some(endpoints) = endpoints
    {
        from_endpoints(endpoints, &mut out);
    }
    if let Some(service) = service {
        from_service(service, &mut out);
    }
    out.into_iter()
        .map(|(cidr, ports)| EgressRule {
            cidr,
            ports: ports.map(|p| p.into_iter().collect()).unwrap_or_default(),
        })
        .collect()
}

fn tcp(protocol: Option<&str>) -> bool {
    protocol.is_none_or(|p| p == "TCP")
}

/// Adds `ip` (ignored unless it is an IP address) with `ports` (None: every port).
fn add(out: &mut Destinations, ip: &str, ports: &Option<BTreeSet<i32>>) {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return;
    };
    let cidr = match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    };
    let entry = out.entry(cidr).or_insert_with(|| Some(BTreeSet::new()));
    match (entry.as_mut(), ports) {
        (Some(have), Some(more)) => have.extend(more),
        _ => *entry = None,
    }
}

fn from_slice(slice: &EndpointSlice, out: &mut Destinations) {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return;
    }
    let tcp_ports: Vec<_> = slice
        .ports
        .iter()
        .flatten()
        .filter(|p| tcp(p.protocol.as_deref()))
        .collect();
    // No port: nothing is defined; a port without a number: every port.
    if tcp_ports.is_empty() {
        return;
    }
    let ports = tcp_ports
        .iter()
        .map(|p| p.port)
        .collect::<Option<BTreeSet<i32>>>();
    for endpoint in &slice.endpoints {
        for address in &endpoint.addresses {
            add(out, address, &ports);
        }
    }
}

fn from_endpoints(endpoints: &Endpoints, out: &mut Destinations) {
    for subset in endpoints.subsets.iter().flatten() {
        let ports: BTreeSet<i32> = subset
            .ports
            .iter()
            .flatten()
            .filter(|p| tcp(p.protocol.as_deref()))
            .map(|p| p.port)
            .collect();
        if ports.is_empty() {
            continue;
        }
        let ports = Some(ports);
        let addresses = subset.addresses.iter().flatten();
        for address in addresses.chain(subset.not_ready_addresses.iter().flatten()) {
            add(out, &address.ip, &ports);
        }
    }
}

fn from_service(service: &Service, out: &mut Destinations) {
    let Some(spec) = &service.spec else { return };
    let ports: BTreeSet<i32> = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| tcp(p.protocol.as_deref()))
        .map(|p| p.port)
        .collect();
    if ports.is_empty() {
        return;
    }
    let ports = Some(ports);
    let ips = spec.cluster_ips.iter().flatten().chain(&spec.cluster_ip);
    for ip in ips {
        add(out, ip, &ports);
    }
}

/// The API server's egress rules, read on demand and kept for [`REFRESH`]; shared by
/// every reconcile of the operator.
pub struct ApiServerEgress {
    client: Client,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the rules were last read (or tried), and the rules in use.
    read: Option<(Instant, Vec<EgressRule>)>,
    /// The last read found no API server address (warned once, until it recovers).
    failing: bool,
}

impl ApiServerEgress {
    /// Reads with `client` (nothing happens until [`Self::rules`] is first called).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            state: Mutex::new(State::default()),
        }
    }

    /// The rules; read again when older than [`REFRESH`]. Never fails: when nothing can
    /// be read, the last known rules (none at first) stay in use.
    pub async fn rules(&self) -> Vec<EgressRule> {
        // Held across the read: concurrent reconciles wait for one read, not each do one.
        let mut state = self.state.lock().await;
        if let Some((at, rules)) = &state.read
            && at.elapsed() < REFRESH
        {
            return rules.clone();
        }
        let previous = state.read.take().map(|(_, r)| r).unwrap_or_default();
        let (rules, problem) = read(&self.client).await;
        let rules = match problem {
            None => {
                if std::mem::take(&mut state.failing) {
                    tracing::info!(
                        rules = rules.len(),
                        "API server endpoints readable again: gateways under egress policies may reach it"
                    );
                }
                rules
            }
            Some(problem) => {
                if !std::mem::replace(&mut state.failing, true) {
                    tracing::warn!(
                        %problem,
                        "cannot read the API server's endpoints (EndpointSlices or Endpoints {NAMESPACE}/{SERVICE}): NetworkPolicies under egress policies let gateways reach only the kubernetes Service's ClusterIP, if known, and may block their Events and TokenReviews"
                    );
                } else {
                    tracing::debug!(%problem, "API server endpoints still unreadable");
                }
                if previous.is_empty() { rules } else { previous }
            }
        };
        state.read = Some((Instant::now(), rules.clone()));
        rules
    }
}

/// The rules and, when no API server address was found, why.
async fn read(client: &Client) -> (Vec<EgressRule>, Option<String>) {
    let mut errors = Vec::new();
    let selector = format!("{SERVICE_NAME_LABEL}={SERVICE}");
    let slices = match Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            errors.push(format!("EndpointSlices: {e}"));
            Vec::new()
        }
    };
    let endpoints = if egress_rules(&slices, None, None).is_empty() {
        match Api::<Endpoints>::namespaced(client.clone(), NAMESPACE)
            .get_opt(SERVICE)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("Endpoints: {e}"));
                None
            }
        }
    } else {
        None
    };
    let found = !egress_rules(&slices, endpoints.as_ref(), None).is_empty();
    let service = match Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .get_opt(SERVICE)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("Service: {e}"));
            None
        }
    };
    let rules = egress_rules(&slices, endpoints.as_ref(), service.as_ref());
    let problem = (!found).then(|| {
        if errors.is_empty() {
            "no EndpointSlice or Endpoints with an address".to_owned()
        } else {
            errors.join("; ")
        }
    });
    (rules, problem)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn slice(address_type: &str, addresses: &[&str], ports: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {SERVICE_NAME_LABEL: SERVICE}},
            "addressType": address_type,
            "endpoints": addresses.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": false}})).collect::<Vec<_>>(),
            "ports": ports,
        }))
        .unwrap()
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00:10:96::1"],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
        }))
        .unwrap()
    }

    fn endpoints() -> Endpoints {
        serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "192.168.0.10"}],
                "notReadyAddresses": [{"ip": "192.168.0.11"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
            }],
        }))
        .unwrap()
    }

    fn pairs(rules: &[EgressRule]) -> Vec<(&str, Vec<i32>)> {
        rules
            .iter()
            .map(|r| (r.cidr.as_str(), r.ports.clone()))
            .collect()
    }

    #[test]
    fn slices_give_one_host_rule_per_address_with_their_tcp_ports() {
        let https = json!([{"name": "https", "port": 6443, "protocol": "TCP"}, {"name": "x", "port": 9, "protocol": "UDP"}]);
        let slices = [
            slice("IPv4", &["172.18.0.3", "172.18.0.2"], https.clone()),
            slice("IPv6", &["fd00:0:0::3"], https),
            slice("FQDN", &["api.example.com"], json!([{"port": 443}])),
        ];
        let rules = egress_rules(&slices, Some(&endpoints()), Some(&service()));
        assert_eq!(
            pairs(&rules),
            [
                ("10.96.0.1/32", vec![443]),
                ("172.18.0.2/32", vec![6443]),
                ("172.18.0.3/32", vec![6443]),
                ("fd00:10:96::1/128", vec![443]),
                ("fd00::3/128", vec![6443]),
            ],
            "Endpoints are only the fallback"
        );
    }

    #[test]
    fn endpoints_are_the_fallback_and_the_service_is_optional() {
        let rules = egress_rules(&[], Some(&endpoints()), None);
        assert_eq!(
            pairs(&rules),
            [
                ("192.168.0.10/32", vec![6443]),
                ("192.168.0.11/32", vec![6443])
            ]
        );
        // A slice without addresses does not hide the Endpoints.
        let empty = slice("IPv4", &[], json!([{"port": 6443}]));
        assert_eq!(
            egress_rules(std::slice::from_ref(&empty), Some(&endpoints()), None),
            rules
        );
        assert!(egress_rules(&[], None, None).is_empty());
        assert_eq!(
            pairs(&egress_rules(&[], None, Some(&service()))),
            [
                ("10.96.0.1/32", vec![443]),
                ("fd00:10:96::1/128", vec![443])
            ]
        );
    }

    #[test]
    fn ports_merge_per_address_and_a_numberless_port_means_every_port() {
        let slices = [
            slice("IPv4", &["10.0.0.1"], json!([{"port": 6443}])),
            slice(
                "IPv4",
                &["10.0.0.1"],
                json!([{"port": 443, "protocol": "TCP"}]),
            ),
            slice("IPv4", &["10.0.0.2"], json!([{"protocol": "TCP"}])),
            slice("IPv4", &["10.0.0.3"], json!([])),
            slice("IPv4", &["not-an-ip"], json!([{"port": 1}])),
        ];
        assert_eq!(
            pairs(&egress_rules(&slices, None, None)),
            [("10.0.0.1/32", vec![443, 6443]), ("10.0.0.2/32", vec![])]
        );
    }
}
