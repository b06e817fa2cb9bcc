//! Reconciling one McpServer: fetch (from the cache) → merge the policies targeting it →
//! validate (workload rules, referenced Secrets) → build the desired children → apply and
//! prune them → read the Deployment → probe when due → write status → record Events.
//! Problems with the spec become conditions; only API failures are errors.

use std::sync::Arc;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Secret, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    core::{Selector, SelectorExt},
    runtime::controller::Action,
};

use super::{
    apply::{self, Change},
    build::{self, BuildContext, Desired},
    context::Context,
    error::{Error, is_not_found},
    events::tools_changed_note,
    ownership::{self, ChildConflict, ReadChild},
    probes::{self, Schedule},
    retry,
    status::{self, Acceptance, Availability, Observed, types},
    validate,
};
use crate::{
    api::{McpPolicy, McpServer, McpServerStatus, common::find_condition, server::ContainerSpec},
    prober::{InventoryDiff, ProbeReport},
};

pub async fn reconcile(server: Arc<McpServer>, ctx: Arc<Context>) -> Result<Action, Error> {
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
pub fn error_policy(server: Arc<McpServer>, error: &Error, ctx: Arc<Context>) -> Action {
    retry::on_error(&ctx.retries, &retry::key(&*server), error)
}

/// The policies in the cache that target `server`, sorted by name.
pub fn targeting_policies(policies: &[Arc<McpPolicy>], server: &McpServer) -> Vec<Arc<McpPolicy>> {
    let ns = server.namespace();
    let name = server.name_any();
    let labels = server.labels();
    let mut out: Vec<Arc<McpPolicy>> = policies
        .iter()
        .filter(|p| p.namespace() == ns && p.meta().deletion_timestamp.is_none())
        .filter(|p| {
            p.spec.target_refs.iter().any(|r| r.name == name)
                || p.spec.server_selector.as_ref().is_some_and(|sel| {
                    Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(labels))
                })
        })
        .cloned()
        .collect();
    out.sort_by_key(|p| p.name_any());
    out
}

/// Names of the Secrets `server` references (for re-reconciling when one appears).
pub fn referenced_secret_names(server: &McpServer) -> Vec<String> {
    secret_refs(server).into_iter().map(|r| r.name).collect()
}

/// A reference to a Secret (and key) that must exist.
struct SecretRef {
    name: String,
    key: Option<String>,
    field: String,
}

