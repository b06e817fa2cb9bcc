//! RBAC for ServiceAccount tokens at the gateways. A gateway checks a ServiceAccount
//! token with a TokenReview, which is cluster-scoped: the gateway's namespaced Role
//! cannot grant it. The shipped ClusterRole [`CLUSTER_ROLE`] (create tokenreviews) is
//! bound by one ClusterRoleBinding [`CLUSTER_ROLE_BINDING`] that the operator keeps
//! (server-side apply, field manager `mcp-operator`), listing the gateway ServiceAccounts
//! of exactly the servers that some McpBinding with ServiceAccount subjects targets — no
//! other gateway may review tokens. Only ServiceAccounts the operator created and
//! controls (`<server>`, ownerReference with the server's uid) are ever listed: a
//! user-chosen `spec.container.serviceAccountName`, or a pre-existing ServiceAccount of
//! the gateway's name, never receives cluster-wide rights from the operator.
//!
//! [`owned_subjects`] and [`cluster_role_binding`] are pure; [`run`] watches McpServers,
//! McpBindings and the operator-labelled ServiceAccounts (own reflectors, per watched
//! namespace) and re-applies the binding when its subjects change. It writes nothing
//! while nothing changes, creates nothing until a subject is needed, and keeps an emptied binding rather than deleting it (no
//! finalizers: a deleted server or binding just drops out on the next computation).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::watch;

use super::binding::targets::targets;
use super::build::labels::{MANAGED_BY, MANAGED_BY_KEY};
use super::shared::scoped;
use crate::api::{McpBinding, McpServer};
use crate::gateway::config::BindingConfig;

/// The ClusterRole granting `create tokenreviews` (config/rbac, the chart).
pub const CLUSTER_ROLE: &str = "mcp-operator-gateway-tokenreview";
/// The ClusterRoleBinding the operator keeps.
pub const CLUSTER_ROLE_BINDING: &str = "mcp-operator-gateways";
const FIELD_MANAGER: &str = "mcp-operator";
/// Changes arriving this close together are handled once.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Wait before retrying a failed write.
const RETRY: Duration = Duration::from_secs(30);

