//! Which objects to re-reconcile when a related object changes, pure over cache
//! snapshots (the closures given to `Controller::watches` call these with
//! `store.state()`):
//! - McpServer controller: a binding (or its Secret) changed → exactly the servers it
//!   targets now *and* those it reached before (its `status.servers`), so a binding that
//!   is deleted or stops targeting a server is removed from that server's gateway.
//! - McpBinding controller: a server changed → the bindings that target it or list it in
//!   status; a Secret changed → the binding wanting that Secret name (owned or in
//!   conflict); a policy changed → every binding of its namespace (exposedTools).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt, runtime::reflector::ObjectRef};

use super::{
    secret::SECRET_TYPE,
    targets::{access_to, selects},
};
use crate::api::{McpBinding, McpServer};

/// Servers whose gateway configuration depends on `binding`.
pub fn servers_of_binding(
    binding: &McpBinding,
    servers: &[Arc<McpServer>],
) -> Vec<ObjectRef<McpServer>> {
    let ns = binding.namespace().unwrap_or_default();
    let mut names: Vec<String> = binding
        .spec
        .servers
        .iter()
        .map(|s| s.name.clone())
        .collect();
    if let Some(status) = &binding.status {
        names.extend(status.servers.iter().map(|s| s.name.clone()));
    }
    names.extend(
        servers
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()) && selects(binding, s))
            .map(|s| s.name_any()),
    );
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| ObjectRef::new(&n).within(&ns))
        .collect()
}

/// Servers to re-reconcile for a changed Secret: when it is a binding Secret, those of the
/// bindings controlling it (looked up in `bindings`).
pub fn servers_of_secret(
    secret: &Secret,
    bindings: &[Arc<McpBinding>],
    servers: &[Arc<McpServer>],
) -> Vec<ObjectRef<McpServer>> {
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return Vec::new();
    }
    let ns = secret.namespace();
    let mut out: Vec<ObjectRef<McpServer>> = secret
        .owner_references()
        .iter()
        .filter(|o| o.kind == "McpBinding")
        .filter_map(|o| {
            bindings
                .iter()
                .find(|b| b.namespace() == ns && b.name_any() == o.name)
        })
        .flat_map(|b| servers_of_binding(b, servers))
        .collect();
    out.dedup();
    out
}

/// Bindings that target `server` (by name or selector) or reached it before.
pub fn bindings_of_server(
    server: &McpServer,
    bindings: &[Arc<McpBinding>],
) -> Vec<ObjectRef<McpBinding>> {
    let ns = server.namespace();
    let name = server.name_any();
    bindings
        .iter()
        .filter(|b| b.namespace() == ns)
        .filter(|b| {
            access_to(b, server).is_some()
                || b.status
                    .as_ref()
                    .is_some_and(|st| st.servers.iter().any(|s| s.name == name))
        })
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

/// The binding that wants a Secret of this name (its own, or one in conflict).
pub fn bindings_of_secret(
    secret: &Secret,
    bindings: &[Arc<McpBinding>],
) -> Vec<ObjectRef<McpBinding>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    bindings
        .iter()
        .filter(|b| b.namespace() == ns && b.secret_name() == name)
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

/// Every binding in `namespace`.
pub fn bindings_in(
    namespace: Option<String>,
    bindings: &[Arc<McpBinding>],
) -> Vec<ObjectRef<McpBinding>> {
    bindings
        .iter()
        .filter(|b| b.namespace() == namespace)
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(spec: serde_json::Value, status: serde_json::Value) -> Arc<McpBinding> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
                "metadata": {"name": "agent", "namespace": "agents", "uid": "b-1"},
                "spec": spec, "status": status,
            }))
            .unwrap(),
        )
    }

    fn server(name: &str, labels: serde_json::Value) -> Arc<McpServer> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
                "metadata": {"name": name, "namespace": "agents", "labels": labels},
                "spec": {"transport": "StreamableHttp", "remote": {"url": "http://x/mcp"}},
            }))
            .unwrap(),
        )
    }

    fn names<K: kube::Resource>(refs: &[ObjectRef<K>]) -> Vec<String>
    where
        K::DynamicType: Default,
    {
        refs.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn a_binding_reaches_named_selected_and_previous_servers() {
        let servers = vec![
            server("memory", json!({})),
            server("time", json!({"t": "1"})),
        ];
        let b = binding(
            json!({"servers": [{"name": "memory"}], "serverSelector": {"matchLabels": {"t": "1"}}}),
            json!({"servers": [{"name": "old", "ready": false, "exposedTools": 0}]}),
        );
        assert_eq!(
            names(&servers_of_binding(&b, &servers)),
            ["memory", "old", "time"]
        );
        assert_eq!(
            names(&bindings_of_server(&servers[1], std::slice::from_ref(&b))),
            ["agent"]
        );
        assert_eq!(
            names(&bindings_of_server(
                &server("old", json!({})),
                std::slice::from_ref(&b)
            )),
            ["agent"]
        );
        assert!(bindings_of_server(&server("x", json!({})), std::slice::from_ref(&b)).is_empty());

        let mut secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "agent-mcp", "namespace": "agents",
                         "ownerReferences": [{"apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
                                              "name": "agent", "uid": "b-1", "controller": true}]},
            "type": SECRET_TYPE,
        }))
        .unwrap();
        assert_eq!(
            names(&servers_of_secret(
                &secret,
                std::slice::from_ref(&b),
                &servers
            )),
            ["memory", "old", "time"]
        );
        assert_eq!(
            names(&bindings_of_secret(&secret, std::slice::from_ref(&b))),
            ["agent"]
        );
        secret.type_ = Some("Opaque".into());
        assert!(servers_of_secret(&secret, &[b], &servers).is_empty());
    }
}
