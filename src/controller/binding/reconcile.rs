//! Reconciling one McpBinding: fetch (its namespace's servers and policies, the Secret of
//! its name) → resolve targets → advance the token (issue, rotate, end the grace period)
//! → apply the Secret when it differs (never one the binding does not own) → write status
//! when it changed → Events for what the controller did → requeue at the next rotation
//! or grace expiry. Tokens appear nowhere but in the Secret's data.

use std::sync::Arc;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::Value;

use super::{
    secret::{self, Ownership},
    status::{self, Observed},
    targets::{self, Reach},
    token::{self, Rotation, TokenChange, TokenState},
};
use crate::{
    api::{McpBinding, McpBindingStatus, McpPolicy, McpServer},
    controller::{
        apply::{self, Change, HASH_ANNOTATION},
        context::Context,
        error::Error,
        retry,
        shared::{self, FIELD_MANAGER},
    },
};

/// The reconcile entry point given to the kube-runtime Controller.
pub async fn reconcile(binding: Arc<McpBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = retry::key(&*binding);
    retry::measured(
        &ctx.metrics,
        &ctx.retries,
        &key,
        reconcile_binding(&binding, &ctx),
    )
    .await
}

/// The error policy given to the kube-runtime Controller: per-binding backoff.
pub fn error_policy(binding: Arc<McpBinding>, error: &Error, ctx: Arc<Context>) -> Action {
    retry::on_error(&ctx.retries, &retry::key(&*binding), error)
}

async fn reconcile_binding(binding: &McpBinding, ctx: &Context) -> Result<Action, Error> {
    if binding.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = binding.namespace().unwrap_or_default();
    // Listed, not cached: a fresh list is never older than the change that triggered us.
    let servers: Vec<Arc<McpServer>> = Api::<McpServer>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    let policies: Vec<Arc<McpPolicy>> = Api::<McpPolicy>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    let targets = targets::resolve(binding, &servers);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets.get_opt(&binding.secret_name()).await?;
    let ownership = secret::ownership(binding, existing.as_ref());
    let rotation = Rotation::from_spec(binding.spec.token_rotation.as_ref());
    let now = Timestamp::now();
    let token = match ownership {
        Ownership::Foreign => None,
        Ownership::Absent | Ownership::Owned => {
            Some(issue(ctx, binding, &targets, existing.as_ref(), rotation, now).await?)
        }
    };
    let old = binding.status.clone().unwrap_or_default();
    let observed = Observed {
        targets: &targets,
        policies: &policies,
        ownership,
        token: token.as_ref(),
    };
    let new = status::compute(binding, &observed, status::now());
    write_status(ctx, binding, &new).await?;
    record_ready_transition(ctx, binding, &old, &new).await;
    Ok(match &token {
        Some(state) => Action::requeue(token::next_change(state, rotation, Timestamp::now())),
        // The Secret watch wakes us when the conflicting Secret goes away.
        None => Action::await_change(),
    })
}

/// Advances the token and applies the Secret; returns the token now in the Secret.
async fn issue(
    ctx: &Context,
    binding: &McpBinding,
    targets: &[targets::Target],
    existing: Option<&Secret>,
    rotation: Rotation,
    now: Timestamp,
) -> Result<TokenState, Error> {
    let current = existing.and_then(|s| secret::stored_token(s, now));
    let (state, change) = token::advance(current, rotation, now, token::fresh_token);
    let served: Vec<(String, String)> = targets
        .iter()
        .filter_map(|t| match t.reach() {
            Reach::Served(url) => Some((t.name.clone(), url)),
            _ => None,
        })
        .collect();
    let owner = secret::owner_reference(binding).ok_or_else(|| {
        Error::Controller(format!(
            "McpBinding {} has no uid (objects read from the API server always do)",
            binding.name_any()
        ))
    })?;
    let desired = secret::desired(binding, owner, &served, &state);
    let applied = apply_secret(ctx, desired, existing).await?;
    let note = secret_note(applied, change, &state, &binding.secret_name(), &served);
    if let Some((reason, note)) = note {
        tracing::info!(binding = %binding.name_any(), namespace = ?binding.namespace(), reason, "{note}");
        record(ctx, binding, false, reason, note).await;
    }
    Ok(state)
}

/// The Event (reason, note) for what happened to the Secret, if anything did.
fn secret_note(
    applied: Change,
    change: TokenChange,
    state: &TokenState,
    name: &str,
    served: &[(String, String)],
) -> Option<(&'static str, String)> {
    let names = served
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match (applied, change) {
        (Change::Unchanged, _) => None,
        (Change::Created, _) => Some((
            "Created",
            format!("created Secret {name} (servers: {names})"),
        )),
        (_, TokenChange::Rotated) => Some((
            "TokenRotated",
            match &state.previous {
                Some(p) => format!(
                    "issued a new token in Secret {name}; the previous one is accepted until {}",
                    token::format_time(p.expires_at)
                ),
                None => format!("issued a new token in Secret {name}; the previous one is revoked"),
            },
        )),
        (_, TokenChange::GraceEnded) => Some((
            "PreviousTokenExpired",
            format!(
                "the grace period of Secret {name}'s previous token ended: gateways no longer accept it"
            ),
        )),
        (_, TokenChange::Issued) => Some(("Updated", format!("issued a token in Secret {name}"))),
        (Change::Updated, TokenChange::Unchanged) => Some((
            "Updated",
            format!("updated Secret {name} (servers: {names})"),
        )),
    }
}

/// Server-side applies the Secret when its content (hash annotation) or a field we set
/// differs from what is stored.
async fn apply_secret(
    ctx: &Context,
    desired: Secret,
    existing: Option<&Secret>,
) -> Result<Change, Error> {
    let name = desired.name_any();
    let ns = desired.namespace().unwrap_or_default();
    let mut value = serde_json::to_value(&desired).map_err(|e| Error::serde(&name, e))?;
    let hash = apply::hash_of(&value);
    value["metadata"]["annotations"][HASH_ANNOTATION] = Value::String(hash.clone());
    let change = match existing {
        None => Change::Created,
        Some(current) => {
            let current = serde_json::to_value(current).map_err(|e| Error::serde(&name, e))?;
            if !apply::needs_apply(&value, &current, &hash) {
                return Ok(Change::Unchanged);
            }
            Change::Updated
        }
    };
    ctx.may_write()?;
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
    Ok(change)
}

/// Writes status with server-side apply, only when it differs from the stored one.
async fn write_status(
    ctx: &Context,
    binding: &McpBinding,
    status: &McpBindingStatus,
) -> Result<bool, Error> {
    if binding.status.as_ref() == Some(status) {
        return Ok(false);
    }
    ctx.may_write()?;
    shared::write_status(&ctx.client, binding, status).await?;
    Ok(true)
}

/// An Event when Ready flips or changes reason: Warning with the reason when False.
async fn record_ready_transition(
    ctx: &Context,
    binding: &McpBinding,
    old: &McpBindingStatus,
    new: &McpBindingStatus,
) {
    let Some(c) = status::ready_transition(old, new) else {
        return;
    };
    let warning = c.status != "True";
    if !warning && old.conditions.is_empty() {
        return; // the first Ready=True is said by the Created Event
    }
    record(ctx, binding, warning, &c.reason.clone(), c.message.clone()).await;
}

async fn record(ctx: &Context, binding: &McpBinding, warning: bool, reason: &str, note: String) {
    if ctx.may_write().is_err() {
        return;
    }
    ctx.events
        .publish(&binding.object_ref(&()), warning, reason, "Reconcile", note)
        .await;
}
