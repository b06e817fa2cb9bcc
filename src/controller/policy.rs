//! The McpPolicy controller: keeps each policy's status true — `targets` (the McpServers
//! it applies to, sorted), `targetCount`, `observedGeneration` and the `Accepted`
//! condition (False, reason InvalidSpec, when a selector, quantity, duration or CIDR does
//! not parse; the message names the field). It watches McpServers too, since a label
//! change moves a server into or out of a selector. Status is written only when it
//! changes, so an idle cluster sees no writes.
//!
//! It also answers the McpServer controller's question "which servers does a change of
//! this policy affect?" ([`affected_servers`]): the ones it targets now plus the ones it
//! targeted before (its previous `status.targets`, and servers whose
//! `status.appliedPolicies` still name it) — exactly those, deletion included.
//!
//! What a policy does to a server (merge, workload rules, egress) is decided in
//! `crate::policy`, `policy_rules` and `server`; both sides use [`targeting_policies`]
//! so status and effect never disagree.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{LabelSelector, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::{Selector, SelectorExt},
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tokio::sync::watch;

use super::{
    error::Error,
    events::Events,
    metrics::Metrics,
    retry,
    shared::{scoped, write_status},
};
use crate::{
    api::{
        McpPolicy, McpPolicySpec, McpServer,
        common::{condition, find_condition, parse_duration, upsert_condition},
        policy::McpPolicyStatus,
    },
    policy::parse_quantity_bytes,
};

/// Condition type of McpPolicy status.
pub const ACCEPTED: &str = "Accepted";

/// What the policy controller shares between reconciles.
pub struct PolicyContext {
    /// The API client.
    pub client: Client,
    /// Event recorder (Events on the McpPolicy).
    pub events: Events,
    /// Metrics (reconcile counts and writes are shared with the server controller).
    pub metrics: Arc<Metrics>,
    /// True while this replica may write.
    pub leader: Arc<AtomicBool>,
    /// Consecutive failed reconciles per object, for backoff.
    pub retries: Arc<super::retry::Retries>,
}

impl PolicyContext {
    fn may_write(&self) -> Result<(), Error> {
        if self.leader.load(Ordering::Acquire) {
            self.metrics.wrote();
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }
}

/// The policies (from `policies`) that target `server`, sorted by name.
pub fn targeting_policies(policies: &[Arc<McpPolicy>], server: &McpServer) -> Vec<Arc<McpPolicy>> {
    let ns = server.namespace();
    let name = server.name_any();
    let labels = server.labels();
    let mut out: Vec<Arc<McpPolicy>> = policies
        .iter()
        .filter(|p| p.namespace() == ns && p.meta().deletion_timestamp.is_none())
        .filter(|p| {
            p.spec.target_refs.iter().any(|r| r.name == name)
                || p.spec.server_selector.as_ref().is_some_and(|sel| {
                    Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(labels))
                })
        })
        .cloned()
        .collect();
    out.sort_by_key(|p| p.name_any());
    out
}

/// Names of the servers (from `servers`) that `policy` applies to, sorted.
pub fn targets(policy: &McpPolicy, servers: &[Arc<McpServer>]) -> Vec<String> {
    let one = [Arc::new(policy.clone())];
    let mut out: Vec<String> = servers
        .iter()
        .filter(|s| s.meta().deletion_timestamp.is_none())
        .filter(|s| !targeting_policies(&one, s).is_empty())
        .map(|s| s.name_any())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The McpServers a change (or the deletion) of `policy` can affect: those it targets
/// now, those its status says it targeted, and those whose status still lists it among
/// their applied policies. Sorted, deduplicated.
pub fn affected_servers(
    policy: &McpPolicy,
    servers: &[Arc<McpServer>],
) -> Vec<ObjectRef<McpServer>> {
    let ns = policy.namespace();
    let name = policy.name_any();
    let previous: BTreeSet<&str> = policy
        .status
        .as_ref()
        .map(|s| s.targets.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let now: BTreeSet<String> = targets(policy, servers).into_iter().collect();
    let mut out: Vec<ObjectRef<McpServer>> = servers
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            let server = s.name_any();
            now.contains(&server)
                || previous.contains(server.as_str())
                || s.status
                    .as_ref()
                    .is_some_and(|st| st.applied_policies.contains(&name))
        })
        .map(|s| ObjectRef::from_obj(&**s))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup();
    out
}