fn secret_refs(server: &McpServer) -> Vec<SecretRef> {
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
async fn missing_secret(ctx: &Context, server: &McpServer) -> Result<Option<String>, Error> {
    let ns = server.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for r in secret_refs(server) {
        let secret = match api.get(&r.name).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => {
                return Ok(Some(format!(
                    "{}: Secret {ns}/{} not found",
                    r.field, r.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(key) = &r.key {
            let has = secret.data.as_ref().is_some_and(|d| d.contains_key(key))
                || secret
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(key));
            if !has {
                return Ok(Some(format!(
                    "{}: Secret {ns}/{} has no key {key}",
                    r.field, r.name
                )));
            }
        }
    }
    Ok(None)
}

/// Acceptance and (when accepted) the desired children with what is stored under their
/// names. A child name held by an object this server does not control refuses the spec
/// (`ChildConflict`, [`ownership`]) before anything is written. A refused spec changes
/// nothing that runs: a Deployment from an earlier accepted spec is kept (neither
/// updated nor pruned), and the Accepted message says so.
async fn accept(
    ctx: &Context,
    server: &McpServer,
    policies: &[Arc<McpPolicy>],
    build_ctx: &Result<BuildContext, String>,
) -> Result<(Acceptance, Option<(Desired, Vec<ReadChild>)>), Error> {
    let (acceptance, desired) = accept_spec(ctx, server, policies, build_ctx).await?;
    let acceptance = match (acceptance, desired) {
        (Acceptance::Accepted, Some(desired)) => {
            let read = read_children(ctx, server, &desired).await?;
            let uid = server.uid().unwrap_or_default();
            match ownership::first_conflict(&uid, &read) {
                None => return Ok((Acceptance::Accepted, Some((desired, read)))),
                Some(conflict) => Acceptance::Rejected {
                    reason: ChildConflict::REASON.to_owned(),
                    message: conflict.to_string(),
                },
            }
        }
        (acceptance, _) => acceptance,
    };
    let Acceptance::Rejected { reason, message } = acceptance else {
        return Ok((acceptance, None));
    };
    let ns = server.namespace().unwrap_or_default();
    let name = server.name_any();
    let running = Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await?
        .is_some_and(|d| {
            d.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == server.uid().as_ref())
        });
    let message = if running {
        status::kept_running_message(&message, &name)
    } else {
        message
    };
    if running && let Ok(build_ctx) = build_ctx {
        refresh_running_gateway(ctx, server, build_ctx).await?;
    }
    Ok((Acceptance::Rejected { reason, message }, None))
}

/// Reads the stored object of every child `desired` wants (one GET each, in apply
/// order); [`apply_children`] applies against these reads, so each child is read once.
async fn read_children(
    ctx: &Context,
    server: &McpServer,
    desired: &Desired,
) -> Result<Vec<ReadChild>, Error> {
    let ns = server.namespace().unwrap_or_default();
    let mut out = Vec::new();
    for (kind, name) in desired.children() {
        let current = match kind {
            "ServiceAccount" => apply::read::<ServiceAccount>(ctx, &ns, &name).await?,
            "Role" => apply::read::<Role>(ctx, &ns, &name).await?,
            "RoleBinding" => apply::read::<RoleBinding>(ctx, &ns, &name).await?,
            "Secret" => apply::read::<Secret>(ctx, &ns, &name).await?,
            "NetworkPolicy" => apply::read::<NetworkPolicy>(ctx, &ns, &name).await?,
            "Deployment" => apply::read::<Deployment>(ctx, &ns, &name).await?,
            "Service" => apply::read::<Service>(ctx, &ns, &name).await?,
            other => {
                return Err(Error::Controller(format!(
                    "no reader for child kind {other}"
                )));
            }
        };
        out.push(ReadChild {
            kind,
            name,
            current,
        });
    }
    Ok(out)
}

/// A refused server that still runs from an earlier accepted spec keeps enforcing the
/// current governance: its gateway Secret gets the current merged policy and bindings
/// (a deny added, a binding deleted or rotated takes effect at once), while everything
/// else in it — auth, prefix, pins, upstream: what the refused spec says — stays as last
/// accepted. Nothing is written when the governance part is unchanged.
async fn refresh_running_gateway(
    ctx: &Context,
    server: &McpServer,
    build_ctx: &BuildContext,
) -> Result<(), Error> {
    use crate::gateway::config::{CONFIG_KEY, GatewayConfig};
    let ns = server.namespace().unwrap_or_default();
    let name = format!("{}-gateway", server.name_any());
    let Some(secret) = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await?
    else {
        return Ok(());
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
        return Ok(());
    };
    let mut bindings = build_ctx.bindings.clone();
    bindings.sort_by(|a, b| a.name.cmp(&b.name));
    let updated = GatewayConfig {
        policy: build_ctx.policy.clone(),
        bindings,
        ..current.clone()
    };
    if updated == current {
        return Ok(());
    }
    let json = serde_json::to_vec_pretty(&updated).map_err(|e| Error::serde(&name, e))?;
    let desired = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns),
            labels: secret.metadata.labels.clone(),
            ..Default::default()
        },
        type_: secret.type_.clone(),
        data: Some(std::collections::BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            k8s_openapi::ByteString(json),
        )])),
        ..Secret::default()
    };
    if apply::apply(ctx, server, desired).await? != Change::Unchanged {
        record(
            ctx,
            server,
            "Updated",
            &format!("updated Secret {name}: current policies and bindings, spec still refused"),
        )
        .await;
    }
    Ok(())
}

