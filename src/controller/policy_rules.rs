//! Pure checks of an McpServer against the McpPolicies that target it, run before
//! anything is built: workload rules (a broken one means Accepted=False, reason
//! PolicyViolation, nothing deployed) and the merge of egress rules into one
//! [`EffectiveEgress`] for the NetworkPolicy. No client, no I/O.
//!
//! Egress semantics (strictest combination, as for every other policy field): only
//! policies that set `egress` restrict it; with none, egress is unrestricted. With
//! several, a destination is allowed only if **every** such policy allows it: the `to`
//! lists are intersected (CIDRs that overlap narrow to the smaller network; port lists
//! intersect, an empty list meaning every port), so adding a policy never widens egress.
//! DNS is allowed only if every such policy allows it. A CIDR that does not parse (which
//! admission prevents) allows nothing.

use std::fmt;
use std::net::IpAddr;

use crate::api::McpPolicySpec;
use crate::api::policy::EgressRule;
use crate::api::server::McpServer;
use crate::policy::{glob_match, parse_quantity_bytes};

/// A workload rule the server breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The McpPolicy whose rule is broken.
    pub policy: String,
    /// The rule, as written in the policy: `workload.allowedImages`, …
    pub rule: &'static str,
    /// What is wrong, naming the policy and the rule.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every workload rule of `policies` (name, spec) that the server breaks, in policy-name
/// order. Empty = the server may be deployed. Rules on the image, user and memory apply to
/// `spec.container` only; maxReplicas to every server that runs pods (a remote server with
/// its gateway enabled too).
pub fn workload_violations(
    server: &McpServer,
    policies: &[(&str, &McpPolicySpec)],
) -> Vec<Violation> {
    let mut policies = policies.to_vec();
    policies.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (name, spec) in policies {
        if let Some(rules) = &spec.workload {
            check_rules(server, name, rules, &mut out);
        }
    }
    out
}

fn check_rules(
    server: &McpServer,
    policy: &str,
    rules: &crate::api::policy::WorkloadRules,
    out: &mut Vec<Violation>,
) {
    let mut violation = |rule: &'static str, what: String| {
        out.push(Violation {
            policy: policy.to_owned(),
            rule,
            message: format!("policy {policy}, rule {rule}: {what}"),
        });
    };
    let spec = &server.spec;
    let runs_pods = spec.container.is_some() || spec.gateway.as_ref().is_none_or(|g| g.enabled);
    if let Some(max) = rules.max_replicas
        && runs_pods
        && spec.replicas > max
    {
        violation(
            "workload.maxReplicas",
            format!("spec.replicas is {}, at most {max} allowed", spec.replicas),
        );
    }
    let Some(c) = &spec.container else {
        return;
    };
    if !rules.allowed_images.is_empty()
        && !rules.allowed_images.iter().any(|g| glob_match(g, &c.image))
    {
        violation(
            "workload.allowedImages",
            format!(
                "image {:?} matches none of {:?}",
                c.image, rules.allowed_images
            ),
        );
    }
    if rules.require_digest && !has_digest(&c.image) {
        violation(
            "workload.requireDigest",
            format!(
                "image {:?} names no digest; use <image>@sha256:<64 hex digits>",
                c.image
            ),
        );
    }
    if rules.require_non_root {
        let pod = c.pod_security_context.as_ref();
        let ctr = c.security_context.as_ref();
        let root_uid = ctr.and_then(|s| s.run_as_user) == Some(0)
            || pod.and_then(|s| s.run_as_user) == Some(0);
        let non_root_off = ctr.and_then(|s| s.run_as_non_root) == Some(false)
            || pod.and_then(|s| s.run_as_non_root) == Some(false);
        if root_uid || non_root_off {
            violation(
                "workload.requireNonRoot",
                "the server runs as root (runAsUser 0 or runAsNonRoot false in spec.container.securityContext or podSecurityContext)".to_owned(),
            );
        }
    }
    if let Some(max) = &rules.max_memory {
        let Some(max_bytes) = parse_quantity_bytes(&max.0) else {
            violation(
                "workload.maxMemory",
                format!(
                    "{:?} in the policy is not a quantity (use e.g. 512Mi)",
                    max.0
                ),
            );
            return;
        };
        let limit = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"));
        match limit {
            None => violation(
                "workload.maxMemory",
                format!(
                    "spec.container.resources.limits.memory is not set; set it to at most {}",
                    max.0
                ),
            ),
            Some(q) => match parse_quantity_bytes(&q.0) {
                None => violation(
                    "workload.maxMemory",
                    format!(
                        "spec.container.resources.limits.memory {:?} is not a quantity",
                        q.0
                    ),
                ),
                Some(bytes) if bytes > max_bytes => violation(
                    "workload.maxMemory",
                    format!(
                        "spec.container.resources.limits.memory {} is above the maximum {}",
                        q.0, max.0
                    ),
                ),
                Some(_) => {}
            },
        }
    }
}

