//! McpServer status: computed from what a reconcile observed (acceptance, the Deployment,
//! the latest probe, the effective policy), merged into the previous status so that
//! transition times and the last inventory are kept, and written with server-side apply
//! on the status subresource only when something other than a timestamp changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{
    context::Context,
    error::Error,
    reasons::{RejectReason, UnavailableReason},
    shared::write_status,
};
use crate::{
    api::{
        McpServer, McpServerStatus,
        common::{condition, find_condition, upsert_condition},
        policy::PinningMode,
        server::{LastProbe, Phase, ProbeResult, ToolHiddenReason, ToolStatus},
    },
    gateway::config::BindingConfig,
    policy::{EffectivePolicy, glob_match},
    prober::{ProbeReport, ToolInventory},
};

/// Condition types, as in docs/api.md.
pub mod types {
    /// Spec valid, references resolve, policies admit it.
    pub const ACCEPTED: &str = "Accepted";
    /// The Deployment has its available replicas (omitted for remote servers).
    pub const AVAILABLE: &str = "Available";
    /// The last probe completed an MCP initialize.
    pub const REACHABLE: &str = "Reachable";
    /// The inventory is from the latest successful probe.
    pub const TOOLS_DISCOVERED: &str = "ToolsDiscovered";
    /// Every exposed tool matches its pin (only when a policy asks for pinning).
    pub const TOOLS_PINNED: &str = "ToolsPinned";
    /// Everything above that applies is True.
    pub const READY: &str = "Ready";
}

/// Whether the spec was accepted, or why not (reason, message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid, references resolve, policies admit it, every child name is free or ours.
    Accepted,
    /// Not deployed (or not updated): reason and message of Accepted=False.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// What to fix.
        message: String,
    },
}

/// What the Deployment says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Remote server without pod: the Available condition is omitted.
    NotApplicable,
    /// Available replicas reached the desired count.
    Available,
    /// Not yet: reason and message.
    Unavailable {
        /// The condition reason.
        reason: UnavailableReason,
        /// What is missing.
        message: String,
    },
}

/// Everything a reconcile observed that status is computed from.
pub struct Observed<'a> {
    /// Acceptance of the spec.
    pub acceptance: Acceptance,
    /// Deployment availability.
    pub availability: Availability,
    /// A probe that ran in this reconcile.
    pub probe: Option<&'a ProbeReport>,
    /// Probing is disabled in the spec.
    pub probe_disabled: bool,
    /// status.url.
    pub url: Option<String>,
    /// The merged policy (for tool decisions and pinning).
    pub policy: &'a EffectivePolicy,
    /// The consumers (grants decide NotGranted).
    pub bindings: &'a [BindingConfig],
    /// status.deploymentName / serviceName.
    pub deployment_name: Option<String>,
    /// status.serviceName.
    pub service_name: Option<String>,
}

/// The new status of `server`, from its previous status and what was observed.
pub fn compute(server: &McpServer, observed: &Observed<'_>, now: Time) -> McpServerStatus {
    let old = server.status.clone().unwrap_or_default();
    let generation = server.metadata.generation;
    let mut status = old.clone();
    status.observed_generation = generation;
    status.url = observed.url.clone();
    status.applied_policies = observed.policy.policies.clone();
    status.deployment_name = observed.deployment_name.clone();
    status.service_name = observed.service_name.clone();
    let cond = |t: &str, ok: bool, reason: &str, msg: String| {
        condition(t, ok, reason, msg, generation, now.clone())
    };
    let conds = &mut status.conditions;
    match &observed.acceptance {
        Acceptance::Accepted => upsert_condition(
            conds,
            cond(
                types::ACCEPTED,
                true,
                "Accepted",
                "the spec is valid and admitted by its policies".into(),
            ),
        ),
        Acceptance::Rejected { reason, message } => upsert_condition(
            conds,
            cond(types::ACCEPTED, false, reason.as_str(), message.clone()),
        ),
    };
    match &observed.availability {
        Availability::NotApplicable => conds.retain(|c| c.type_ != types::AVAILABLE),
        Availability::Available => {
            upsert_condition(
                conds,
                cond(
                    types::AVAILABLE,
                    true,
                    "Available",
                    "the Deployment has its desired available replicas".into(),
                ),
            );
        }
        Availability::Unavailable { reason, message } => {
            upsert_condition(
                conds,
                cond(types::AVAILABLE, false, reason.as_str(), message.clone()),
            );
        }
    }
    apply_probe(&mut status, observed, now.clone(), generation);
    status.tools = decide_tools(&status.tools, server, observed);
    pinning(&mut status, server, observed, now.clone(), generation);
    ready(&mut status, observed, now, generation);
    status.phase = Some(phase(&status, &old, observed));
    status
}