async fn accept_spec(
    ctx: &Context,
    server: &McpServer,
    policies: &[Arc<McpPolicy>],
    build_ctx: &Result<BuildContext, String>,
) -> Result<(Acceptance, Option<Desired>), Error> {
    let rejected = |reason: &str, message: String| {
        Ok((
            Acceptance::Rejected {
                reason: reason.to_owned(),
                message,
            },
            None,
        ))
    };
    let build_ctx = match build_ctx {
        Ok(b) => b,
        Err(message) => return rejected("InvalidSpec", message.clone()),
    };
    let specs: Vec<(&str, &crate::api::McpPolicySpec)> = policies
        .iter()
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec))
        .collect();
    if let Some(v) = validate::workload_violations(server, &specs)
        .into_iter()
        .next()
    {
        return rejected("PolicyViolation", v.to_string());
    }
    if let Some(message) = missing_secret(ctx, server).await? {
        return rejected("SecretNotFound", message);
    }
    match build::desired(server, build_ctx) {
        Ok(desired) => Ok((Acceptance::Accepted, Some(desired))),
        Err(e) => rejected(e.reason(), e.to_string()),
    }
}

async fn reconcile_server(server: &McpServer, ctx: &Context) -> Result<Action, Error> {
    if server.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = server.namespace().unwrap_or_default();
    let name = server.name_any();
    // Listed, not cached: a policy change triggers this reconcile through its own watch,
    // and a fresh list can never be older than that trigger.
    let all: Vec<Arc<McpPolicy>> = Api::<McpPolicy>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    let policies = targeting_policies(&all, server);
    let specs: Vec<(&str, &crate::api::McpPolicySpec)> = policies
        .iter()
        .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec))
        .collect();
    // Every McpBinding targeting the server: token hashes, narrowing, grants.
    let bindings = super::binding::gateway::for_server(ctx, server).await?;
    // A user-chosen pod ServiceAccount never gets TokenReview rights (item 12, see
    // `tokenreview`): its gateway is not given ServiceAccount subjects it cannot check.
    let (bindings, unreviewable) = super::tokenreview::without_unreviewable(server, bindings);
    let mut build_ctx = BuildContext {
        operator_image: ctx.operator_image.clone(),
        probe_token_sha256: vec![ctx.probe_token.sha256.clone()],
        bindings,
        ..BuildContext::default()
    }
    .with_policies(&specs)
    .map_err(|e| e.to_string());
    // Under an egress policy the gateway still needs the API server (Events, TokenReview).
    if let Ok(b) = &mut build_ctx
        && b.egress.is_some()
    {
        b.api_server_egress = ctx.api_server_egress.rules().await;
    }
    let (acceptance, planned) = accept(ctx, server, &policies, &build_ctx).await?;
    let desired = planned.as_ref().map(|(d, _)| d.clone());
    if let Some((desired, read)) = planned {
        let gateway_written = apply_children(ctx, server, desired, &read).await?;
        if gateway_written && !unreviewable.is_empty() {
            let note = super::tokenreview::tokens_disabled_note(server, &unreviewable);
            record_event(ctx, server, true, "ServiceAccountTokensDisabled", note).await;
        }
    }
    let gateway_enabled = server.spec.gateway.as_ref().is_none_or(|g| g.enabled);
    let has_pod = server.spec.container.is_some() || gateway_enabled;
    let availability = if has_pod {
        availability(ctx, server).await?
    } else {
        Availability::NotApplicable
    };
    let old = server.status.clone().unwrap_or_default();
    let was_available = !has_pod
        || find_condition(&old.conditions, types::AVAILABLE).is_some_and(|c| c.status == "True");
    let accepted = acceptance == Acceptance::Accepted;
    let available_now = matches!(
        availability,
        Availability::Available | Availability::NotApplicable
    );
    let now = Timestamp::now();
    let schedule = if accepted {
        probes::schedule(server, available_now, was_available, now)
    } else {
        Schedule::Never
    };
    let url = desired
        .as_ref()
        .and_then(|d| d.url.clone())
        .or(old.url.clone());
    // `mcp-operator dev`: the Service's local address, for the probe and for clients.
    let url = ctx.resolve_url(url);
    let report = match schedule {
        Schedule::Now(why) => {
            tracing::debug!(server = %name, namespace = %ns, why, "probing");
            probe(ctx, server, url.as_deref(), gateway_enabled).await?
        }
        _ => None,
    };
    let policy = build_ctx
        .as_ref()
        .map(|b| b.policy.clone())
        .unwrap_or_default();
    let observed = Observed {
        acceptance: acceptance.clone(),
        availability,
        probe: report.as_ref(),
        probe_disabled: server.spec.probe.as_ref().is_some_and(|p| p.disabled),
        url,
        policy: &policy,
        bindings: build_ctx
            .as_ref()
            .map(|b| b.bindings.as_slice())
            .unwrap_or_default(),
        deployment_name: has_pod.then(|| name.clone()),
        service_name: has_pod.then(|| name.clone()),
    };
    let new = status::compute(server, &observed, Time(now));
    let key = format!("{ns}/{name}");
    ctx.metrics
        .set_phase(&key, new.phase.map(|p| format!("{p:?}")).as_deref());
    status::write(ctx, server, &new).await?;
    record_transitions(ctx, server, &old, &new, &acceptance).await;
    let probe = server.spec.probe.clone().unwrap_or_default();
    Ok(match schedule {
        Schedule::Now(_) => Action::requeue(probes::jittered(probes::next_interval(
            &probe,
            new.consecutive_failures.unwrap_or(0),
        ))),
        Schedule::Later(d) => Action::requeue(d),
        // A conflicting object is not ours, so `owns` does not see it; the name-mapped
        // child watches (`run::controller`) do, and this slow requeue is the backstop.
        Schedule::Never if is_conflict(&acceptance) => Action::requeue(CONFLICT_RECHECK),
        Schedule::Never => Action::await_change(),
    })
}

