//! Step 3 of a reconcile, pure: what to write. An accepted server gets its desired
//! children (and loses the ones it no longer wants). A refused server changes nothing
//! that runs; but when a Deployment from an earlier accepted spec still runs, its
//! gateway keeps enforcing the current governance: the gateway Secret gets the current
//! merged policy and bindings (a deny added, a binding deleted or rotated takes effect at
//! once), while everything else in it — auth, prefix, pins, upstream: what the refused
//! spec says — stays as last accepted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::{dereference::Dereferenced, validate::Validated};
use crate::{
    api::McpServer,
    controller::build::{BuildContext, Desired},
    gateway::config::{CONFIG_KEY, GatewayConfig},
};

/// What the apply step writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Accepted: apply these children and prune the ones it does not want.
    Children(Box<Desired>),
    /// Refused while an earlier spec runs: this gateway Secret, and nothing else.
    RefreshGateway(Box<Secret>),
    /// Nothing to write.
    Nothing,
}

/// Planning failed (never the user's spec).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The refreshed gateway configuration could not be rendered.
    #[error("cannot render the gateway configuration of Secret {name}: {source}")]
    GatewayConfig {
        /// The Secret.
        name: String,
        /// The cause.
        source: serde_json::Error,
    },
}

/// The writes for `server`.
pub fn plan(
    server: &McpServer,
    world: &Dereferenced,
    validated: &Validated,
) -> Result<Plan, PlanError> {
    if let Some(desired) = &validated.desired {
        return Ok(Plan::Children(Box::new(desired.clone())));
    }
    match (&validated.build_ctx, validated.running) {
        (Some(build_ctx), true) => Ok(refreshed_gateway(server, world, build_ctx)?
            .map_or(Plan::Nothing, |s| Plan::RefreshGateway(Box::new(s)))),
        _ => Ok(Plan::Nothing),
    }
}

/// The gateway Secret with the current policy and bindings; None when it is missing,
/// not ours, unreadable, or already current.
fn refreshed_gateway(
    server: &McpServer,
    world: &Dereferenced,
    build_ctx: &BuildContext,
) -> Result<Option<Secret>, PlanError> {
    let name = format!("{}-gateway", server.name_any());
    let Some(stored) = world.child("Secret", &name) else {
        return Ok(None);
    };
    let Ok(secret) = serde_json::from_value::<Secret>(stored.clone()) else {
        return Ok(None);
    };
    let owned = secret
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == server.uid().as_ref() && o.controller == Some(true));
    let current = secret
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .and_then(|b| std::str::from_utf8(&b.0).ok())
        .and_then(|text| GatewayConfig::parse(text).ok());
    let (true, Some(current)) = (owned, current) else {
        return Ok(None);
    };
    let mut bindings = build_ctx.bindings.clone();
    bindings.sort_by(|a, b| a.name.cmp(&b.name));
    let updated = GatewayConfig {
        policy: build_ctx.policy.clone(),
        bindings,
        ..current.clone()
    };
    if updated == current {
        return Ok(None);
    }
    let json = serde_json::to_vec_pretty(&updated).map_err(|source| PlanError::GatewayConfig {
        name: name.clone(),
        source,
    })?;
    Ok(Some(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: server.namespace(),
            labels: secret.metadata.labels.clone(),
            ..Default::default()
        },
        type_: secret.type_.clone(),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            k8s_openapi::ByteString(json),
        )])),
        ..Secret::default()
    }))
}
