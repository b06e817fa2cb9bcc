//! McpBinding status, pure: the servers it reaches (URL, Ready, how many tools this
//! binding may call), the Ready condition, `secretName`, `tokenRotatedAt` and
//! `observedGeneration`, merged into the previous status so transition times survive.
//!
//! `exposedTools` counts the tools in the server's `status.tools` for which
//! [`EffectivePolicy::binding_decision`] allows this binding: the server's policies
//! (deny/allow, pinning Enforce against `spec.pinnedTools`), then the binding's
//! narrowing, then requireGrant against the binding's grants. It is 0 for servers the
//! binding does not serve (missing, gateway disabled, no URL yet). The server's inventory
//! is capped at 128 tools (`toolsTruncated`); tools beyond it are not counted.

use std::sync::Arc;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::ResourceExt;

use super::{
    secret::Ownership,
    targets::{Reach, Target},
    token::TokenState,
};
use crate::{
    api::{
        McpBinding, McpBindingStatus, McpPolicy, McpServer,
        binding::BindingServerStatus,
        common::{condition, find_condition, upsert_condition},
    },
    controller::policy::targeting_policies,
    policy::{EffectivePolicy, ToolAccess},
};

/// The Ready condition type.
pub const READY: &str = "Ready";

/// What one reconcile observed.
pub struct Observed<'a> {
    /// Every target, sorted by name.
    pub targets: &'a [Target],
    /// The McpPolicies of the binding's namespace.
    pub policies: &'a [Arc<McpPolicy>],
    /// Who holds the Secret name (Foreign: nothing was written).
    pub ownership: Ownership,
    /// The token in the Secret (None when the Secret is someone else's).
    pub token: Option<&'a TokenState>,
}

/// The new status of `binding`.
pub fn compute(binding: &McpBinding, observed: &Observed<'_>, now: Time) -> McpBindingStatus {
    let old = binding.status.clone().unwrap_or_default();
    let generation = binding.metadata.generation;
    let mine = observed.ownership != Ownership::Foreign;
    let mut conditions = old.conditions.clone();
    let (ok, reason, message) = ready(binding, observed);
    upsert_condition(
        &mut conditions,
        condition(READY, ok, reason, message, generation, now),
    );
    McpBindingStatus {
        observed_generation: generation,
        conditions,
        secret_name: mine.then(|| binding.secret_name()),
        servers: observed
            .targets
            .iter()
            .map(|t| server_status(t, observed.policies))
            .collect(),
        token_rotated_at: observed.token.filter(|_| mine).map(|t| Time(t.rotated_at)),
    }
}

/// Whether Ready changed status or reason between two statuses (for Events).
pub fn ready_transition<'a>(
    old: &'a McpBindingStatus,
    new: &'a McpBindingStatus,
) -> Option<&'a Condition> {
    let before = find_condition(&old.conditions, READY);
    let after = find_condition(&new.conditions, READY)?;
    let changed = before.is_none_or(|b| b.status != after.status || b.reason != after.reason);
    changed.then_some(after)
}

fn server_status(target: &Target, policies: &[Arc<McpPolicy>]) -> BindingServerStatus {
    let ready = target.server.as_ref().is_some_and(|s| {
        s.status
            .as_ref()
            .and_then(|st| find_condition(&st.conditions, "Ready"))
            .is_some_and(|c| c.status == "True")
    });
    let (url, exposed_tools) = match (target.reach(), &target.server) {
        (Reach::Served(url), Some(server)) => {
            let n = exposed_tools(server, &target.access, policies);
            (url, n)
        }
        _ => (String::new(), 0),
    };
    BindingServerStatus {
        name: target.name.clone(),
        url,
        ready,
        exposed_tools,
    }
}