fn unknown(
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: "Unknown".to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: now,
    }
}

fn apply_probe(
    status: &mut McpServerStatus,
    observed: &Observed<'_>,
    now: Time,
    generation: Option<i64>,
) {
    let conds = &mut status.conditions;
    if observed.probe_disabled {
        upsert_condition(
            conds,
            unknown(
                types::REACHABLE,
                "ProbeDisabled",
                "spec.probe.disabled is true",
                generation,
                now.clone(),
            ),
        );
        upsert_condition(
            conds,
            unknown(
                types::TOOLS_DISCOVERED,
                "ProbeDisabled",
                "spec.probe.disabled is true",
                generation,
                now,
            ),
        );
        return;
    }
    let Some(report) = observed.probe else {
        if find_condition(conds, types::REACHABLE).is_none() {
            upsert_condition(
                conds,
                unknown(
                    types::REACHABLE,
                    "NotProbed",
                    "waiting for the first probe",
                    generation,
                    now.clone(),
                ),
            );
            upsert_condition(
                conds,
                unknown(
                    types::TOOLS_DISCOVERED,
                    "NotProbed",
                    "waiting for the first probe",
                    generation,
                    now,
                ),
            );
        }
        return;
    };
    status.last_probe = Some(LastProbe {
        time: now.clone(),
        result: if report.inventory().is_some() {
            ProbeResult::Succeeded
        } else {
            ProbeResult::Failed
        },
        code: report.code().map(|c| c.to_string()).unwrap_or_default(),
        message: report
            .error()
            .map(|e| super::events::truncate(e.message().to_owned()))
            .unwrap_or_default(),
        latency_ms: i64::try_from(report.latency_ms).unwrap_or(i64::MAX),
        attempts: i32::try_from(report.attempts).unwrap_or(i32::MAX),
    });
    match report.inventory() {
        Some(inv) => {
            status.consecutive_failures = Some(0);
            set_inventory(status, inv);
            let conds = &mut status.conditions;
            let msg = format!(
                "initialize completed in {} ms ({} attempt(s))",
                report.latency_ms, report.attempts
            );
            upsert_condition(
                conds,
                condition(
                    types::REACHABLE,
                    true,
                    "Reachable",
                    msg,
                    generation,
                    now.clone(),
                ),
            );
            let msg = format!(
                "{} tools, {} resources, {} prompts",
                inv.tool_count, inv.resource_count, inv.prompt_count
            );
            upsert_condition(
                conds,
                condition(
                    types::TOOLS_DISCOVERED,
                    true,
                    "Discovered",
                    msg,
                    generation,
                    now,
                ),
            );
        }
        None => {
            let error = report.error().expect("a failed report has an error");
            status.consecutive_failures =
                Some(status.consecutive_failures.unwrap_or(0).saturating_add(1));
            let conds = &mut status.conditions;
            let msg = super::events::truncate(error.message().to_owned());
            upsert_condition(
                conds,
                condition(
                    types::REACHABLE,
                    false,
                    error.code().as_str(),
                    msg,
                    generation,
                    now.clone(),
                ),
            );
            let (reason, msg) = if status.tools_digest.is_some() {
                (
                    "Stale",
                    "the latest probe failed; the inventory is from an earlier probe",
                )
            } else {
                ("ListFailed", "no probe has completed yet")
            };
            upsert_condition(
                conds,
                condition(
                    types::TOOLS_DISCOVERED,
                    false,
                    reason,
                    msg.to_owned(),
                    generation,
                    now,
                ),
            );
        }
    }
}

