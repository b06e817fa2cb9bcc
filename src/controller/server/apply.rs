//! Step 4 of a reconcile: every write the [`Plan`] asks for, and nothing else. Children
//! are applied against what [`super::dereference`] read under their names (server-side
//! apply only when they differ, never over an object the server does not control) and
//! the owned ones the spec no longer wants are deleted. One Event per reason and
//! reconcile ("created Deployment memory, Service memory, …"), not one per child.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::ResourceExt;
use serde_json::Value;

use super::{
    dereference::{Dereferenced, child_names},
    events::record,
    plan::Plan,
};
use crate::{
    api::McpServer,
    controller::{
        apply::{self as child, Change},
        build::Desired,
        context::Context,
        error::Error,
        reasons::EventReason,
        token_review::tokens_disabled_note,
    },
};

/// What the writes left behind.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The server's Deployment as stored after the writes (None: there is none).
    pub deployment: Option<Value>,
}

/// A write failed: the reconcile is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Applying a child failed.
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        /// The child's kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The cause.
        source: Error,
    },
    /// Deleting a child the spec no longer wants failed.
    #[error("cannot delete {kind} {name}: {source}")]
    Prune {
        /// The child's kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The cause.
        source: Error,
    },
}

impl ApplyError {
    /// The underlying error (its reason is the metric label).
    pub fn source_error(&self) -> &Error {
        match self {
            Self::Apply { source, .. } | Self::Prune { source, .. } => source,
        }
    }
}

/// Carries out `plan` for `server`. `unreviewable` names the bindings whose
/// ServiceAccount subjects were left out (Warning Event when the gateway Secret changed).
pub async fn apply(
    ctx: &Context,
    server: &McpServer,
    plan: Plan,
    world: &Dereferenced,
    unreviewable: &[String],
) -> Result<Applied, ApplyError> {
    let name = server.name_any();
    let stored_deployment = || world.child("Deployment", &name).cloned();
    match plan {
        Plan::Nothing => Ok(Applied {
            deployment: stored_deployment(),
        }),
        Plan::RefreshGateway(secret) => {
            let secret_name = secret.name_any();
            let current = world.child("Secret", &secret_name);
            let (change, _) = child::apply_read(ctx, server, *secret, current)
                .await
                .map_err(|source| ApplyError::Apply {
                    kind: "Secret",
                    name: secret_name.clone(),
                    source,
                })?;
            if change != Change::Unchanged {
                let note = format!(
                    "updated Secret {secret_name}: current policies and bindings, spec still refused"
                );
                record(ctx, server, EventReason::Updated, note).await;
            }
            Ok(Applied {
                deployment: stored_deployment(),
            })
        }
        Plan::Children(desired) => {
            let (applied, gateway_written) = apply_children(ctx, server, *desired, world).await?;
            if gateway_written && !unreviewable.is_empty() {
                let note = tokens_disabled_note(server, unreviewable);
                record(ctx, server, EventReason::ServiceAccountTokensDisabled, note).await;
            }
            Ok(applied)
        }
    }
}

/// Applies every desired child and prunes the owned ones no longer wanted. Returns what
/// is stored and whether the gateway Secret was created or updated.
async fn apply_children(
    ctx: &Context,
    server: &McpServer,
    desired: Desired,
    world: &Dereferenced,
) -> Result<(Applied, bool), ApplyError> {
    let Desired {
        deployment,
        service,
        gateway_secret,
        service_account,
        role,
        role_binding,
        network_policy,
        url: _,
    } = desired;
    let mut changes: Vec<(&str, String, Change)> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut stored_deployment = None;
    let names = child_names(&server.name_any());
    let candidate = |kind: &str| {
        names
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    macro_rules! one {
        ($kind:literal, $ty:ty, $obj:expr) => {{
            let wanted: Option<String> = $obj.as_ref().map(|o: &$ty| o.name_any());
            if let Some(obj) = $obj {
                let name = obj.name_any();
                let current = world.child($kind, &name);
                let (change, stored) = match world
                    .children
                    .iter()
                    .any(|c| c.kind == $kind && c.name == name)
                {
                    true => child::apply_read::<$ty>(ctx, server, obj, current).await,
                    // Not one of the names read: read it now.
                    false => child::apply::<$ty>(ctx, server, obj).await,
                }
                .map_err(|source| ApplyError::Apply {
                    kind: $kind,
                    name: name.clone(),
                    source,
                })?;
                if $kind == "Deployment" {
                    stored_deployment = Some(stored);
                }
                changes.push(($kind, name, change));
            }
            let name = candidate($kind);
            if wanted.as_deref() != Some(name.as_str())
                && let Some(current) = world.child($kind, &name)
            {
                let gone = child::prune_read::<$ty>(ctx, server, &name, current)
                    .await
                    .map_err(|source| ApplyError::Prune {
                        kind: $kind,
                        name: name.clone(),
                        source,
                    })?;
                if gone {
                    deleted.push(format!(
                        "deleted {} {name}: the spec no longer needs it",
                        $kind
                    ));
                }
            }
        }};
    }
    one!("ServiceAccount", ServiceAccount, service_account);
    one!("Role", Role, role);
    one!("RoleBinding", RoleBinding, role_binding);
    one!("Secret", Secret, gateway_secret);
    one!("NetworkPolicy", NetworkPolicy, network_policy);
    one!("Deployment", Deployment, deployment);
    one!("Service", Service, service);
    for note in deleted {
        record(ctx, server, EventReason::Deleted, note).await;
    }
    for (wanted, reason) in [
        (Change::Created, EventReason::Created),
        (Change::Updated, EventReason::Updated),
    ] {
        let names: Vec<String> = changes
            .iter()
            .filter(|(_, _, change)| *change == wanted)
            .map(|(kind, name, _)| format!("{kind} {name}"))
            .collect();
        if !names.is_empty() {
            let note = format!("{} {}", reason.as_str().to_lowercase(), names.join(", "));
            record(ctx, server, reason, note).await;
        }
    }
    let gateway_name = candidate("Secret");
    let gateway_written = changes.iter().any(|(kind, name, change)| {
        *kind == "Secret" && *name == gateway_name && *change != Change::Unchanged
    });
    Ok((
        Applied {
            deployment: stored_deployment,
        },
        gateway_written,
    ))
}