/// How often a server refused with `ChildConflict` re-checks without any trigger.
pub const CONFLICT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

fn is_conflict(acceptance: &Acceptance) -> bool {
    matches!(acceptance, Acceptance::Rejected { reason, .. } if reason == ChildConflict::REASON)
}

/// Probes the server; None when a Secret needed for the probe went missing meanwhile.
async fn probe(
    ctx: &Context,
    server: &McpServer,
    url: Option<&str>,
    gateway_enabled: bool,
) -> Result<Option<ProbeReport>, Error> {
    let probe = server.spec.probe.clone().unwrap_or_default();
    let target = match (&server.spec.remote, gateway_enabled) {
        (Some(remote), false) => match probes::remote_target(ctx, server, remote).await? {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
        _ => {
            let Some(url) = url else { return Ok(None) };
            let ns = server.namespace().unwrap_or_default();
            probes::gateway_target(url, &ns, &ctx.probe_token.token, ctx.service_proxy.as_ref())
        }
    };
    Ok(Some(
        probes::run(ctx, target, probes::options(&probe)).await,
    ))
}

/// Applies every desired child and prunes the owned ones no longer wanted; one Event per
/// created, updated or deleted child. `read` holds what is stored under each wanted
/// name (already checked: all ours or absent). Returns whether the gateway Secret was
/// created or updated.
async fn apply_children(
    ctx: &Context,
    server: &McpServer,
    desired: Desired,
    read: &[ReadChild],
) -> Result<bool, Error> {
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
    let name = server.name_any();
    let gateway_name = format!("{name}-gateway");
    macro_rules! one {
        ($kind:literal, $ty:ty, $obj:expr, $child_name:expr) => {{
            let wanted: Vec<String> = $obj.iter().map(|o| o.name_any()).collect();
            if let Some(obj) = $obj {
                let name = obj.name_any();
                let change = match read.iter().find(|r| r.kind == $kind && r.name == name) {
                    Some(r) => {
                        apply::apply_read::<$ty>(ctx, server, obj, r.current.as_ref()).await?
                    }
                    None => apply::apply::<$ty>(ctx, server, obj).await?,
                };
                changes.push(($kind, name, change));
            }
            if let Some(name) = apply::prune::<$ty>(ctx, server, $child_name, &wanted).await? {
                record(
                    ctx,
                    server,
                    "Deleted",
                    &format!("deleted {} {name}: the spec no longer needs it", $kind),
                )
                .await;
            }
        }};
    }
    one!("ServiceAccount", ServiceAccount, service_account, &name);
    one!("Role", Role, role, &gateway_name);
    one!("RoleBinding", RoleBinding, role_binding, &gateway_name);
    one!("Secret", Secret, gateway_secret, &gateway_name);
    one!("NetworkPolicy", NetworkPolicy, network_policy, &name);
    one!("Deployment", Deployment, deployment, &name);
    one!("Service", Service, service, &name);
    // One Event per reason and reconcile ("created Deployment memory, Service memory, …"),
    // not one per child: a new server costs one Event request, not seven.
    for (wanted, reason) in [(Change::Created, "Created"), (Change::Updated, "Updated")] {
        let names: Vec<String> = changes
            .iter()
            .filter(|(_, _, change)| *change == wanted)
            .map(|(kind, name, _)| format!("{kind} {name}"))
            .collect();
        if !names.is_empty() {
            let note = format!("{} {}", reason.to_lowercase(), names.join(", "));
            record(ctx, server, reason, &note).await;
        }
    }
    Ok(changes.iter().any(|(kind, name, change)| {
        *kind == "Secret" && *name == gateway_name && *change != Change::Unchanged
    }))
}

async fn record(ctx: &Context, server: &McpServer, reason: &str, note: &str) {
    record_event(ctx, server, false, reason, note.to_owned()).await;
}

async fn record_event(
    ctx: &Context,
    server: &McpServer,
    warning: bool,
    reason: &str,
    note: String,
) {
    if ctx.may_write().is_err() {
        return;
    }
    ctx.events
        .publish(&server.object_ref(&()), warning, reason, "Reconcile", note)
        .await;
}

/// Deployment availability: available replicas reached the desired count. Only the
/// server's own Deployment counts: one of its name without the server's controller
/// ownerReference (ChildConflict) says nothing about the server.
async fn availability(ctx: &Context, server: &McpServer) -> Result<Availability, Error> {
    let ns = server.namespace().unwrap_or_default();
    let name = server.name_any();
    let Some(current) = apply::read::<Deployment>(ctx, &ns, &name).await? else {
        return Ok(Availability::Unavailable {
            reason: "Progressing".into(),
            message: format!("Deployment {name} does not exist yet"),
        });
    };
    let uid = server.uid().unwrap_or_default();
    if ownership::holder(Some(&current), &uid) != ownership::Holder::Ours {
        return Ok(Availability::Unavailable {
            reason: ChildConflict::REASON.into(),
            message: format!("Deployment {name} is not owned by this McpServer"),
        });
    }
    let deployment: Deployment =
        serde_json::from_value(current).map_err(|e| Error::serde(&name, e))?;
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    if wanted == 0 {
        return Ok(Availability::Unavailable {
            reason: "ScaledToZero".into(),
            message: format!("Deployment {name} is scaled to 0 replicas"),
        });
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
        Some("FailedCreate") => "Unschedulable",
        Some("ProgressDeadlineExceeded") => "CrashLooping",
        _ => "Progressing",
    };
    Ok(Availability::Unavailable {
        reason: reason.into(),
        message: format!("Deployment {name}: {available} of {wanted} replicas available"),
    })
}

/// Events for transitions only: acceptance problems, probe failure/recovery, tool changes.
async fn record_transitions(
    ctx: &Context,
    server: &McpServer,
    old: &McpServerStatus,
    new: &McpServerStatus,
    acceptance: &Acceptance,
) {
    let old_accepted = find_condition(&old.conditions, types::ACCEPTED);
    if let Acceptance::Rejected { reason, message } = acceptance
        && old_accepted.is_none_or(|c| c.reason != *reason || c.message != *message)
    {
        record_event(ctx, server, true, reason, message.clone()).await;
    }
    let old_reach = find_condition(&old.conditions, types::REACHABLE).map(|c| c.status.as_str());
    let new_reach = find_condition(&new.conditions, types::REACHABLE);
    let new_probe = new.last_probe != old.last_probe;
    if let Some(c) = new_reach.filter(|_| new_probe) {
        if c.status == "False" && old_reach != Some("False") {
            record_event(
                ctx,
                server,
                true,
                "ProbeFailed",
                format!("{}: {}", c.reason, c.message),
            )
            .await;
        } else if c.status == "True" && old_reach == Some("False") {
            record_event(ctx, server, false, "ProbeRecovered", c.message.clone()).await;
        }
    }
    if let Some((reason, note)) = status::pinning_event(old, new) {
        record_event(ctx, server, true, reason, note).await;
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
        record_event(
            ctx,
            server,
            false,
            "ToolsChanged",
            tools_changed_note(&diff),
        )
        .await;
    }
}
