//! Step 5 of a reconcile: the new status from what the steps before saw (acceptance, the
//! Deployment as stored after the writes, the prober's latest report) computed by
//! [`crate::controller::status::compute`], written when it changed, and the Events of
//! its transitions (refusal, probe failing or recovering, pins, tool changes).

use k8s_openapi::{
    api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::ResourceExt;
use serde_json::Value;

use super::{
    events::record,
    probes::{Finished, Prober},
    validate::Validated,
};
use crate::{
    api::{McpServer, McpServerStatus, common::find_condition},
    controller::{
        context::Context,
        error::Error,
        events::tools_changed_note,
        ownership,
        reasons::{EventReason, RejectReason, UnavailableReason},
        status::{self, Acceptance, Availability, Observed, types},
    },
    prober::InventoryDiff,
};

/// Writing status failed: the reconcile is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The stored Deployment could not be read as one.
    #[error("cannot read Deployment {name}: {source}")]
    Deployment {
        /// Its name.
        name: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The status write failed.
    #[error("cannot write status: {0}")]
    Write(#[source] Error),
}

/// What the probe schedule needs from this step.
pub struct Updated {
    /// The status as written.
    pub status: McpServerStatus,
    /// The Deployment is Available (or there is none to wait for).
    pub available_now: bool,
    /// Status said so before this reconcile.
    pub was_available: bool,
}

/// Computes and writes the status of `server`; records the Events of its transitions.
pub async fn update_status(
    ctx: &Context,
    prober: &Prober,
    server: &McpServer,
    validated: &Validated,
    deployment: Option<&Value>,
    finished: Option<&Finished>,
    now: Timestamp,
) -> Result<Updated, StatusError> {
    let name = server.name_any();
    let gateway_enabled = server.spec.gateway.as_ref().is_none_or(|g| g.enabled);
    let has_pod = server.spec.container.is_some() || gateway_enabled;
    let availability = if has_pod {
        availability(server, deployment)?
    } else {
        Availability::NotApplicable
    };
    let old = server.status.clone().unwrap_or_default();
    let was_available = !has_pod
        || find_condition(&old.conditions, types::AVAILABLE).is_some_and(|c| c.status == "True");
    let available_now = matches!(
        availability,
        Availability::Available | Availability::NotApplicable
    );
    let accepted = validated.acceptance == Acceptance::Accepted;
    let url = validated
        .desired
        .as_ref()
        .and_then(|d| d.url.clone())
        .or(old.url.clone());
    let policy = validated
        .build_ctx
        .as_ref()
        .map(|b| b.policy.clone())
        .unwrap_or_default();
    let observed = Observed {
        acceptance: validated.acceptance.clone(),
        availability,
        // A report that arrived after the spec was refused is dropped.
        probe: finished.filter(|_| accepted).map(|f| &*f.report),
        probe_disabled: server.spec.probe.as_ref().is_some_and(|p| p.disabled),
        // `mcp-operator dev`: the Service's local address, for clients.
        url: ctx.resolve_url(url),
        policy: &policy,
        bindings: validated
            .build_ctx
            .as_ref()
            .map(|b| b.bindings.as_slice())
            .unwrap_or_default(),
        deployment_name: has_pod.then(|| name.clone()),
        service_name: has_pod.then(|| name.clone()),
    };
    let new = status::compute(server, &observed, Time(now));
    let key = format!("{}/{name}", server.namespace().unwrap_or_default());
    ctx.metrics
        .set_phase(&key, new.phase.map(|p| format!("{p:?}")).as_deref());
    status::write(ctx, server, &new)
        .await
        .map_err(StatusError::Write)?;
    if let Some(finished) = finished {
        prober.written(server, finished);
    }
    record_transitions(ctx, server, &old, &new, &validated.acceptance).await;
    Ok(Updated {
        status: new,
        available_now,
        was_available,
    })
}

/// Deployment availability: available replicas reached the desired count. Only the
/// server's own Deployment counts: one of its name without the server's controller
/// ownerReference (ChildConflict) says nothing about the server.
pub fn availability(
    server: &McpServer,
    current: Option<&Value>,
) -> Result<Availability, StatusError> {
    let name = server.name_any();
    let unavailable = |reason, message| Availability::Unavailable { reason, message };
    let Some(current) = current else {
        return Ok(unavailable(
            UnavailableReason::Progressing,
            format!("Deployment {name} does not exist yet"),
        ));
    };
    let uid = server.uid().unwrap_or_default();
    if ownership::holder(Some(current), &uid) != ownership::Holder::Ours {
        return Ok(unavailable(
            UnavailableReason::ChildConflict,
            format!("Deployment {name} is not owned by this McpServer"),
        ));
    }
    let deployment: Deployment =
        serde_json::from_value(current.clone()).map_err(|source| StatusError::Deployment {
            name: name.clone(),
            source,
        })?;
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    if wanted == 0 {
        return Ok(unavailable(
            UnavailableReason::ScaledToZero,
            format!("Deployment {name} is scaled to 0 replicas"),
        ));
    }
    let generation = deployment.metadata.generation;
    let status = deployment.status.unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    // A rollout is complete once the Deployment controller saw the latest template and
    // every replica runs it; until then the pods may still be the old ones.
    let rolled_out =
        status.observed_generation >= generation && status.updated_replicas.unwrap_or(0) >= wanted;
    if available >= wanted && rolled_out {
        return Ok(Availability::Available);
    }
    let stuck = status.conditions.unwrap_or_default().into_iter().find(|c| {
        c.type_ == "Progressing" && c.status == "False"
            || c.type_ == "ReplicaFailure" && c.status == "True"
    });
    let reason = match stuck.as_ref().and_then(|c| c.reason.as_deref()) {
        Some("FailedCreate") => UnavailableReason::Unschedulable,
        Some("ProgressDeadlineExceeded") => UnavailableReason::CrashLooping,
        _ => UnavailableReason::Progressing,
    };
    Ok(unavailable(
        reason,
        format!("Deployment {name}: {available} of {wanted} replicas available"),
    ))
}

/// Events for transitions only: acceptance problems, probe failure/recovery, pins, tool
/// changes.
async fn record_transitions(
    ctx: &Context,
    server: &McpServer,
    old: &McpServerStatus,
    new: &McpServerStatus,
    acceptance: &Acceptance,
) {
    let old_accepted = find_condition(&old.conditions, types::ACCEPTED);
    if let Acceptance::Rejected { reason, message } = acceptance
        && old_accepted.is_none_or(|c| c.reason != reason.as_str() || c.message != *message)
    {
        record(ctx, server, EventReason::Rejected(*reason), message.clone()).await;
    }
    let old_reach = find_condition(&old.conditions, types::REACHABLE).map(|c| c.status.as_str());
    let new_reach = find_condition(&new.conditions, types::REACHABLE);
    let new_probe = new.last_probe != old.last_probe;
    if let Some(c) = new_reach.filter(|_| new_probe) {
        if c.status == "False" && old_reach != Some("False") {
            let note = format!("{}: {}", c.reason, c.message);
            record(ctx, server, EventReason::ProbeFailed, note).await;
        } else if c.status == "True" && old_reach == Some("False") {
            record(ctx, server, EventReason::ProbeRecovered, c.message.clone()).await;
        }
    }
    if let Some(note) = status::pinning_event(old, new) {
        record(ctx, server, EventReason::ToolsNotPinned, note).await;
    }
    if old.tools_digest.is_some() && new.tools_digest != old.tools_digest {
        let diff = InventoryDiff::from_hashes(
            old.tools
                .iter()
                .map(|t| (t.name.as_str(), t.sha256.as_str())),
            new.tools
                .iter()
                .map(|t| (t.name.as_str(), t.sha256.as_str())),
        );
        record(
            ctx,
            server,
            EventReason::ToolsChanged,
            tools_changed_note(&diff),
        )
        .await;
    }
}

/// Whether `acceptance` refuses the spec over a child name held by someone else.
pub fn is_conflict(acceptance: &Acceptance) -> bool {
    matches!(
        acceptance,
        Acceptance::Rejected {
            reason: RejectReason::ChildConflict,
            ..
        }
    )
}
