//! Which McpServers a binding reaches, pure: `spec.servers[].name` ∪ the servers of the
//! binding's namespace matching `spec.serverSelector`, each with the binding's access
//! (narrowing and grants; servers reached only by the selector get none) and whether the
//! binding can serve it (a gateway URL to put in the Secret) or why not.

use std::sync::Arc;

use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
};

use crate::{
    api::{McpBinding, McpServer},
    policy::ToolAccess,
};

/// One server a binding names or selects.
#[derive(Clone, Debug)]
pub struct Target {
    /// McpServer name.
    pub name: String,
    /// The server, when it exists (and is not being deleted).
    pub server: Option<Arc<McpServer>>,
    /// The binding's narrowing and grants for it.
    pub access: ToolAccess,
}

/// Whether the binding can hand out a URL for a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Its gateway's URL (status.url of the server).
    Served(String),
    /// No such McpServer in the binding's namespace.
    NotFound,
    /// `spec.gateway.enabled: false`: catalogue only. A bearer token must not be sent to
    /// a third-party URL, so the binding leaves it out.
    GatewayDisabled,
    /// The server has no URL in status yet.
    Pending,
}

impl Target {
    /// Whether the binding can serve this target.
    pub fn reach(&self) -> Reach {
        let Some(server) = &self.server else {
            return Reach::NotFound;
        };
        if server.spec.gateway.as_ref().is_some_and(|g| !g.enabled) {
            return Reach::GatewayDisabled;
        }
        match server.status.as_ref().and_then(|s| s.url.clone()) {
            Some(url) if !url.is_empty() => Reach::Served(url),
            _ => Reach::Pending,
        }
    }
}

/// Whether `spec.serverSelector` matches `server` (an invalid selector matches nothing).
pub fn selects(binding: &McpBinding, server: &McpServer) -> bool {
    binding.spec.server_selector.as_ref().is_some_and(|sel| {
        Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(server.labels()))
    })
}

/// Whether `binding` targets `server`: same namespace, and named in `spec.servers` or
/// matched by `spec.serverSelector`. The one targeting rule: [`resolve`] (the binding
/// controller) and the TokenReview ClusterRoleBinding ([`crate::controller::token_review`])
/// both decide with it.
pub fn targets(binding: &McpBinding, server: &McpServer) -> bool {
    binding.namespace() == server.namespace()
        && (names(binding, server) || selects(binding, server))
}

/// Whether `spec.servers` names `server`.
fn names(binding: &McpBinding, server: &McpServer) -> bool {
    let name = server.name_any();
    binding.spec.servers.iter().any(|s| s.name == name)
}

/// The binding's access to `server`, or None when the binding does not target it. Both in
/// the same namespace is the caller's to check.
pub fn access_to(binding: &McpBinding, server: &McpServer) -> Option<ToolAccess> {
    let name = server.name_any();
    if let Some(entry) = binding.spec.servers.iter().find(|s| s.name == name) {
        return Some(ToolAccess {
            narrowing: entry.tools.clone(),
            grants: entry.grants.clone(),
        });
    }
    selects(binding, server).then(ToolAccess::default)
}

/// Every target of `binding` among `servers` (which may hold other namespaces' servers),
/// sorted by name; named servers that do not exist are included with `server: None`.
pub fn resolve(binding: &McpBinding, servers: &[Arc<McpServer>]) -> Vec<Target> {
    let ns = binding.namespace();
    let live: Vec<&Arc<McpServer>> = servers
        .iter()
        .filter(|s| s.namespace() == ns && s.metadata.deletion_timestamp.is_none())
        .collect();
    let mut out: Vec<Target> = binding
        .spec
        .servers
        .iter()
        .map(|entry| Target {
            name: entry.name.clone(),
            server: live
                .iter()
                .find(|s| s.name_any() == entry.name)
                .map(|s| (*s).clone()),
            access: ToolAccess {
                narrowing: entry.tools.clone(),
                grants: entry.grants.clone(),
            },
        })
        .collect();
    for server in live {
        let name = server.name_any();
        if !out.iter().any(|t| t.name == name) && targets(binding, server) {
            out.push(Target {
                name,
                server: Some(server.clone()),
                access: ToolAccess::default(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn server(
        name: &str,
        labels: serde_json::Value,
        status: serde_json::Value,
    ) -> Arc<McpServer> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
                "metadata": {"name": name, "namespace": "agents", "labels": labels, "uid": format!("uid-{name}")},
                "spec": {"transport": "StreamableHttp", "remote": {"url": "http://x/mcp"}},
                "status": status,
            }))
            .unwrap(),
        )
    }

    fn binding(spec: serde_json::Value) -> McpBinding {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": "agent", "namespace": "agents"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn names_and_selector_combine_and_named_entries_keep_their_access() {
        let servers = vec![
            server(
                "memory",
                json!({"team": "a"}),
                json!({"url": "http://memory/mcp"}),
            ),
            server("time", json!({"team": "a"}), json!({})),
            server("other", json!({"team": "b"}), json!({})),
        ];
        let b = binding(json!({
            "servers": [{"name": "memory", "grants": ["create_entities"]}, {"name": "gone"}],
            "serverSelector": {"matchLabels": {"team": "a"}},
        }));
        let targets = resolve(&b, &servers);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["gone", "memory", "time"]);
        assert_eq!(targets[0].reach(), Reach::NotFound);
        assert_eq!(
            targets[1].reach(),
            Reach::Served("http://memory/mcp".into())
        );
        assert_eq!(targets[1].access.grants, ["create_entities"]);
        assert_eq!(targets[2].reach(), Reach::Pending);
        assert_eq!(targets[2].access, ToolAccess::default());
        assert!(access_to(&b, &servers[2]).is_none());
        assert!(super::targets(&b, &servers[0]) && super::targets(&b, &servers[1]));
        assert!(!super::targets(&b, &servers[2]));
        assert_eq!(
            access_to(&b, &servers[0]).unwrap().grants,
            ["create_entities"]
        );
    }

    #[test]
    fn other_namespaces_and_disabled_gateways() {
        let mut elsewhere = (*server("memory", json!({}), json!({"url": "u"}))).clone();
        elsewhere.metadata.namespace = Some("other".into());
        let mut catalogue =
            (*server("cat", json!({}), json!({"url": "https://remote/mcp"}))).clone();
        catalogue.spec.gateway = Some(serde_json::from_value(json!({"enabled": false})).unwrap());
        let b = binding(json!({"servers": [{"name": "memory"}, {"name": "cat"}]}));
        let targets = resolve(&b, &[Arc::new(elsewhere), Arc::new(catalogue)]);
        assert_eq!(targets[0].reach(), Reach::GatewayDisabled);
        assert_eq!(targets[1].reach(), Reach::NotFound);
        let mut elsewhere = (*server("memory", json!({}), json!({}))).clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(!super::targets(&b, &elsewhere));
    }
}
