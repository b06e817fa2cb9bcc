//! Reconciling one McpServer, as a pipeline in one direction:
//!
//! 1. [`dereference`]: every read, once (policies, bindings and their Secrets, referenced
//!    Secrets, what is stored under each child name — the Deployment and the gateway
//!    Secret among them);
//! 2. [`validate`], pure: accepted, or refused with a typed reason;
//! 3. [`plan`], pure: apply these children / keep the running Deployment and refresh
//!    only its gateway Secret / nothing;
//! 4. [`apply`]: every write, and only writes;
//! 5. [`status`]: the new status from what was seen and the prober's latest report,
//!    written when it changed, and the Events of its transitions;
//!
//! then the prober ([`probes`]) is told when the next probe is due. Probes run in the
//! prober's own task, never in a reconcile: a reconcile waits on nothing but the API
//! server. Problems with the spec become conditions; only API failures are errors
//! ([`ReconcileError`], one variant per step).

pub mod apply;
pub mod dereference;
pub mod events;
pub mod plan;
pub mod probe_schedule;
pub mod probe_target;
pub mod probes;
pub mod status;
pub mod validate;

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{Resource, runtime::controller::Action};

use self::{
    apply::ApplyError,
    dereference::DereferenceError,
    plan::PlanError,
    probes::{ProbeRequest, ProbeWhen, Prober},
    status::{StatusError, Updated, is_conflict},
};
use super::{
    build::BuildContext, context::Context, error::Failure, retry, shared::jittered,
    status::Acceptance,
};
use crate::api::McpServer;

pub use validate::referenced_secret_names;

/// How often a server refused with `ChildConflict` re-checks without any trigger.
pub const CONFLICT_RECHECK: Duration = Duration::from_secs(60);

/// Why a reconcile failed: the step, and in it what. The variant is [`Failure::step`]
/// (`mcp_operator_reconcile_failed_steps_total{step}`); [`Failure::reason`]
/// (`mcp_operator_reconcile_errors_total{reason}`) is the API error's: `Conflict`,
/// `Forbidden`, `ApiError`, … — what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A read failed.
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    /// The writes could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A write failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Computing or writing status failed.
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl Failure for ReconcileError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Dereference(e) => e.source_error().reason(),
            Self::Apply(e) => e.source_error().reason(),
            Self::Status(StatusError::Write(e)) => e.reason(),
            Self::Plan(_) | Self::Status(StatusError::Deployment { .. }) => "Serialization",
        }
    }

    fn step(&self) -> &'static str {
        match self {
            Self::Dereference(_) => "Dereference",
            Self::Plan(_) => "Plan",
            Self::Apply(_) => "Apply",
            Self::Status(_) => "Status",
        }
    }

    fn is_not_leader(&self) -> bool {
        match self {
            Self::Dereference(e) => e.source_error().is_not_leader(),
            Self::Apply(e) => e.source_error().is_not_leader(),
            Self::Status(StatusError::Write(e)) => e.is_not_leader(),
            Self::Plan(_) | Self::Status(_) => false,
        }
    }
}

/// What McpServer reconciles share: what every controller shares, and this
/// controller's prober.
pub struct ServerContext {
    /// The controllers' shared state.
    pub shared: Arc<Context>,
    /// Probes this controller's servers and wakes their reconciles.
    pub prober: Prober,
}

impl std::ops::Deref for ServerContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
    }
}

/// The reconcile entry point given to the kube-runtime Controller.
pub async fn reconcile(
    server: Arc<McpServer>,
    ctx: Arc<ServerContext>,
) -> Result<Action, ReconcileError> {
    let key = retry::key(&*server);
    retry::measured(
        &ctx.metrics,
        &ctx.retries,
        &key,
        reconcile_server(&server, &ctx),
    )
    .await
}

/// The error policy given to the kube-runtime Controller: per-server backoff.
pub fn error_policy(
    server: Arc<McpServer>,
    error: &ReconcileError,
    ctx: Arc<ServerContext>,
) -> Action {
    retry::on_error(&ctx.retries, &retry::key(&*server), error)
}

async fn reconcile_server(
    server: &McpServer,
    ctx: &ServerContext,
) -> Result<Action, ReconcileError> {
    if server.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let world = dereference::dereference(ctx, server).await?;
    let base = BuildContext {
        operator_image: ctx.operator_image.clone(),
        probe_token_sha256: vec![ctx.probe_token.sha256.clone()],
        ..BuildContext::default()
    };
    let validated = validate::validate(server, &world, base);
    let plan = plan::plan(server, &world, &validated)?;
    let applied = apply::apply(ctx, server, plan, &world, &validated.unreviewable).await?;
    // The prober's latest report, written into this status (once).
    let finished = ctx.prober.finished(server);
    let now = Timestamp::now();
    let updated = status::update_status(
        ctx,
        &ctx.prober,
        server,
        &validated,
        applied.deployment.as_ref(),
        finished.as_ref(),
        now,
    )
    .await?;
    let accepted = validated.acceptance == Acceptance::Accepted;
    let when = next_probe(server, &updated, accepted, finished.is_some(), now);
    let gateway_enabled = server.spec.gateway.as_ref().is_none_or(|g| g.enabled);
    let request = ProbeRequest {
        server: Arc::new(server.clone()),
        url: updated.status.url.clone(),
        gateway_enabled,
    };
    ctx.prober.schedule(request, when);
    // A conflicting object is not ours, so `owns` does not see it; the name-mapped child
    // watches (`run::controller`) do, and this slow requeue is the backstop.
    Ok(if is_conflict(&validated.acceptance) {
        Action::requeue(CONFLICT_RECHECK)
    } else {
        Action::await_change()
    })
}

/// When the prober should probe `server` next: never unless accepted; after the interval
/// (or the failure backoff) when this reconcile just wrote a report; else as the schedule
/// says from the status read.
fn next_probe(
    server: &McpServer,
    updated: &Updated,
    accepted: bool,
    wrote_report: bool,
    now: Timestamp,
) -> ProbeWhen {
    let when = probe_schedule::schedule(server, updated.available_now, updated.was_available, now);
    match when {
        _ if !accepted => ProbeWhen::Never,
        ProbeWhen::Never => ProbeWhen::Never,
        _ if wrote_report => {
            let probe = server.spec.probe.clone().unwrap_or_default();
            let failures = updated.status.consecutive_failures.unwrap_or(0);
            ProbeWhen::After(jittered(probe_schedule::next_interval(&probe, failures)))
        }
        when => when,
    }
}