/// How many of the server's inventoried tools `access` may call (see the module doc).
pub fn exposed_tools(server: &McpServer, access: &ToolAccess, policies: &[Arc<McpPolicy>]) -> i32 {
    let targeting = targeting_policies(policies, server);
    let specs = targeting
        .iter()
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec));
    // A policy that cannot be merged keeps the server from being accepted: nothing is
    // callable through it.
    let Ok(policy) = EffectivePolicy::merge(specs) else {
        return 0;
    };
    let tools = server
        .status
        .as_ref()
        .map(|s| s.tools.as_slice())
        .unwrap_or_default();
    let n = tools
        .iter()
        .filter(|t| {
            policy
                .binding_decision(&server.spec.pinned_tools, access, &t.name, &t.sha256)
                .is_ok()
        })
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Ready: (status, reason, message).
fn ready(binding: &McpBinding, observed: &Observed<'_>) -> (bool, &'static str, String) {
    let ns = binding.namespace().unwrap_or_default();
    let secret = binding.secret_name();
    if observed.ownership == Ownership::Foreign {
        return (
            false,
            "SecretConflict",
            format!(
                "Secret {ns}/{secret} exists and is not owned by this McpBinding; it is left untouched. Delete it or set spec.secretName to another name"
            ),
        );
    }
    let by = |wanted: fn(&Reach) -> bool| -> Vec<&str> {
        observed
            .targets
            .iter()
            .filter(|t| wanted(&t.reach()))
            .map(|t| t.name.as_str())
            .collect()
    };
    let served = by(|r| matches!(r, Reach::Served(_)));
    let serving = if served.is_empty() {
        "no server".to_owned()
    } else {
        served.join(", ")
    };
    let problems: [(&'static str, Vec<&str>, &str); 3] = [
        (
            "ServerNotFound",
            by(|r| *r == Reach::NotFound),
            "not found in namespace",
        ),
        (
            "GatewayDisabled",
            by(|r| *r == Reach::GatewayDisabled),
            "has spec.gateway.enabled=false (catalogue only, no gateway to authenticate to) in namespace",
        ),
        (
            "ServerPending",
            by(|r| *r == Reach::Pending),
            "has no URL in status yet in namespace",
        ),
    ];
    for (reason, names, what) in problems {
        if !names.is_empty() {
            let kind = if names.len() == 1 {
                "McpServer"
            } else {
                "McpServers"
            };
            return (
                false,
                reason,
                format!(
                    "{kind} {} {what} {ns}; Secret {secret} serves {serving}",
                    names.join(", ")
                ),
            );
        }
    }
    if served.is_empty() {
        return (
            false,
            "NoServers",
            format!("spec.serverSelector matches no McpServer in namespace {ns}"),
        );
    }
    (
        true,
        "Ready",
        format!("Secret {secret} gives access to {serving}"),
    )
}

/// `now` as a status time (whole seconds).
pub fn now() -> Time {
    Time(super::token::whole_seconds(Timestamp::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(status: serde_json::Value) -> McpBinding {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": "agent", "namespace": "agents", "generation": 2, "uid": "b"},
            "spec": {"servers": [{"name": "memory"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn server(tools: &[&str]) -> Arc<McpServer> {
        let tools: Vec<_> = tools
            .iter()
            .map(|t| json!({"name": t, "sha256": "ab".repeat(32), "exposed": true}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
                "metadata": {"name": "memory", "namespace": "agents"},
                "spec": {"transport": "StreamableHttp", "remote": {"url": "http://x/mcp"}},
                "status": {"url": "http://memory/mcp", "tools": tools,
                           "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                           "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
            }))
            .unwrap(),
        )
    }

    fn policy(spec: serde_json::Value) -> Arc<McpPolicy> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpPolicy",
                "metadata": {"name": "p", "namespace": "agents"},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn exposed_tools_apply_policy_narrowing_and_grants() {
        let s = server(&[
            "create_entities",
            "create_relations",
            "delete_all",
            "read_graph",
        ]);
        let p = vec![policy(
            json!({"targetRefs": [{"name": "memory"}], "tools": {"deny": ["delete_*"], "requireGrant": ["create_*"]}}),
        )];
        let none = ToolAccess::default();
        assert_eq!(exposed_tools(&s, &none, &p), 1, "read_graph only");
        let granted = ToolAccess {
            narrowing: None,
            grants: vec!["create_entities".into(), "delete_all".into()],
        };
        assert_eq!(
            exposed_tools(&s, &granted, &p),
            2,
            "a grant never beats deny"
        );
        let narrowed: ToolAccess = serde_json::from_value(json!({
            "narrowing": {"allow": ["create_*"]}, "grants": ["create_entities"]
        }))
        .unwrap();
        assert_eq!(exposed_tools(&s, &narrowed, &p), 1);
        assert_eq!(exposed_tools(&s, &none, &[]), 4, "no policy: everything");
    }

    #[test]
    fn ready_names_missing_servers_and_conflicts_and_keeps_transition_times() {
        let b = binding(json!({}));
        let present = Target {
            name: "memory".into(),
            server: Some(server(&["a"])),
            access: ToolAccess::default(),
        };
        let missing = Target {
            name: "gone".into(),
            server: None,
            access: ToolAccess::default(),
        };
        let targets = vec![missing, present];
        let t0 = Time(Timestamp::from_second(1_800_000_000).unwrap());
        let observed = Observed {
            targets: &targets,
            policies: &[],
            ownership: Ownership::Owned,
            token: None,
        };
        let st = compute(&b, &observed, t0.clone());
        let c = find_condition(&st.conditions, READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ServerNotFound")
        );
        assert!(
            c.message.contains("gone") && c.message.contains("serves memory"),
            "{}",
            c.message
        );
        assert_eq!(st.servers[0].name, "gone");
        assert_eq!(
            (st.servers[0].url.as_str(), st.servers[0].ready),
            ("", false)
        );
        assert_eq!(st.servers[1].url, "http://memory/mcp");
        assert!(st.servers[1].ready);
        assert_eq!(st.servers[1].exposed_tools, 1);
        assert_eq!(st.secret_name.as_deref(), Some("agent-mcp"));
        assert_eq!(st.observed_generation, Some(2));

        // Recomputed later with nothing changed: identical (no write).
        let b2 = binding(serde_json::to_value(&st).unwrap());
        let t1 = Time(Timestamp::from_second(1_800_000_100).unwrap());
        assert_eq!(compute(&b2, &observed, t1.clone()), st);

        let conflict = Observed {
            ownership: Ownership::Foreign,
            ..observed
        };
        let st = compute(&b2, &conflict, t1);
        let c = find_condition(&st.conditions, READY).unwrap();
        assert_eq!(c.reason, "SecretConflict");
        assert_eq!(st.secret_name, None);
    }
}