/// The McpPolicies whose targets a change (or the deletion) of `server` can change: those
/// that target it now, and those whose status lists it.
pub fn affected_policies(
    server: &McpServer,
    policies: &[Arc<McpPolicy>],
) -> Vec<ObjectRef<McpPolicy>> {
    let ns = server.namespace();
    let name = server.name_any();
    let now: Vec<String> = targeting_policies(policies, server)
        .iter()
        .map(|p| p.name_any())
        .collect();
    policies
        .iter()
        .filter(|p| p.namespace() == ns)
        .filter(|p| {
            now.contains(&p.name_any())
                || p.status
                    .as_ref()
                    .is_some_and(|st| st.targets.contains(&name))
        })
        .map(|p| ObjectRef::from_obj(&**p))
        .collect()
}

/// Every field of `spec` that cannot be used, as `field: problem` messages a person can
/// act on. Empty = the policy is valid. (Admission catches most of these in a real
/// cluster; quantities and selectors are not checked by the schema.)
pub fn spec_problems(spec: &McpPolicySpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(selector) = &spec.server_selector {
        selector_problems(selector, &mut out);
    }
    let quantity = |field: &str,
                    q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
                    out: &mut Vec<String>| {
        if let Some(q) = q
            && parse_quantity_bytes(&q.0).is_none()
        {
            out.push(format!(
                "spec.{field}: {:?} is not a quantity (use e.g. 512Ki, 1Mi, 1000000)",
                q.0
            ));
        }
    };
    if let Some(limits) = &spec.limits {
        quantity(
            "limits.maxRequestBytes",
            &limits.max_request_bytes,
            &mut out,
        );
        quantity(
            "limits.maxResponseBytes",
            &limits.max_response_bytes,
            &mut out,
        );
        if let Some(d) = &limits.call_timeout
            && parse_duration(&d.0).is_err()
        {
            out.push(format!(
                "spec.limits.callTimeout: {:?} is not a duration (use e.g. 30s, 2m)",
                d.0
            ));
        }
    }
    if let Some(workload) = &spec.workload {
        quantity("workload.maxMemory", &workload.max_memory, &mut out);
    }
    if let Some(egress) = &spec.egress {
        for (i, rule) in egress.to.iter().enumerate() {
            if !is_cidr(&rule.cidr) {
                out.push(format!(
                    "spec.egress.to[{i}].cidr: {:?} is not a network in CIDR notation (use e.g. 10.0.0.0/8)",
                    rule.cidr
                ));
            }
            if let Some(p) = rule.ports.iter().find(|p| !(1..=65535).contains(*p)) {
                out.push(format!(
                    "spec.egress.to[{i}].ports: {p} is not a port (1-65535)"
                ));
            }
        }
    }
    out
}

fn selector_problems(selector: &LabelSelector, out: &mut Vec<String>) {
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("spec.serverSelector.matchExpressions[{i}]");
        let values = req.values.as_ref().map_or(0, Vec::len);
        match req.operator.as_str() {
            "In" | "NotIn" if values == 0 => out.push(format!(
                "{field}: operator {} needs at least one value",
                req.operator
            )),
            "Exists" | "DoesNotExist" if values > 0 => out.push(format!(
                "{field}: operator {} takes no values",
                req.operator
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => out.push(format!(
                "{field}.operator: {other:?} is not one of In, NotIn, Exists, DoesNotExist"
            )),
        }
    }
}

fn is_cidr(cidr: &str) -> bool {
    let Some((addr, prefix)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(prefix)) = (addr.parse::<IpAddr>(), prefix.parse::<u8>()) else {
        return false;
    };
    prefix <= if addr.is_ipv4() { 32 } else { 128 }
}

/// The new status of `policy`, from its previous status, its targets and the problems
/// of its spec. Keeps `lastTransitionTime` unless `Accepted` flips.
pub fn compute_status(
    policy: &McpPolicy,
    targets: Vec<String>,
    missing_refs: &[String],
    problems: &[String],
    now: Time,
) -> McpPolicyStatus {
    let generation = policy.metadata.generation;
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.target_count = Some(i32::try_from(targets.len()).unwrap_or(i32::MAX));
    status.targets = targets;
    let c = if problems.is_empty() {
        let mut message = format!(
            "the policy is valid; it applies to {} McpServer(s)",
            status.target_count.unwrap_or(0)
        );
        if !missing_refs.is_empty() {
            message.push_str(&format!(
                "; spec.targetRefs names McpServers that do not exist: {}",
                missing_refs.join(", ")
            ));
        }
        condition(ACCEPTED, true, "Accepted", message, generation, now)
    } else {
        condition(
            ACCEPTED,
            false,
            "InvalidSpec",
            super::events::truncate(problems.join("; ")),
            generation,
            now,
        )
    };
    upsert_condition(&mut status.conditions, c);
    status
}

/// The reconcile entry point given to the kube-runtime Controller.
pub async fn reconcile(policy: Arc<McpPolicy>, ctx: Arc<PolicyContext>) -> Result<Action, Error> {
    let key = retry::key(&*policy);
    retry::measured(
        &ctx.metrics,
        &ctx.retries,
        &key,
        reconcile_policy(&policy, &ctx),
    )
    .await
}

/// The error policy given to the kube-runtime Controller: per-policy backoff.
pub fn error_policy(policy: Arc<McpPolicy>, error: &Error, ctx: Arc<PolicyContext>) -> Action {
    retry::on_error(&ctx.retries, &retry::key(&*policy), error)
}

async fn reconcile_policy(policy: &McpPolicy, ctx: &PolicyContext) -> Result<Action, Error> {
    if policy.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = policy.namespace().unwrap_or_default();
    // Listed, not cached: a fresh list is never older than the event that woke us.
    let servers: Vec<Arc<McpServer>> = Api::<McpServer>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    let targets = targets(policy, &servers);
    let missing: Vec<String> = policy
        .spec
        .target_refs
        .iter()
        .filter(|r| !servers.iter().any(|s| s.name_any() == r.name))
        .map(|r| r.name.clone())
        .collect();
    let problems = spec_problems(&policy.spec);
    let new = compute_status(policy, targets, &missing, &problems, Time(Timestamp::now()));
    if policy.status.as_ref() == Some(&new) {
        return Ok(Action::await_change());
    }
    ctx.may_write()?;
    write_status(&ctx.client, policy, &new).await?;
    let old = policy
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, ACCEPTED));
    if let Some(c) = find_condition(&new.conditions, ACCEPTED).filter(|c| c.status == "False")
        && old.is_none_or(|o| o.status != "False" || o.message != c.message)
    {
        ctx.events
            .publish(
                &policy.object_ref(&()),
                true,
                &c.reason,
                "Validate",
                c.message.clone(),
            )
            .await;
    }
    Ok(Action::await_change())
}

