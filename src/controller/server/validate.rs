//! Step 2 of a reconcile, pure: from the server and what [`super::dereference`] read,
//! whether the spec is accepted ([`Acceptance`], typed [`RejectReason`]) and, when it
//! is, the desired children. The checks run in this order and the first refusal wins:
//! the policies merge (`InvalidSpec`), the policies' workload rules (`PolicyViolation`),
//! referenced Secrets and keys (`SecretNotFound`), building the children (`InvalidSpec`,
//! `BuildFailed`), and every child name free or ours (`ChildConflict`). A refused server
//! whose Deployment from an earlier accepted spec still runs says so in its message.

use kube::ResourceExt;

use super::dereference::Dereferenced;
use crate::{
    api::{McpPolicySpec, McpServer, server::ContainerSpec},
    controller::{
        build::{self, BuildContext, BuildError, Desired},
        ownership,
        policy_rules::workload_violations,
        reasons::RejectReason,
        status::{Acceptance, kept_running_message},
        token_review::without_unreviewable,
    },
};

fn rejected(reason: RejectReason, message: impl Into<String>) -> Acceptance {
    Acceptance::Rejected {
        reason,
        message: message.into(),
    }
}

/// The outcome of validation.
#[derive(Clone, Debug)]
pub struct Validated {
    /// Accepted or why not.
    pub acceptance: Acceptance,
    /// The policies merged and the bindings (None: the policies could not be merged).
    pub build_ctx: Option<BuildContext>,
    /// The children to apply: Some exactly when accepted.
    pub desired: Option<Desired>,
    /// Bindings whose ServiceAccount subjects were left out (a user-chosen pod
    /// ServiceAccount cannot review tokens), for the Warning Event.
    pub unreviewable: Vec<String>,
    /// The server's own Deployment exists (from this or an earlier accepted spec).
    pub running: bool,
}

/// Validates `server` against what was read. `base` carries the operator's settings
/// (image, probe token hash).
pub fn validate(server: &McpServer, world: &Dereferenced, base: BuildContext) -> Validated {
    let specs: Vec<(&str, &McpPolicySpec)> = world
        .policies
        .iter()
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec))
        .collect();
    // A user-chosen pod ServiceAccount never gets TokenReview rights (see `token_review`):
    // its gateway is not given ServiceAccount subjects it cannot check.
    let (bindings, unreviewable) = without_unreviewable(server, world.bindings.clone());
    let build_ctx = BuildContext { bindings, ..base }
        .with_policies(&specs)
        .map(|mut b| {
            // Under an egress policy the gateway still needs the API server (Events,
            // TokenReview).
            if b.egress.is_some() {
                b.api_server_egress = world.api_server_egress.clone();
            }
            b
        });
    let running = running(server, world);
    let (acceptance, desired) = match &build_ctx {
        Err(e) => (rejected(RejectReason::InvalidSpec, e.to_string()), None),
        Ok(b) => accept(server, world, &specs, b),
    };
    let acceptance = match acceptance {
        Acceptance::Rejected { reason, message } if running => Acceptance::Rejected {
            reason,
            message: kept_running_message(&message, &server.name_any()),
        },
        other => other,
    };
    Validated {
        acceptance,
        build_ctx: build_ctx.ok(),
        desired,
        unreviewable,
        running,
    }
}

