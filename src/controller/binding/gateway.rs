//! The server side of bindings: what one McpServer's gateway learns from the McpBindings
//! that target it ([`BindingConfig`]: name, token hashes, narrowing and grants,
//! ServiceAccount subjects). Token hashes come from the binding's own Secret — the
//! current token and, until its expiry annotation, the previous token's hash — and only
//! when that Secret is controlled by the binding, so a foreign Secret of the same name can
//! never grant access. [`binding_config`] is pure; [`for_server`] reads the API.

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, ResourceExt};

use super::{
    secret::{Ownership, ownership, stored_token},
    targets::access_to,
    token::previous_from_annotations,
};
use crate::{
    api::{McpBinding, McpServer},
    controller::{
        context::Context,
        error::{Error, is_not_found},
    },
    gateway::config::{BindingConfig, ServiceAccountRef, token_sha256},
    policy::ToolAccess,
};

/// The gateway entry of `binding` for a server it targets with `access`. `secret` is the
/// Secret named `binding.secret_name()`, if any.
pub fn binding_config(
    binding: &McpBinding,
    access: ToolAccess,
    secret: Option<&Secret>,
    now: Timestamp,
) -> BindingConfig {
    let mut hashes = Vec::new();
    if let Some(secret) = secret.filter(|s| ownership(binding, Some(s)) == Ownership::Owned) {
        if let Some(state) = stored_token(secret, now) {
            hashes.push(token_sha256(&state.token));
        }
        if let Some(previous) =
            previous_from_annotations(secret.annotations()).filter(|p| p.expires_at > now)
            && !hashes.contains(&previous.sha256)
        {
            hashes.push(previous.sha256);
        }
    }
    BindingConfig {
        name: binding.name_any(),
        token_sha256: hashes,
        access,
        service_accounts: service_accounts(binding),
    }
}

/// The binding's ServiceAccount subjects (namespace defaults to the binding's), in spec
/// order without duplicates.
pub fn service_accounts(binding: &McpBinding) -> Vec<ServiceAccountRef> {
    let default_ns = binding.namespace().unwrap_or_default();
    let mut out: Vec<ServiceAccountRef> = Vec::new();
    for s in &binding.spec.subjects {
        let sa = ServiceAccountRef {
            namespace: s.namespace.clone().unwrap_or_else(|| default_ns.clone()),
            name: s.name.clone(),
        };
        if !out.contains(&sa) {
            out.push(sa);
        }
    }
    out
}

/// Every McpBinding of `server`'s namespace that targets it, as gateway entries sorted by
/// name. Listed, not cached: a binding or binding-Secret change triggers the server's
/// reconcile through a watch, and a fresh read is never older than that trigger.
pub async fn for_server(ctx: &Context, server: &McpServer) -> Result<Vec<BindingConfig>, Error> {
    let ns = server.namespace().unwrap_or_default();
    let bindings = Api::<McpBinding>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    let mut out = Vec::new();
    for binding in bindings {
        if binding.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(access) = access_to(&binding, server) else {
            continue;
        };
        let secret = match secrets.get(&binding.secret_name()).await {
            Ok(s) => Some(s),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e.into()),
        };
        out.push(binding_config(&binding, access, secret.as_ref(), now));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::binding::{
        secret::{desired, owner_reference},
        token::{PreviousToken, TokenState, fresh_token},
    };
    use serde_json::json;

    fn binding() -> McpBinding {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": "agent", "namespace": "agents", "uid": "b-1"},
            "spec": {"servers": [{"name": "memory"}],
                     "subjects": [{"kind": "ServiceAccount", "name": "agent"},
                                  {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                                  {"kind": "ServiceAccount", "name": "agent"}]},
        }))
        .unwrap()
    }

    #[test]
    fn hashes_of_current_and_unexpired_previous_token_from_an_owned_secret_only() {
        let b = binding();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let state = TokenState {
            token: fresh_token(),
            rotated_at: t(0),
            previous: Some(PreviousToken {
                sha256: token_sha256("old"),
                expires_at: t(60),
            }),
        };
        let secret = desired(&b, owner_reference(&b).unwrap(), &[], &state);
        let c = binding_config(&b, ToolAccess::default(), Some(&secret), t(59));
        assert_eq!(
            c.token_sha256,
            [token_sha256(&state.token), token_sha256("old")]
        );
        assert!(!serde_json::to_string(&c).unwrap().contains(&state.token));
        let c = binding_config(&b, ToolAccess::default(), Some(&secret), t(60));
        assert_eq!(c.token_sha256, [token_sha256(&state.token)], "grace over");
        assert_eq!(
            c.service_accounts,
            [
                ServiceAccountRef {
                    namespace: "agents".into(),
                    name: "agent".into()
                },
                ServiceAccountRef {
                    namespace: "build".into(),
                    name: "ci".into()
                },
            ]
        );

        let mut foreign = secret.clone();
        foreign.metadata.owner_references = None;
        let c = binding_config(&b, ToolAccess::default(), Some(&foreign), t(0));
        assert!(c.token_sha256.is_empty(), "a foreign Secret grants nothing");
        assert!(
            binding_config(&b, ToolAccess::default(), None, t(0))
                .token_sha256
                .is_empty()
        );
    }
}