/// One McpPolicy controller for `ns` (None: every namespace): the future running it
/// until `stop` turns true, and a future that completes once its cache has synced.
pub fn controller(
    ctx: Arc<PolicyContext>,
    ns: Option<&str>,
    mut stop: watch::Receiver<bool>,
) -> (BoxFuture<'static, ()>, BoxFuture<'static, ()>) {
    let client = ctx.client.clone();
    let cfg = watcher::Config::default();
    let controller = Controller::new(scoped::<McpPolicy>(&client, ns), cfg.clone()).with_config(
        super::shared::controller_config(super::shared::DEFAULT_RECONCILE_CONCURRENCY),
    );
    let policies = controller.store();
    let by_server = policies.clone();
    let run = controller
        // Labels (selector targets), creation and deletion of servers change targets.
        .watches(
            scoped::<McpServer>(&client, ns),
            cfg,
            move |server: McpServer| affected_policies(&server, &by_server.state()),
        )
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "policy controller event");
            }
        })
        .boxed();
    let ready = async move {
        super::shared::synced(&policies).await;
    }
    .boxed();
    (run, ready)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::server::McpServerStatus;

    fn server(name: &str, labels: &[(&str, &str)]) -> Arc<McpServer> {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "mcp-operator.dev/v1alpha1",
                "kind": "McpServer",
                "metadata": {"name": name, "namespace": "ns", "labels": labels},
                "spec": {"transport": "StreamableHttp", "remote": {"url": "http://x/mcp"}},
            }))
            .unwrap(),
        )
    }

    fn policy(spec: serde_json::Value) -> McpPolicy {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1",
            "kind": "McpPolicy",
            "metadata": {"name": "p", "namespace": "ns", "generation": 2},
            "spec": spec,
        }))
        .unwrap()
    }

    fn names(refs: &[ObjectRef<McpServer>]) -> Vec<&str> {
        refs.iter().map(|r| r.name.as_str()).collect()
    }

    fn now() -> Time {
        Time(Timestamp::now())
    }

    #[test]
    fn targets_by_ref_and_selector_sorted() {
        let servers = [
            server("c", &[("team", "x")]),
            server("a", &[("team", "x")]),
            server("b", &[("team", "y")]),
            server("d", &[]),
        ];
        let p = policy(
            json!({"targetRefs": [{"name": "d"}, {"name": "ghost"}], "serverSelector": {"matchLabels": {"team": "x"}}}),
        );
        assert_eq!(targets(&p, &servers), ["a", "c", "d"]);
        let all = policy(json!({"serverSelector": {}}));
        assert_eq!(targets(&all, &servers), ["a", "b", "c", "d"]);
        let expr = policy(
            json!({"serverSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}}),
        );
        assert_eq!(targets(&expr, &servers), ["b", "d"]);
    }

    #[test]
    fn a_change_reconciles_new_and_previous_targets_only() {
        let mut b = (*server("b", &[("team", "y")])).clone();
        b.status = Some(McpServerStatus {
            applied_policies: vec!["p".into()],
            ..Default::default()
        });
        let servers = [
            server("a", &[("team", "x")]),
            Arc::new(b),
            server("c", &[("team", "z")]),
            server("d", &[("team", "z")]),
            server("e", &[("team", "z")]),
        ];
        let mut p = policy(json!({"serverSelector": {"matchLabels": {"team": "x"}}}));
        // Only the new target without any history.
        assert_eq!(names(&affected_servers(&p, &servers)), ["a", "b"]);
        p.status = Some(McpPolicyStatus {
            targets: vec!["c".into(), "gone".into()],
            ..Default::default()
        });
        assert_eq!(
            names(&affected_servers(&p, &servers)),
            ["a", "b", "c"],
            "now (a), applied (b), previous status (c); never d or e"
        );
        // Another namespace is never touched.
        let mut other = (*server("a", &[("team", "x")])).clone();
        other.metadata.namespace = Some("other".into());
        assert!(affected_servers(&p, &[Arc::new(other)]).is_empty());
    }

    #[test]
    fn a_server_change_reconciles_policies_that_target_it_now_or_did() {
        let mut old = policy(json!({"serverSelector": {"matchLabels": {"team": "y"}}}));
        old.metadata.name = Some("old".into());
        old.status = Some(McpPolicyStatus {
            targets: vec!["a".into()],
            ..Default::default()
        });
        let mut new = policy(json!({"serverSelector": {"matchLabels": {"team": "x"}}}));
        new.metadata.name = Some("new".into());
        let mut unrelated = policy(json!({"targetRefs": [{"name": "z"}]}));
        unrelated.metadata.name = Some("unrelated".into());
        let policies = [Arc::new(old), Arc::new(new), Arc::new(unrelated)];
        let got: Vec<String> = affected_policies(&server("a", &[("team", "x")]), &policies)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(got, ["old", "new"]);
    }

    #[test]
    fn invalid_fields_are_named() {
        let p = policy(json!({
            "serverSelector": {"matchExpressions": [
                {"key": "a", "operator": "Sideways"},
                {"key": "b", "operator": "In", "values": []},
                {"key": "c", "operator": "Exists", "values": ["x"]},
            ]},
            "limits": {"maxRequestBytes": "lots", "maxResponseBytes": "1Mi", "callTimeout": "soon"},
            "workload": {"maxMemory": "big"},
            "egress": {"to": [{"cidr": "10.0.0.0/33", "ports": [0]}]},
        }));
        let problems = spec_problems(&p.spec);
        let fields = [
            "spec.serverSelector.matchExpressions[0].operator",
            "spec.serverSelector.matchExpressions[1]: operator In",
            "spec.serverSelector.matchExpressions[2]: operator Exists",
            "spec.limits.maxRequestBytes: \"lots\"",
            "spec.limits.callTimeout: \"soon\"",
            "spec.workload.maxMemory: \"big\"",
            "spec.egress.to[0].cidr",
            "spec.egress.to[0].ports: 0",
        ];
        assert_eq!(problems.len(), fields.len(), "{problems:#?}");
        for (p, f) in problems.iter().zip(fields) {
            assert!(p.starts_with(f), "{p} should start with {f}");
        }
        let ok = policy(
            json!({"serverSelector": {}, "limits": {"maxRequestBytes": "1Mi", "callTimeout": "30s"}, "egress": {"to": [{"cidr": "2001:db8::/32", "ports": [443]}]}}),
        );
        assert!(spec_problems(&ok.spec).is_empty());
    }

    #[test]
    fn status_keeps_transition_time_and_flips_on_problems() {
        let mut p = policy(json!({"targetRefs": [{"name": "a"}, {"name": "ghost"}]}));
        let first = compute_status(&p, vec!["a".into()], &["ghost".into()], &[], now());
        assert_eq!(first.observed_generation, Some(2));
        assert_eq!(first.target_count, Some(1));
        let c = find_condition(&first.conditions, ACCEPTED).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Accepted"));
        assert!(c.message.contains("ghost"), "{}", c.message);
        p.status = Some(first.clone());
        let later = Time(Timestamp::now() + std::time::Duration::from_secs(60));
        let again = compute_status(&p, vec!["a".into()], &["ghost".into()], &[], later.clone());
        assert_eq!(again, first, "nothing changed: identical status (no write)");
        let bad = compute_status(&p, vec![], &[], &["spec.x: bad".into()], later.clone());
        let c = find_condition(&bad.conditions, ACCEPTED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(c.message, "spec.x: bad");
        assert_eq!(c.last_transition_time, later);
        assert_eq!(bad.target_count, Some(0));
        assert!(bad.targets.is_empty());
    }
}