fn set_inventory(status: &mut McpServerStatus, inv: &ToolInventory) {
    status.server_info = Some(inv.server_info.clone());
    status.capabilities = Some(inv.capabilities);
    status.tool_count = Some(i32::try_from(inv.tool_count).unwrap_or(i32::MAX));
    status.resource_count = Some(i32::try_from(inv.resource_count).unwrap_or(i32::MAX));
    status.prompt_count = Some(i32::try_from(inv.prompt_count).unwrap_or(i32::MAX));
    status.tools = inv
        .tools
        .iter()
        .map(|t| ToolStatus {
            name: t.name.clone(),
            description: t.description.clone(),
            sha256: t.sha256.clone(),
            exposed: true,
            reason: None,
        })
        .collect();
    status.tools_truncated = inv.tools_truncated;
    status.tools_digest = Some(inv.tools_digest.clone());
}

/// `exposed`/`reason` of every tool under the current policy and bindings.
fn decide_tools(
    tools: &[ToolStatus],
    server: &McpServer,
    observed: &Observed<'_>,
) -> Vec<ToolStatus> {
    let pins = &server.spec.pinned_tools;
    tools
        .iter()
        .map(|t| {
            let mut reason = observed
                .policy
                .server_decision(pins, &t.name, &t.sha256)
                .err();
            let needs_grant = observed
                .policy
                .require_grant
                .iter()
                .any(|p| glob_match(p, &t.name));
            let granted = observed
                .bindings
                .iter()
                .any(|b| b.access.grants.iter().any(|g| g == &t.name));
            if reason.is_none() && needs_grant && !granted {
                reason = Some(ToolHiddenReason::NotGranted);
            }
            ToolStatus {
                exposed: reason.is_none(),
                reason,
                ..t.clone()
            }
        })
        .collect()
}

fn pinning(
    status: &mut McpServerStatus,
    server: &McpServer,
    observed: &Observed<'_>,
    now: Time,
    generation: Option<i64>,
) {
    let conds = &mut status.conditions;
    if observed.policy.pinning == PinningMode::Off {
        conds.retain(|c| c.type_ != types::TOOLS_PINNED);
        return;
    }
    if status.tools_digest.is_none() {
        upsert_condition(
            conds,
            unknown(
                types::TOOLS_PINNED,
                "NotProbed",
                "no inventory to compare with spec.pinnedTools yet",
                generation,
                now,
            ),
        );
        return;
    }
    let pins = &server.spec.pinned_tools;
    let mut changed = Vec::new();
    let mut unpinned = Vec::new();
    for t in &status.tools {
        if t.reason == Some(ToolHiddenReason::Denied) {
            continue;
        }
        match pins.iter().find(|p| p.name == t.name) {
            None => unpinned.push(t.name.as_str()),
            Some(p) if !p.sha256.eq_ignore_ascii_case(&t.sha256) => changed.push(t.name.as_str()),
            Some(_) => {}
        }
    }
    let c = if !changed.is_empty() || !unpinned.is_empty() {
        let reason = if changed.is_empty() {
            "Unpinned"
        } else {
            "Changed"
        };
        condition(
            types::TOOLS_PINNED,
            false,
            reason,
            pinning_message(observed.policy.pinning, &changed, &unpinned),
            generation,
            now,
        )
    } else {
        condition(
            types::TOOLS_PINNED,
            true,
            "Pinned",
            "every exposed tool matches its pin".to_owned(),
            generation,
            now,
        )
    };
    let c = Condition {
        message: super::events::truncate(c.message),
        ..c
    };
    upsert_condition(conds, c);
}

/// The ToolsPinned=False message: which tools changed, which have no pin, what the
/// pinning mode does about it and how to update the pins.
fn pinning_message(mode: PinningMode, changed: &[&str], unpinned: &[&str]) -> String {
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!("changed since pinned: {}", changed.join(", ")));
    }
    if !unpinned.is_empty() {
        parts.push(format!("unpinned: {}", unpinned.join(", ")));
    }
    let effect = if mode == PinningMode::Enforce {
        "pinning Enforce: the gateway refuses them"
    } else {
        "pinning Warn: they stay callable"
    };
    format!(
        "{} ({effect}); review them and update spec.pinnedTools (`mcp-operator probe --pins <url>` prints them)",
        parts.join("; ")
    )
}