/// Whether an image reference names a sha256 digest.
fn has_digest(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The egress every policy that sets one allows (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveEgress {
    /// Names of the policies that restrict egress, sorted.
    pub policies: Vec<String>,
    /// DNS (UDP and TCP 53) to anywhere.
    pub allow_dns: bool,
    /// Allowed destinations: canonical CIDRs, sorted, TCP ports sorted (empty = all).
    pub to: Vec<EgressRule>,
}

/// Merges the egress rules of `policies` (name, spec). None when no policy sets egress.
pub fn merge_egress(policies: &[(&str, &McpPolicySpec)]) -> Option<EffectiveEgress> {
    let mut policies = policies.to_vec();
    policies.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Option<(EffectiveEgress, Vec<Rule>)> = None;
    for (name, spec) in policies {
        let Some(egress) = &spec.egress else {
            continue;
        };
        let rules: Vec<Rule> = egress.to.iter().filter_map(Rule::parse).collect();
        out = Some(match out {
            None => (
                EffectiveEgress {
                    policies: vec![name.to_owned()],
                    allow_dns: egress.allow_dns,
                    to: Vec::new(),
                },
                rules,
            ),
            Some((mut acc, prev)) => {
                acc.policies.push(name.to_owned());
                acc.allow_dns &= egress.allow_dns;
                let both = prev
                    .iter()
                    .flat_map(|a| rules.iter().filter_map(move |b| a.intersect(b)))
                    .collect();
                (acc, both)
            }
        });
    }
    let (mut acc, mut rules) = out?;
    rules.sort();
    rules.dedup();
    let kept: Vec<Rule> = rules
        .iter()
        .filter(|r| !rules.iter().any(|s| s != *r && s.subsumes(r)))
        .cloned()
        .collect();
    acc.to = kept.into_iter().map(Rule::into_api).collect();
    Some(acc)
}

/// A parsed egress rule: network (host bits cleared), prefix, ports (empty = all).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    net: IpAddr,
    prefix: u8,
    ports: Vec<i32>,
}

impl Rule {
    fn parse(rule: &EgressRule) -> Option<Self> {
        let (addr, prefix) = rule.cidr.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        let mut ports = rule.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        Some(Rule {
            net: mask(addr, prefix),
            prefix,
            ports,
        })
    }

    /// The destinations both rules allow, if any.
    fn intersect(&self, other: &Rule) -> Option<Rule> {
        let (wide, narrow) = if self.prefix <= other.prefix {
            (self, other)
        } else {
            (other, self)
        };
        if wide.net.is_ipv4() != narrow.net.is_ipv4() || mask(narrow.net, wide.prefix) != wide.net {
            return None;
        }
        let ports = match (self.ports.is_empty(), other.ports.is_empty()) {
            (true, _) => other.ports.clone(),
            (_, true) => self.ports.clone(),
            _ => {
                let both: Vec<i32> = self
                    .ports
                    .iter()
                    .filter(|p| other.ports.contains(p))
                    .copied()
                    .collect();
                if both.is_empty() {
                    return None;
                }
                both
            }
        };
        Some(Rule {
            net: narrow.net,
            prefix: narrow.prefix,
            ports,
        })
    }

    /// Whether every destination `other` allows is allowed by `self`.
    fn subsumes(&self, other: &Rule) -> bool {
        self.net.is_ipv4() == other.net.is_ipv4()
            && self.prefix <= other.prefix
            && mask(other.net, self.prefix) == self.net
            && (self.ports.is_empty()
                || (!other.ports.is_empty() && other.ports.iter().all(|p| self.ports.contains(p))))
    }

    fn into_api(self) -> EgressRule {
        EgressRule {
            cidr: format!("{}/{}", self.net, self.prefix),
            ports: self.ports,
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{Egress, WorkloadRules};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn server(yaml: &str) -> McpServer {
        serde_yaml::from_str(&format!(
            "apiVersion: mcp-operator.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: s, namespace: ns}}\nspec: {yaml}"
        ))
        .unwrap()
    }

    fn container(extra: &str) -> McpServer {
        server(&format!(
            "{{transport: Stdio, container: {{image: 'node:22-alpine', command: [npx], resources: {{limits: {{memory: 512Mi}}}}{extra}}}}}"
        ))
    }

    fn workload(rules: WorkloadRules) -> McpPolicySpec {
        McpPolicySpec {
            workload: Some(rules),
            ..Default::default()
        }
    }

    fn check(server: &McpServer, rules: WorkloadRules) -> Vec<Violation> {
        workload_violations(server, &[("strict", &workload(rules))])
    }

    fn only_rule(v: &[Violation], rule: &str) {
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].rule, rule);
        assert_eq!(v[0].policy, "strict");
        assert!(
            v[0].message.contains("policy strict") && v[0].message.contains(rule),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn allowed_images() {
        let rules = |g: &[&str]| WorkloadRules {
            allowed_images: g.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(check(&container(""), rules(&["node:*", "ghcr.io/x/*"])).is_empty());
        only_rule(
            &check(&container(""), rules(&["ghcr.io/x/*"])),
            "workload.allowedImages",
        );
        // Remote servers have no image of their own.
        let remote = server("{transport: StreamableHttp, remote: {url: 'https://x/mcp'}}");
        assert!(check(&remote, rules(&["ghcr.io/x/*"])).is_empty());
    }

    #[test]
    fn require_digest() {
        let rules = WorkloadRules {
            require_digest: true,
            ..Default::default()
        };
        only_rule(
            &check(&container(""), rules.clone()),
            "workload.requireDigest",
        );
        let digest = format!("node@sha256:{}", "a".repeat(64));
        let s = server(&format!(
            "{{transport: Stdio, container: {{image: '{digest}', command: [npx]}}}}"
        ));
        assert!(check(&s, rules.clone()).is_empty());
        assert!(!has_digest("node@sha256:abc"));
    }

    #[test]
    fn require_non_root() {
        let rules = WorkloadRules {
            require_non_root: true,
            ..Default::default()
        };
        assert!(
            check(
                &container(", podSecurityContext: {runAsUser: 1000}"),
                rules.clone()
            )
            .is_empty()
        );
        for extra in [
            ", podSecurityContext: {runAsUser: 0}",
            ", securityContext: {runAsUser: 0}",
            ", securityContext: {runAsNonRoot: false}",
        ] {
            only_rule(
                &check(&container(extra), rules.clone()),
                "workload.requireNonRoot",
            );
        }
    }

    #[test]
    fn max_memory() {
        let rules = |q: &str| WorkloadRules {
            max_memory: Some(Quantity(q.into())),
            ..Default::default()
        };
        assert!(check(&container(""), rules("1Gi")).is_empty());
        assert!(check(&container(""), rules("512Mi")).is_empty());
        let v = check(&container(""), rules("256Mi"));
        only_rule(&v, "workload.maxMemory");
        assert!(v[0].message.contains("512Mi") && v[0].message.contains("256Mi"));
        let no_limit = server("{transport: Stdio, container: {image: x, command: [npx]}}");
        let v = check(&no_limit, rules("1Gi"));
        only_rule(&v, "workload.maxMemory");
        assert!(v[0].message.contains("not set"), "{}", v[0].message);
    }

    #[test]
    fn max_replicas() {
        let rules = WorkloadRules {
            max_replicas: Some(2),
            ..Default::default()
        };
        let s = server("{transport: Stdio, replicas: 3, container: {image: x, command: [npx]}}");
        only_rule(&check(&s, rules.clone()), "workload.maxReplicas");
        let s = server("{transport: Stdio, replicas: 2, container: {image: x, command: [npx]}}");
        assert!(check(&s, rules.clone()).is_empty());
        // A catalogue-only remote server runs no pods.
        let s = server(
            "{transport: Sse, replicas: 5, remote: {url: 'https://x/sse'}, gateway: {enabled: false}}",
        );
        assert!(check(&s, rules.clone()).is_empty());
        let s = server("{transport: Sse, replicas: 5, remote: {url: 'https://x/sse'}}");
        only_rule(&check(&s, rules), "workload.maxReplicas");
    }

    #[test]
    fn every_policy_is_checked_and_named() {
        let a = workload(WorkloadRules {
            max_replicas: Some(0),
            ..Default::default()
        });
        let b = workload(WorkloadRules {
            require_digest: true,
            ..Default::default()
        });
        let v = workload_violations(&container(""), &[("b", &b), ("a", &a)]);
        let got: Vec<_> = v.iter().map(|v| (v.policy.as_str(), v.rule)).collect();
        assert_eq!(
            got,
            [
                ("a", "workload.maxReplicas"),
                ("b", "workload.requireDigest")
            ]
        );
    }

    fn egress(dns: bool, to: &[(&str, &[i32])]) -> McpPolicySpec {
        McpPolicySpec {
            egress: Some(Egress {
                allow_dns: dns,
                to: to
                    .iter()
                    .map(|(c, p)| EgressRule {
                        cidr: c.to_string(),
                        ports: p.to_vec(),
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    fn cidrs(e: &EffectiveEgress) -> Vec<(String, Vec<i32>)> {
        e.to.iter()
            .map(|r| (r.cidr.clone(), r.ports.clone()))
            .collect()
    }

    #[test]
    fn egress_unrestricted_without_policies_that_set_it() {
        assert_eq!(merge_egress(&[]), None);
        assert_eq!(merge_egress(&[("p", &McpPolicySpec::default())]), None);
    }

    #[test]
    fn egress_single_policy_is_canonicalised() {
        let p = egress(
            true,
            &[("10.1.2.3/8", &[443, 80, 443]), ("2001:db8::1/32", &[])],
        );
        let e = merge_egress(&[("p", &p)]).unwrap();
        assert!(e.allow_dns);
        assert_eq!(
            cidrs(&e),
            [
                ("10.0.0.0/8".to_owned(), vec![80, 443]),
                ("2001:db8::/32".to_owned(), vec![])
            ]
        );
    }

    #[test]
    fn egress_policies_intersect() {
        let wide = egress(true, &[("0.0.0.0/0", &[443]), ("10.0.0.0/8", &[])]);
        let narrow = egress(
            false,
            &[("10.2.0.0/16", &[443, 5432]), ("192.168.0.0/16", &[22])],
        );
        let e = merge_egress(&[
            ("wide", &wide),
            ("narrow", &narrow),
            ("none", &McpPolicySpec::default()),
        ])
        .unwrap();
        assert!(!e.allow_dns, "DNS only if every policy allows it");
        assert_eq!(e.policies, ["narrow", "wide"]);
        assert_eq!(
            cidrs(&e),
            [("10.2.0.0/16".to_owned(), vec![443, 5432])],
            "10.2.0.0/16 port 443 alone is subsumed"
        );
        // Disjoint policies allow nothing but (maybe) DNS.
        let a = egress(true, &[("10.0.0.0/8", &[])]);
        let b = egress(true, &[("192.168.0.0/16", &[])]);
        let e = merge_egress(&[("a", &a), ("b", &b)]).unwrap();
        assert!(e.to.is_empty() && e.allow_dns);
        // Bad CIDRs allow nothing.
        let bad = egress(true, &[("not-a-cidr", &[])]);
        assert!(merge_egress(&[("bad", &bad)]).unwrap().to.is_empty());
    }
}