/// The ServiceAccount the user named for the server's pod
/// (`spec.container.serviceAccountName`), if any. The operator neither creates nor owns
/// it, so it never gets the TokenReview binding: that gateway accepts bearer tokens only.
pub fn user_service_account(server: &McpServer) -> Option<&str> {
    server
        .spec
        .container
        .as_ref()
        .and_then(|c| c.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
}

/// The operator-created ServiceAccount (namespace, name) a server's gateway runs as
/// (`<server>`), or None when the server has no gateway pod (a remote server with the
/// gateway disabled, or an invalid spec, which gets no pod either) or its pod runs as a
/// ServiceAccount the user named ([`user_service_account`]).
pub fn gateway_service_account(server: &McpServer) -> Option<(String, String)> {
    let namespace = server.namespace()?;
    let name = server.metadata.name.clone()?;
    let spec = &server.spec;
    if spec.gateway.as_ref().is_some_and(|g| !g.enabled) || user_service_account(server).is_some() {
        return None;
    }
    match (&spec.container, &spec.remote) {
        (Some(_), None) | (None, Some(_)) => Some((namespace, name)),
        _ => None,
    }
}

/// The gateway entries for `server` as its gateway may use them: when the pod runs as a
/// user-chosen ServiceAccount ([`user_service_account`]) the gateway cannot review
/// tokens, so every binding's `serviceAccounts` is dropped (those callers use the
/// binding's bearer token) and the names of the bindings that had some are returned, for
/// the Warning Event that says so.
pub fn without_unreviewable(
    server: &McpServer,
    mut bindings: Vec<BindingConfig>,
) -> (Vec<BindingConfig>, Vec<String>) {
    if user_service_account(server).is_none() {
        return (bindings, Vec::new());
    }
    let mut dropped = Vec::new();
    for b in &mut bindings {
        if !b.service_accounts.is_empty() {
            b.service_accounts.clear();
            dropped.push(b.name.clone());
        }
    }
    (bindings, dropped)
}

/// The Warning Event note for [`without_unreviewable`]'s dropped bindings (at most 8
/// named; Event notes are cut to 1 KiB anyway).
pub fn tokens_disabled_note(server: &McpServer, dropped: &[String]) -> String {
    let account = user_service_account(server).unwrap_or_default();
    let mut names: Vec<&str> = dropped.iter().take(8).map(String::as_str).collect();
    let more = dropped.len().saturating_sub(names.len());
    let extra = format!("and {more} more");
    if more > 0 {
        names.push(&extra);
    }
    format!(
        "ServiceAccount tokens are not accepted by this gateway: the pod runs as ServiceAccount {account} (spec.container.serviceAccountName), which the operator does not own and never binds to the cluster-wide TokenReview role. The ServiceAccount subjects of McpBinding {} are ignored here; their pods must use the binding's bearer token, or leave serviceAccountName unset so the gateway runs as the operator's own ServiceAccount",
        names.join(", ")
    )
}

/// Whether `account` is the gateway ServiceAccount the operator created for `server`:
/// its controller ownerReference names the server's uid. A pre-existing ServiceAccount
/// of that name (ChildConflict: never adopted) is not.
fn owns(server: &McpServer, account: &ServiceAccount) -> bool {
    let uid = server.metadata.uid.as_deref().unwrap_or_default();
    !uid.is_empty()
        && account
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The candidate subjects: the operator-created gateway ServiceAccount
/// ([`gateway_service_account`]) of every server targeted by a binding that has
/// ServiceAccount subjects (the binding controller's rule,
/// [`super::binding::targets::targets`]); sorted, without duplicates. [`run`] lists only
/// those that exist and are controlled by their server ([`owned_subjects`]).
pub fn desired_subjects<'a>(
    servers: impl IntoIterator<Item = &'a McpServer>,
    bindings: impl IntoIterator<Item = &'a McpBinding>,
) -> Vec<Subject> {
    subjects(servers, bindings, |_, _, _| true)
}

/// [`desired_subjects`], keeping only ServiceAccounts that are among `accounts` and
/// controlled by their server (`owns`): what the ClusterRoleBinding lists.
pub fn owned_subjects<'a>(
    servers: impl IntoIterator<Item = &'a McpServer>,
    bindings: impl IntoIterator<Item = &'a McpBinding>,
    accounts: impl IntoIterator<Item = &'a ServiceAccount>,
) -> Vec<Subject> {
    let accounts: Vec<&ServiceAccount> = accounts.into_iter().collect();
    subjects(servers, bindings, |server, ns, name| {
        accounts.iter().any(|a| {
            a.namespace().as_deref() == Some(ns) && a.name_any() == name && owns(server, a)
        })
    })
}

fn subjects<'a>(
    servers: impl IntoIterator<Item = &'a McpServer>,
    bindings: impl IntoIterator<Item = &'a McpBinding>,
    keep: impl Fn(&McpServer, &str, &str) -> bool,
) -> Vec<Subject> {
    let bindings: Vec<&McpBinding> = bindings
        .into_iter()
        .filter(|b| !b.spec.subjects.is_empty() && b.metadata.deletion_timestamp.is_none())
        .collect();
    let accounts: BTreeSet<(String, String)> = servers
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| bindings.iter().any(|b| targets(b, s)))
        .filter_map(|s| {
            let (ns, name) = gateway_service_account(s)?;
            keep(s, &ns, &name).then_some((ns, name))
        })
        .collect();
    accounts
        .into_iter()
        .map(|(namespace, name)| Subject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(namespace),
        })
        .collect()
}