/// An Accepted=False `message` for a server whose Deployment `deployment` (from an
/// earlier accepted spec) is kept running.
pub fn kept_running_message(message: &str, deployment: &str) -> String {
    super::events::truncate(format!(
        "{message}; nothing was changed: Deployment {deployment} keeps running with the last accepted spec until this is fixed or the McpServer is deleted"
    ))
}

/// The note of the `ToolsNotPinned` Warning Event for a ToolsPinned transition to False, or
/// to a different set of changed/unpinned tools; None otherwise. The note names the tools
/// and is at most 1 KiB.
pub fn pinning_event(old: &McpServerStatus, new: &McpServerStatus) -> Option<String> {
    let c = find_condition(&new.conditions, types::TOOLS_PINNED).filter(|c| c.status == "False")?;
    let before = find_condition(&old.conditions, types::TOOLS_PINNED);
    if before.is_some_and(|o| o.status == "False" && o.message == c.message) {
        return None;
    }
    Some(super::events::truncate(c.message.clone()))
}

fn ready(
    status: &mut McpServerStatus,
    observed: &Observed<'_>,
    now: Time,
    generation: Option<i64>,
) {
    let mut required = vec![types::ACCEPTED];
    if observed.availability != Availability::NotApplicable {
        required.push(types::AVAILABLE);
    }
    required.push(types::REACHABLE);
    if observed.policy.pinning == PinningMode::Enforce {
        required.push(types::TOOLS_PINNED);
    }
    let failing = required.iter().find_map(|t| {
        let c = find_condition(&status.conditions, t);
        match c {
            Some(c) if c.status == "True" => None,
            Some(c) => Some((c.reason.clone(), format!("{}: {}", c.type_, c.message))),
            None => Some(("Pending".to_owned(), format!("{t} not known yet"))),
        }
    });
    let c = match failing {
        None => condition(
            types::READY,
            true,
            "Ready",
            "the server is accepted, running and reachable".to_owned(),
            generation,
            now,
        ),
        Some((reason, message)) => {
            condition(types::READY, false, &reason, message, generation, now)
        }
    };
    upsert_condition(&mut status.conditions, c);
}

fn phase(status: &McpServerStatus, old: &McpServerStatus, observed: &Observed<'_>) -> Phase {
    let is_true = |t| find_condition(&status.conditions, t).is_some_and(|c| c.status == "True");
    if !is_true(types::ACCEPTED) {
        Phase::Failed
    } else if is_true(types::READY) {
        Phase::Ready
    } else if matches!(old.phase, Some(Phase::Ready | Phase::Degraded)) {
        Phase::Degraded
    } else if status.last_probe.is_none()
        && !matches!(observed.availability, Availability::Available)
    {
        Phase::Pending
    } else {
        Phase::Progressing
    }
}

