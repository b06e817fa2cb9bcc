//! Egress to the API server under an egress policy: the server's NetworkPolicy lets the
//! gateway reach the addresses and ports of the `kubernetes` Service's EndpointSlices in
//! `default` (NetworkPolicies apply after the Service DNAT) and its ClusterIP; when they
//! cannot be read, reconciles still succeed with the policy's own rules.

use k8s_openapi::api::{
    core::v1::Service, discovery::v1::EndpointSlice, networking::v1::NetworkPolicy,
};

use super::*;

/// The API server's objects as a cluster has them: an IPv4 and an IPv6 EndpointSlice
/// (port 6443) labelled for Service `default/kubernetes` (ClusterIP 10.96.0.1:443).
pub(super) async fn create_api_server_endpoints(admin: &Client) {
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), "default");
    for (name, family, addresses) in [
        ("kubernetes", "IPv4", json!(["172.18.0.3", "172.18.0.4"])),
        ("kubernetes-ipv6", "IPv6", json!(["fd00:18::3"])),
    ] {
        let slice = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": family,
            "endpoints": addresses.as_array().unwrap().iter()
                .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
                .collect::<Vec<_>>(),
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }))
        .expect("EndpointSlice");
        slices
            .create(&PostParams::default(), &slice)
            .await
            .expect("EndpointSlice created");
    }
    // Another Service's slice in `default` is not the API server.
    let other = serde_json::from_value(json!({
        "metadata": {"name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.9"]}],
        "ports": [{"port": 8080}],
    }))
    .expect("EndpointSlice");
    slices
        .create(&PostParams::default(), &other)
        .await
        .expect("EndpointSlice created");
    let service = serde_json::from_value(json!({
        "metadata": {"name": "kubernetes"},
        "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    }))
    .expect("Service");
    Api::<Service>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &service)
        .await
        .expect("Service created");
}

/// What [`create_api_server_endpoints`] makes the NetworkPolicy allow.
pub(super) const API_SERVER_RULES: [(&str, &str); 4] = [
    ("10.96.0.1/32", "TCP/443"),
    ("172.18.0.3/32", "TCP/6443"),
    ("172.18.0.4/32", "TCP/6443"),
    ("fd00:18::3/128", "TCP/6443"),
];

/// The egress rules of NetworkPolicy `name` as (cidr or "*", "PROTO/port"), one pair per
/// port; None while it has no egress rules.
async fn egress(client: &Client, ns: &str, name: &str) -> Option<Vec<(String, String)>> {
    let np = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let mut out = Vec::new();
    for rule in np.spec?.egress? {
        let to = rule
            .to
            .iter()
            .flatten()
            .find_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
            .unwrap_or_else(|| "*".into());
        for port in rule.ports.unwrap_or_default() {
            let number = match port.port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n,
                other => panic!("unexpected port {other:?}"),
            };
            let protocol = port.protocol.unwrap_or_default();
            out.push((to.clone(), format!("{protocol}/{number}")));
        }
    }
    Some(out)
}

/// Waits until NetworkPolicy `name` allows exactly `want` (order ignored).
pub(super) async fn wait_egress(client: &Client, ns: &str, name: &str, want: &[(&str, &str)]) {
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    want.sort();
    crate::support::eventually::eventually(
        &format!("NetworkPolicy {ns}/{name} to be {want:?}"),
        Duration::from_secs(60),
        async || {
            let got = egress(client, ns, name).await.map(|mut g| {
                g.sort();
                g
            });
            if got.as_ref() == Some(&want) {
                Ok(())
            } else {
                Err(got)
            }
        },
    )
    .await;
}

/// No reconcile failed, but for write conflicts (retried, unrelated to this).
fn assert_no_failed_reconciles(operator: &Operator) {
    let metrics = operator.metrics.render();
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mcp_operator_reconcile_errors_total{"))
        .filter(|l| !l.contains("reason=\"Conflict\""))
        .collect();
    assert!(failed.is_empty(), "failed reconciles: {failed:?}");
}

fn memory() -> Value {
    json!({
        "transport": "Stdio",
        "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]},
    })
}

#[tokio::test]
async fn egress_policies_allow_the_api_server_endpoints() {
    let (_api, client) = cluster().await;
    create_api_server_endpoints(&client).await;
    let ns = "egress-api";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "memory", memory()).await;
    wait_condition(&client, ns, "memory", "Accepted", "True", None).await;
    create_policy(
        &client,
        ns,
        "https",
        json!({"serverSelector": {}, "egress": {"allowDns": false, "to": [{"cidr": "10.0.0.0/8", "ports": [443]}]}}),
    )
    .await;
    let mut want = vec![("10.0.0.0/8", "TCP/443")];
    want.extend(API_SERVER_RULES);
    wait_egress(&client, ns, "memory", &want).await;
    assert_no_failed_reconciles(&operator);
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn without_api_server_endpoints_reconciles_still_succeed() {
    let (_api, client) = cluster().await;
    let ns = "egress-no-api";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "memory", memory()).await;
    create_policy(
        &client,
        ns,
        "https",
        json!({"targetRefs": [{"name": "memory"}], "egress": {"allowDns": false, "to": [{"cidr": "10.0.0.0/8", "ports": [443]}]}}),
    )
    .await;
    wait_egress(&client, ns, "memory", &[("10.0.0.0/8", "TCP/443")]).await;
    wait_condition(&client, ns, "memory", "Accepted", "True", None).await;
    assert_no_failed_reconciles(&operator);
    operator.stop().await.expect("clean shutdown");
}