fn accept(
    server: &McpServer,
    world: &Dereferenced,
    specs: &[(&str, &McpPolicySpec)],
    build_ctx: &BuildContext,
) -> (Acceptance, Option<Desired>) {
    if let Some(v) = workload_violations(server, specs).into_iter().next() {
        return (rejected(RejectReason::PolicyViolation, v.to_string()), None);
    }
    if let Some(message) = missing_secret(server, world) {
        return (rejected(RejectReason::SecretNotFound, message), None);
    }
    let desired = match build::desired(server, build_ctx) {
        Ok(d) => d,
        Err(e) => return (rejected(build_reason(&e), e.to_string()), None),
    };
    let uid = server.uid().unwrap_or_default();
    let wanted: Vec<_> = desired
        .children()
        .into_iter()
        .map(|(kind, name)| ownership::ReadChild {
            current: world.child(kind, &name).cloned(),
            kind,
            name,
        })
        .collect();
    match ownership::first_conflict(&uid, &wanted) {
        Some(conflict) => (
            rejected(RejectReason::ChildConflict, conflict.to_string()),
            None,
        ),
        None => (Acceptance::Accepted, Some(desired)),
    }
}

/// The `Accepted=False` reason of a build error.
fn build_reason(e: &BuildError) -> RejectReason {
    match e {
        BuildError::InvalidSpec { .. } | BuildError::PodSecurity { .. } => {
            RejectReason::InvalidSpec
        }
        BuildError::MissingMetadata { .. } | BuildError::GatewayConfig(_) => {
            RejectReason::BuildFailed
        }
    }
}

/// Whether the Deployment of the server's name names the server as an owner.
fn running(server: &McpServer, world: &Dereferenced) -> bool {
    let Some(uid) = server.uid() else {
        return false;
    };
    world
        .child("Deployment", &server.name_any())
        .and_then(|d| d.pointer("/metadata/ownerReferences"))
        .and_then(|refs| refs.as_array())
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
}

/// A reference to a Secret (and key) that must exist.
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key, when one is named.
    pub key: Option<String>,
    /// The spec field holding the reference.
    pub field: String,
}

/// Names of the Secrets `server` references (for re-reconciling when one appears).
pub fn referenced_secret_names(server: &McpServer) -> Vec<String> {
    secret_refs(server).into_iter().map(|r| r.name).collect()
}

/// Every Secret (and key) the spec needs, in spec order.
pub fn secret_refs(server: &McpServer) -> Vec<SecretRef> {
    let mut out = Vec::new();
    if let Some(c) = &server.spec.container {
        container_secret_refs(c, &mut out);
    }
    if let Some(r) = &server.spec.remote {
        for (i, h) in r.headers_from.iter().enumerate() {
            let s = &h.value_from.secret_key_ref;
            out.push(SecretRef {
                name: s.name.clone(),
                key: Some(s.key.clone()),
                field: format!("spec.remote.headersFrom[{i}]"),
            });
        }
        if let Some(ca) = r.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
            out.push(SecretRef {
                name: ca.name.clone(),
                key: Some(ca.key.clone()),
                field: "spec.remote.tls.caSecretRef".into(),
            });
        }
    }
    out
}

fn container_secret_refs(c: &ContainerSpec, out: &mut Vec<SecretRef>) {
    for e in &c.env {
        if let Some(s) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            && s.optional != Some(true)
        {
            out.push(SecretRef {
                name: s.name.clone(),
                key: Some(s.key.clone()),
                field: format!("spec.container.env[{}]", e.name),
            });
        }
    }
    for (i, e) in c.env_from.iter().enumerate() {
        if let Some(s) = &e.secret_ref
            && s.optional != Some(true)
        {
            out.push(SecretRef {
                name: s.name.clone(),
                key: None,
                field: format!("spec.container.envFrom[{i}]"),
            });
        }
    }
}

/// The first referenced Secret (or key) that does not exist, as a condition message.
fn missing_secret(server: &McpServer, world: &Dereferenced) -> Option<String> {
    let ns = server.namespace().unwrap_or_default();
    secret_refs(server).into_iter().find_map(|r| {
        let Some(secret) = world.secrets.get(&r.name).and_then(Option::as_ref) else {
            return Some(format!("{}: Secret {ns}/{} not found", r.field, r.name));
        };
        let key = r.key.as_ref()?;
        let has = secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(key));
        (!has).then(|| format!("{}: Secret {ns}/{} has no key {key}", r.field, r.name))
    })
}