/// Writes `status` with server-side apply when it differs from the stored one. Returns
/// whether a write was sent.
pub async fn write(
    ctx: &Context,
    server: &McpServer,
    status: &McpServerStatus,
) -> Result<bool, Error> {
    if server.status.as_ref() == Some(status) {
        return Ok(false);
    }
    ctx.may_write()?;
    write_status(&ctx.client, server, status).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::prober::{
        ProbeError, ProbeOutcome, ServerCapabilities, ServerInfo,
        inventory::{
            MAX_DESCRIPTION_CHARS, MAX_INSTRUCTIONS_BYTES, MAX_NAME_CHARS,
            MAX_PROTOCOL_VERSION_CHARS, MAX_SERVER_NAME_CHARS, MAX_SERVER_VERSION_CHARS, MAX_TOOLS,
        },
    };

    /// The most bytes JSON spends on one character of a string: a control character is
    /// written as `\u00XX`.
    const JSON_BYTES_PER_CHAR: usize = 6;
    /// Keys, quotes and fixed values of one `tools` entry besides name and description
    /// (`{"name":…,"description":…,"sha256":<64>,"exposed":false,"reason":"NotGranted"},`).
    const TOOL_OVERHEAD: usize = 160;
    /// Conditions (at most six), `lastProbe`, counts, digest, phase, keys: each message
    /// at most 1 KiB of text plus a short prefix (Ready quotes another condition).
    const FIXED_PART: usize = 8 * (1024 + 64) * JSON_BYTES_PER_CHAR + 4096;

    /// The most bytes the server-supplied part of a status can take, from the limits.
    fn worst_case_bound() -> usize {
        let tool = (MAX_NAME_CHARS + MAX_DESCRIPTION_CHARS) * JSON_BYTES_PER_CHAR + TOOL_OVERHEAD;
        let info = (MAX_SERVER_NAME_CHARS
            + MAX_SERVER_VERSION_CHARS
            + MAX_PROTOCOL_VERSION_CHARS
            + MAX_INSTRUCTIONS_BYTES)
            * JSON_BYTES_PER_CHAR;
        MAX_TOOLS * tool + info + FIXED_PART
    }

    fn server() -> McpServer {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1",
            "kind": "McpServer",
            "metadata": {"name": "big", "namespace": "ns", "generation": 1},
            "spec": {"transport": "StreamableHttp", "remote": {"url": "https://example.com/mcp"}},
        }))
        .expect("server")
    }

    fn observe<'a>(report: &'a ProbeReport, policy: &'a EffectivePolicy) -> Observed<'a> {
        Observed {
            acceptance: Acceptance::Accepted,
            availability: Availability::NotApplicable,
            probe: Some(report),
            probe_disabled: false,
            url: Some("https://example.com/mcp".into()),
            policy,
            bindings: &[],
            deployment_name: None,
            service_name: None,
        }
    }

    #[test]
    fn a_hostile_server_cannot_make_status_too_large_to_write() {
        // The worst JSON: every character escaped to six bytes.
        let ugly = |n: usize| "\u{1}".repeat(n);
        let tools: Vec<Value> = (0..2 * MAX_TOOLS)
            .map(|i| json!({"name": format!("{}{i}", ugly(12 * 1024)), "description": ugly(4 * 1024), "inputSchema": {}}))
            .collect();
        let info = ServerInfo {
            name: ugly(1 << 20),
            version: ugly(1 << 20),
            protocol_version: ugly(1 << 10),
            instructions: ugly(1 << 20),
            era: None,
            supported_versions: vec![ugly(1 << 10); 1 << 10],
        };
        let inventory = ToolInventory::from_tools(
            info,
            ServerCapabilities::default(),
            &tools,
            usize::MAX,
            usize::MAX,
        );
        let report = ProbeReport {
            target: "https://example.com/mcp".into(),
            attempts: 1,
            latency_ms: 1,
            outcome: ProbeOutcome::Succeeded { inventory },
        };
        // Pinning lists unpinned tools in a message; nothing is pinned.
        let policy = EffectivePolicy {
            pinning: PinningMode::Warn,
            ..EffectivePolicy::default()
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let ok = compute(&server(), &observe(&report, &policy), now.clone());
        assert_eq!(ok.tools.len(), MAX_TOOLS);
        // Then a failure with the longest message, keeping the (stale) inventory.
        let mut stale = server();
        stale.status = Some(ok.clone());
        let failed = ProbeReport {
            outcome: ProbeOutcome::Failed {
                error: ProbeError::ServerError(ugly(1 << 20)),
            },
            ..report.clone()
        };
        let both = compute(&stale, &observe(&failed, &policy), now);
        let bound = worst_case_bound();
        for status in [&ok, &both] {
            let bytes = serde_json::to_vec(status).expect("serializes").len();
            assert!(bytes <= bound, "{bytes} bytes > bound {bound}");
            eprintln!("worst-case status: {bytes} bytes (bound {bound})");
        }
        // etcd stores at most 1.5 MiB per object, the API server takes 3 MiB per request:
        // the whole status stays far below, leaving room for spec and metadata.
        assert!(bound <= 512 * 1024, "bound {bound}");
    }
}
