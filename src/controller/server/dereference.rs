//! Step 1 of a reconcile: every read, each once, before anything is decided. The
//! policies and bindings are listed, not cached: a change to one triggers this
//! reconcile through its own watch, and a fresh list is never older than that trigger.
//! What is stored under each of the server's seven child names is read here too (one GET
//! each), so validating (conflicts), applying (what differs), pruning (what is ours) and
//! the Deployment's availability all work from the same reads.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::{Api, ResourceExt};
use serde_json::Value;

use super::validate::secret_refs;
use crate::{
    api::{McpPolicy, McpPolicySpec, McpServer, policy::EgressRule},
    controller::{
        apply, binding,
        context::Context,
        error::{Error, is_not_found},
        ownership::ReadChild,
        policy::targeting_policies,
        policy_rules::merge_egress,
    },
    gateway::config::BindingConfig,
};

/// Everything one reconcile of an McpServer reads.
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    /// The McpPolicies targeting the server, sorted by name.
    pub policies: Vec<Arc<McpPolicy>>,
    /// The gateway entries of the McpBindings targeting it, sorted by name.
    pub bindings: Vec<BindingConfig>,
    /// Every Secret the spec references, by name (None: it does not exist).
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// What is stored under each of the server's child names, in apply order.
    pub children: Vec<ReadChild>,
    /// Where the API server listens, when a targeting policy restricts egress (the
    /// gateway must still reach it); empty otherwise or when it cannot be read.
    pub api_server_egress: Vec<EgressRule>,
}

impl Dereferenced {
    /// The stored object of child `kind`/`name`, if it was read and exists.
    pub fn child(&self, kind: &str, name: &str) -> Option<&Value> {
        self.children
            .iter()
            .find(|c| c.kind == kind && c.name == name)
            .and_then(|c| c.current.as_ref())
    }
}

/// A read failed: the reconcile is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    /// Listing the namespace's McpPolicies failed.
    #[error("cannot list McpPolicies: {0}")]
    Policies(#[source] Error),
    /// Listing the McpBindings (or reading a binding's Secret) failed.
    #[error("cannot read the McpBindings: {0}")]
    Bindings(#[source] Error),
    /// Reading a referenced Secret failed.
    #[error("cannot read Secret {name}: {source}")]
    Secret {
        /// The Secret's name.
        name: String,
        /// The cause.
        source: Error,
    },
    /// Reading a child failed.
    #[error("cannot read {kind} {name}: {source}")]
    Child {
        /// The child's kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The cause.
        source: Error,
    },
}

impl DereferenceError {
    /// The underlying API error (its reason is the metric label).
    pub fn source_error(&self) -> &Error {
        match self {
            Self::Policies(e) | Self::Bindings(e) => e,
            Self::Secret { source, .. } | Self::Child { source, .. } => source,
        }
    }
}

/// (kind, name) of every child an McpServer named `name` can have, in apply order.
/// `build::desired` names them so; pruning deletes by these names.
pub fn child_names(name: &str) -> [(&'static str, String); 7] {
    let gateway = format!("{name}-gateway");
    [
        ("ServiceAccount", name.to_owned()),
        ("Role", gateway.clone()),
        ("RoleBinding", gateway.clone()),
        ("Secret", gateway),
        ("NetworkPolicy", name.to_owned()),
        ("Deployment", name.to_owned()),
        ("Service", name.to_owned()),
    ]
}

/// Reads everything the reconcile of `server` needs.
pub async fn dereference(
    ctx: &Context,
    server: &McpServer,
) -> Result<Dereferenced, DereferenceError> {
    let ns = server.namespace().unwrap_or_default();
    let all: Vec<Arc<McpPolicy>> = Api::<McpPolicy>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await
        .map_err(|e| DereferenceError::Policies(e.into()))?
        .into_iter()
        .map(Arc::new)
        .collect();
    let policies = targeting_policies(&all, server);
    let bindings = binding::gateway::for_server(ctx, server)
        .await
        .map_err(DereferenceError::Bindings)?;
    let secrets = read_secrets(ctx, server).await?;
    let specs: Vec<(&str, &McpPolicySpec)> = policies
        .iter()
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec))
        .collect();
    let api_server_egress = if merge_egress(&specs).is_some() {
        ctx.api_server_egress.rules().await
    } else {
        Vec::new()
    };
    let mut children = Vec::new();
    for (kind, name) in child_names(&server.name_any()) {
        let current =
            read_child(ctx, &ns, kind, &name)
                .await
                .map_err(|source| DereferenceError::Child {
                    kind,
                    name: name.clone(),
                    source,
                })?;
        children.push(ReadChild {
            kind,
            name,
            current,
        });
    }
    Ok(Dereferenced {
        policies,
        bindings,
        secrets,
        children,
        api_server_egress,
    })
}

async fn read_secrets(
    ctx: &Context,
    server: &McpServer,
) -> Result<BTreeMap<String, Option<Secret>>, DereferenceError> {
    let ns = server.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = BTreeMap::new();
    for r in secret_refs(server) {
        if out.contains_key(&r.name) {
            continue;
        }
        let secret = match api.get(&r.name).await {
            Ok(s) => Some(s),
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                return Err(DereferenceError::Secret {
                    name: r.name,
                    source: e.into(),
                });
            }
        };
        out.insert(r.name, secret);
    }
    Ok(out)
}

async fn read_child(
    ctx: &Context,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Option<Value>, Error> {
    match kind {
        "ServiceAccount" => apply::read::<ServiceAccount>(ctx, ns, name).await,
        "Role" => apply::read::<Role>(ctx, ns, name).await,
        "RoleBinding" => apply::read::<RoleBinding>(ctx, ns, name).await,
        "Secret" => apply::read::<Secret>(ctx, ns, name).await,
        "NetworkPolicy" => apply::read::<NetworkPolicy>(ctx, ns, name).await,
        "Deployment" => apply::read::<Deployment>(ctx, ns, name).await,
        "Service" => apply::read::<Service>(ctx, ns, name).await,
        other => Err(Error::Controller(format!(
            "no reader for child kind {other}"
        ))),
    }
}