/// The ClusterRoleBinding [`CLUSTER_ROLE_BINDING`] with these subjects.
pub fn cluster_role_binding(subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(CLUSTER_ROLE_BINDING.into()),
            labels: Some(
                [
                    ("app.kubernetes.io/managed-by", "mcp-operator"),
                    ("app.kubernetes.io/component", "gateway"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: CLUSTER_ROLE.into(),
        },
        subjects: Some(subjects),
    }
}

fn same_subjects(a: &[Subject], b: &[Subject]) -> bool {
    let key = |s: &Subject| (s.kind.clone(), s.namespace.clone(), s.name.clone());
    let a: BTreeSet<_> = a.iter().map(key).collect();
    let b: BTreeSet<_> = b.iter().map(key).collect();
    a == b
}

/// What one reflector stream reports.
enum Change {
    Synced(usize),
    Changed,
    Error,
}

fn reflect<K>(
    client: &Client,
    ns: Option<&str>,
    config: watcher::Config,
    index: usize,
) -> (Store<K>, BoxStream<'static, Change>)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(scoped::<K>(client, ns), config))
        .default_backoff()
        .map(move |event| match event {
            Ok(watcher::Event::InitDone) => Change::Synced(index),
            Ok(_) => Change::Changed,
            Err(error) => {
                tracing::debug!(%error, "tokenreview binding: watch error");
                Change::Error
            }
        })
        .boxed();
    (reader, stream)
}

/// Keeps [`CLUSTER_ROLE_BINDING`] in line with the servers and bindings of `scopes`
/// (None: every namespace) until `stop` turns true.
pub async fn run(client: Client, scopes: Vec<Option<String>>, mut stop: watch::Receiver<bool>) {
    let mut servers = Vec::new();
    let mut bindings = Vec::new();
    let mut accounts = Vec::new();
    let mut streams = Vec::new();
    let all = watcher::Config::default();
    // Only the operator's own ServiceAccounts matter (ownership is checked by uid).
    let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_KEY}={MANAGED_BY}"));
    for scope in &scopes {
        let scope = scope.as_deref();
        let (store, stream) = reflect::<McpServer>(&client, scope, all.clone(), streams.len());
        servers.push(store);
        streams.push(stream);
        let (store, stream) = reflect::<McpBinding>(&client, scope, all.clone(), streams.len());
        bindings.push(store);
        streams.push(stream);
        let (store, stream) =
            reflect::<ServiceAccount>(&client, scope, ours.clone(), streams.len());
        accounts.push(store);
        streams.push(stream);
    }
    let mut synced = vec![false; streams.len()];
    let mut changes = futures::stream::select_all(streams);
    let api: Api<ClusterRoleBinding> = Api::all(client);
    let mut applied: Option<Vec<Subject>> = None;
    let mut retry: Option<tokio::time::Instant> = None;
    loop {
        let mut dirty = false;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            change = changes.next() => match change {
                None => return,
                Some(Change::Synced(i)) => { synced[i] = true; dirty = true; }
                Some(Change::Changed) => dirty = true,
                Some(Change::Error) => {}
            },
            () = sleep_until(retry) => { retry = None; dirty = true; }
        }
        if !dirty || synced.iter().any(|s| !s) {
            continue;
        }
        // Let a burst of changes (start-up, a bulk apply) settle into one computation.
        let settle = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(settle);
        loop {
            tokio::select! {
                () = &mut settle => break,
                change = changes.next() => if let Some(Change::Synced(i)) = change { synced[i] = true },
            }
        }
        let all_servers: Vec<_> = servers.iter().flat_map(Store::state).collect();
        let all_bindings: Vec<_> = bindings.iter().flat_map(Store::state).collect();
        let all_accounts: Vec<_> = accounts.iter().flat_map(Store::state).collect();
        let desired = owned_subjects(
            all_servers.iter().map(|s| &**s),
            all_bindings.iter().map(|b| &**b),
            all_accounts.iter().map(|a| &**a),
        );
        if applied
            .as_deref()
            .is_some_and(|a| same_subjects(a, &desired))
        {
            continue;
        }
        match sync(&api, &desired, applied.is_none()).await {
            Ok(()) => {
                applied = Some(desired);
                retry = None;
            }
            Err(error) => {
                tracing::warn!(%error, binding = CLUSTER_ROLE_BINDING, "cannot update the ClusterRoleBinding of gateways that check ServiceAccount tokens; retrying in 30 s");
                retry = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

/// Applies `desired` unless (on the first pass) the stored binding already has it, or
/// there is none and none is needed.
async fn sync(
    api: &Api<ClusterRoleBinding>,
    desired: &[Subject],
    first: bool,
) -> Result<(), kube::Error> {
    if first {
        match api.get_opt(CLUSTER_ROLE_BINDING).await? {
            Some(existing)
                if same_subjects(existing.subjects.as_deref().unwrap_or_default(), desired) =>
            {
                return Ok(());
            }
            None if desired.is_empty() => return Ok(()),
            _ => {}
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(
        CLUSTER_ROLE_BINDING,
        &params,
        &Patch::Apply(&cluster_role_binding(desired.to_vec())),
    )
    .await?;
    tracing::info!(
        binding = CLUSTER_ROLE_BINDING,
        gateways = desired.len(),
        "gateways allowed to review ServiceAccount tokens updated"
    );
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn server(
        ns: &str,
        name: &str,
        labels: serde_json::Value,
        spec: serde_json::Value,
    ) -> McpServer {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": format!("uid-{ns}-{name}")},
            "spec": spec,
        }))
        .unwrap()
    }

    /// The ServiceAccount `name` in `ns`, controlled by the McpServer of uid `owner_uid`.
    fn account(ns: &str, name: &str, owner_uid: Option<&str>) -> ServiceAccount {
        let refs = owner_uid.map(|uid| {
            json!([{"apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
                    "name": name, "uid": uid, "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "ownerReferences": refs},
        }))
        .unwrap()
    }

    /// The gateway ServiceAccount the operator created for each server.
    fn accounts_of(servers: &[McpServer]) -> Vec<ServiceAccount> {
        servers
            .iter()
            .map(|s| {
                let ns = s.namespace().unwrap();
                account(&ns, &s.name_any(), s.metadata.uid.as_deref())
            })
            .collect()
    }

    fn container(sa: Option<&str>) -> serde_json::Value {
        let mut c = json!({"image": "x"});
        if let Some(sa) = sa {
            c["serviceAccountName"] = json!(sa);
        }
        json!({"transport": "StreamableHttp", "container": c})
    }

    fn binding(ns: &str, name: &str, spec: serde_json::Value) -> McpBinding {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))
        .unwrap()
    }

    fn names(subjects: &[Subject]) -> Vec<String> {
        subjects
            .iter()
            .map(|s| format!("{}/{}", s.namespace.as_deref().unwrap_or_default(), s.name))
            .collect()
    }

    #[test]
    fn lists_gateways_of_servers_targeted_by_bindings_with_service_accounts() {
        let servers = [
            server("agents", "memory", json!({}), container(None)),
            server(
                "agents",
                "search",
                json!({"tier": "web"}),
                container(Some("search-sa")),
            ),
            server("agents", "files", json!({"tier": "web"}), container(None)),
            server("agents", "untargeted", json!({}), container(None)),
            server(
                "agents",
                "catalogue",
                json!({"tier": "web"}),
                json!({"transport": "StreamableHttp", "remote": {"url": "https://x"}, "gateway": {"enabled": false}}),
            ),
            server(
                "agents",
                "remote",
                json!({}),
                json!({"transport": "StreamableHttp", "remote": {"url": "https://x"}}),
            ),
            server("other", "memory", json!({}), container(None)),
        ];
        let sa = json!([{"kind": "ServiceAccount", "name": "bot"}]);
        let bindings = [
            binding(
                "agents",
                "by-name",
                json!({"servers": [{"name": "memory"}, {"name": "remote"}], "subjects": sa}),
            ),
            binding(
                "agents",
                "by-label",
                json!({"serverSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, "subjects": sa}),
            ),
            // Token-only bindings need no TokenReview.
            binding(
                "agents",
                "tokens-only",
                json!({"servers": [{"name": "untargeted"}]}),
            ),
        ];
        let mut accounts = accounts_of(&servers);
        // The user's own ServiceAccount of `search` exists too; it is never listed.
        accounts.push(account("agents", "search-sa", None));
        let subjects = owned_subjects(&servers, &bindings, &accounts);
        assert_eq!(
            names(&subjects),
            ["agents/files", "agents/memory", "agents/remote"]
        );
        assert_eq!(desired_subjects(&servers, &bindings), subjects);
        assert!(subjects.iter().all(|s| s.kind == "ServiceAccount"));
        assert!(owned_subjects(&servers, &bindings[2..], &accounts).is_empty());
        let crb = cluster_role_binding(subjects);
        assert_eq!(crb.metadata.name.as_deref(), Some(CLUSTER_ROLE_BINDING));
        assert_eq!(crb.role_ref.name, CLUSTER_ROLE);
        assert_eq!(crb.role_ref.kind, "ClusterRole");
    }

    #[test]
    fn only_service_accounts_the_operator_owns_are_listed() {
        let servers = [
            server("agents", "memory", json!({}), container(None)),
            server("agents", "squat", json!({}), container(None)),
            server(
                "agents",
                "custom",
                json!({}),
                container(Some("ci-deployer")),
            ),
        ];
        let sa = json!([{"kind": "ServiceAccount", "name": "bot"}]);
        let bindings = [binding(
            "agents",
            "all",
            json!({"servers": [{"name": "memory"}, {"name": "squat"}, {"name": "custom"}], "subjects": sa}),
        )];
        let accounts = [
            account("agents", "memory", Some("uid-agents-memory")),
            // Pre-existing (ChildConflict), an earlier server's, or the user's own.
            account("agents", "squat", None),
            account("agents", "squat", Some("uid-of-an-earlier-squat")),
            account("agents", "ci-deployer", None),
            account("agents", "custom", Some("uid-agents-custom")),
            // Right name and uid, other namespace.
            account("other", "memory", Some("uid-agents-memory")),
        ];
        let subjects = owned_subjects(&servers, &bindings, &accounts);
        assert_eq!(names(&subjects), ["agents/memory"]);
        assert_eq!(
            names(&desired_subjects(&servers, &bindings)),
            ["agents/memory", "agents/squat"]
        );
        assert_eq!(user_service_account(&servers[2]), Some("ci-deployer"));
        assert_eq!(gateway_service_account(&servers[2]), None);
        assert!(owned_subjects(&servers, &bindings, &[]).is_empty());
    }

    #[test]
    fn a_user_service_account_gateway_gets_no_service_account_subjects() {
        let b = |name: &str, sas: usize| BindingConfig {
            name: name.into(),
            service_accounts: (0..sas)
                .map(|i| crate::gateway::config::ServiceAccountRef {
                    namespace: "agents".into(),
                    name: format!("sa{i}"),
                })
                .collect(),
            ..BindingConfig::default()
        };
        let plain = server("agents", "memory", json!({}), container(None));
        let (kept, dropped) = without_unreviewable(&plain, vec![b("a", 1)]);
        assert_eq!((kept[0].service_accounts.len(), dropped.len()), (1, 0));
        let custom = server("agents", "custom", json!({}), container(Some("ci")));
        let (kept, dropped) = without_unreviewable(&custom, vec![b("a", 2), b("b", 0)]);
        assert!(kept.iter().all(|b| b.service_accounts.is_empty()));
        assert_eq!(kept.len(), 2, "the bindings stay, with their token hashes");
        assert_eq!(dropped, ["a"]);
        let note = tokens_disabled_note(&custom, &dropped);
        assert!(
            note.contains("ServiceAccount ci ") && note.contains("McpBinding a "),
            "{note}"
        );
        let many: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
        let note = tokens_disabled_note(&custom, &many);
        assert!(
            note.contains("b7, and 12 more") && !note.contains("b8"),
            "{note}"
        );
    }

    #[test]
    fn selectors_follow_label_selector_semantics() {
        let web = server("agents", "web", json!({"tier": "web"}), container(None));
        let reaches = |selector: serde_json::Value| {
            let b = binding("agents", "b", json!({"serverSelector": selector}));
            targets(&b, &web)
        };
        assert!(reaches(json!({})));
        assert!(reaches(json!({"matchLabels": {"tier": "web"}})));
        assert!(!reaches(json!({"matchLabels": {"tier": "db"}})));
        assert!(reaches(
            json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]})
        ));
        assert!(!reaches(
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]})
        ));
        assert!(!reaches(
            json!({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]})
        ));
        // Same namespace only.
        let b = binding("other", "b", json!({"servers": [{"name": "web"}]}));
        assert!(!targets(&b, &web));
    }
}
