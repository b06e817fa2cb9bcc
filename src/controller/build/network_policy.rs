//! The NetworkPolicy `<server>`: ingress only to the gateway port (from anywhere: bound
//! clients and the prober); egress unrestricted unless a policy sets `egress`, then DNS
//! (if every such policy allows it), the merged destinations, and the API server for the
//! gateway's Events and TokenReviews ([`BuildContext::api_server_egress`]: the addresses
//! and ports of the `kubernetes` Service's endpoints, since NetworkPolicies apply after
//! the Service DNAT, plus its ClusterIP; read by [`crate::controller::api_server_egress`]).
//!
//! A NetworkPolicy applies to the whole pod, so what the gateway needs (the remote URL,
//! the API server) is open to the `mcp` container too; it still holds no API token.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildContext, Target, labels};
use crate::api::policy::EgressRule;

/// The NetworkPolicy `<server>`.
pub(crate) fn network_policy(target: &Target<'_>, ctx: &BuildContext) -> NetworkPolicy {
    let mut types = vec!["Ingress".to_owned()];
    let egress = ctx.egress.as_ref().map(|e| {
        types.push("Egress".to_owned());
        let mut rules = Vec::new();
        if e.allow_dns {
            rules.push(NetworkPolicyEgressRule {
                to: None,
                ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
            });
        }
        rules.extend(e.to.iter().map(egress_rule));
        rules.extend(ctx.api_server_egress.iter().map(egress_rule));
        rules
    });
    NetworkPolicy {
        metadata: labels::child_meta(target.name, target),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(target.name)),
                match_expressions: None,
            }),
            policy_types: Some(types),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![port("TCP", target.gateway.port)]),
            }]),
            egress,
        }),
    }
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some(protocol.into()),
        end_port: None,
    }
}

fn egress_rule(rule: &EgressRule) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: rule.cidr.clone(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: (!rule.ports.is_empty())
            .then(|| rule.ports.iter().map(|p| port("TCP", *p)).collect()),
    }
}
