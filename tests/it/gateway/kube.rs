//! The gateway and the Kubernetes API (the embedded API server, in RBAC mode): the real
//! gateway binary runs as its ServiceAccount with exactly the permissions the operator
//! gives it (the `<server>-gateway` Role for Events, the shipped
//! `mcp-operator-gateway-tokenreview` ClusterRole through the ClusterRoleBinding the
//! operator computes), in front of the Python SDK server.
//! - Refusals become aggregated Events on the McpServer; API failures never reach callers;
//!   without API access the gateway says so once and counts in metrics only.
//! - ServiceAccount tokens (audience `mcp-operator.dev`) get their binding's rights via
//!   TokenReview; wrong audience, unknown ServiceAccount, expiry → 401; results cached,
//!   concurrent lookups coalesced.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Namespace, ServiceAccount},
    events::v1::Event,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use mcp_operator::api::{McpBinding, McpServer};
use mcp_operator::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions, FaultKind, FaultRule};
use mcp_operator::controller::token_review;
use serde_json::{Value, json};

use super::harness::{GatewayProcess, Mcp, config, hash};
use crate::support;
use crate::support::eventually::eventually;

const NS: &str = "tests";
const SERVER: &str = "everything";
const UID: &str = "5f0c1e2a-0000-4000-8000-00000000beef";
const AUDIENCE: &str = "mcp-operator.dev";
const AGENT_TOKEN: &str = "tok-agent-1f2e-SECRET";
const FLOOD_TOKEN: &str = "tok-flood-9a8b-SECRET";
const BAD_TOKEN: &str = "tok-wrong-4c4c-SECRET";

/// The embedded API server with namespace `tests`, the gateway's ServiceAccount and its
/// RBAC, and a kubeconfig acting as that ServiceAccount (a TokenRequest token for the
/// API server, as the projected in-cluster token is).
struct Cluster {
    api: ApiServerHandle,
    admin: Client,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = ApiServer::start(ApiServerOptions::default()).await.unwrap();
        let admin = api.client().unwrap();
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        for sa in [SERVER, "agent", "stranger"] {
            create::<ServiceAccount>(&admin, json!({"metadata": {"name": sa}})).await;
        }
        // The Role/RoleBinding `<server>-gateway` the operator builds (events only).
        let events = |group: &str| json!({"apiGroups": [group], "resources": ["events"], "verbs": ["create", "patch"]});
        create::<Role>(
            &admin,
            json!({"metadata": {"name": "everything-gateway"}, "rules": [events(""), events("events.k8s.io")]}),
        )
        .await;
        create::<RoleBinding>(
            &admin,
            json!({"metadata": {"name": "everything-gateway"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "everything-gateway"},
                   "subjects": [{"kind": "ServiceAccount", "name": SERVER, "namespace": NS}]}),
        )
        .await;
        // The shipped ClusterRole, bound as the operator binds it for a server that a
        // binding with ServiceAccount subjects targets.
        let role: ClusterRole = serde_yaml::from_str(
            &std::fs::read_to_string(support::repo_path(
                "config/rbac/gateway_tokenreview_role.yaml",
            ))
            .unwrap(),
        )
        .unwrap();
        Api::<ClusterRole>::all(admin.clone())
            .create(&PostParams::default(), &role)
            .await
            .unwrap();
        let server: McpServer = serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": SERVER, "namespace": NS},
            "spec": {"transport": "StreamableHttp", "container": {"image": "x"}},
        }))
        .unwrap();
        let binding: McpBinding = serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": "sa-binding", "namespace": NS},
            "spec": {"servers": [{"name": SERVER}], "subjects": [{"kind": "ServiceAccount", "name": "agent"}]},
        }))
        .unwrap();
        let subjects = token_review::desired_subjects([&server], [&binding]);
        assert_eq!(subjects.len(), 1);
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(
                &PostParams::default(),
                &token_review::cluster_role_binding(subjects),
            )
            .await
            .unwrap();
        let token = token_request(&admin, SERVER, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, api.kubeconfig_with_token(&token, NS)).unwrap();
        Cluster {
            api,
            admin,
            dir,
            kubeconfig,
        }
    }

    fn kubeconfig(&self) -> &str {
        let _ = &self.dir;
        self.kubeconfig.to_str().unwrap()
    }

    async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.admin.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// Polls until `pred` holds for the Events (20 s deadline).
    async fn wait_events(&self, what: &str, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        eventually(what, Duration::from_secs(20), async || {
            let events = self.events().await;
            if pred(&events) {
                Ok(events)
            } else {
                Err(notes(&events))
            }
        })
        .await
    }
}

async fn create<K>(client: &Client, value: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(value).unwrap(),
        )
        .await
        .unwrap()
}

/// A TokenRequest as kubelet makes for a projected token (no audience: the API server's).
async fn token_request(client: &Client, sa: &str, audiences: &[&str]) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .create_subresource::<_, TokenRequest>("token", sa, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

fn of_reason<'a>(events: &'a [Event], reason: &str) -> Vec<&'a Event> {
    let mut v: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect();
    v.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    v
}

fn notes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or_default(),
                e.note.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

/// Occurrences an Event stands for: 1 for a first report, N for "N more ...".
fn occurrences(e: &Event) -> u64 {
    let note = e.note.as_deref().unwrap_or_default();
    match note.split_once(" more ") {
        Some((n, _)) => n.parse().unwrap_or_else(|_| panic!("summary note: {note}")),
        None => 1,
    }
}

fn total(events: &[Event], reason: &str) -> u64 {
    of_reason(events, reason).into_iter().map(occurrences).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_become_aggregated_events_on_the_server() {
    let cluster = Cluster::start().await;
    let upstream = support::python_server("streamable-http");
    let cfg = config(json!({
        "server": {"name": SERVER, "namespace": NS, "uid": UID},
        "auth": "Required",
        "policy": {"deny": ["delete_note"],
                   "rateLimit": {"requestsPerMinute": 60, "burst": 10, "per": "Binding"}},
        "bindings": [{"name": "agent", "tokenSha256": [hash(AGENT_TOKEN)]},
                     {"name": "flood", "tokenSha256": [hash(FLOOD_TOKEN)]}]
    }));
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &cfg,
        &[
            "--kubeconfig",
            cluster.kubeconfig(),
            "--events-window-seconds",
            "3",
            "--pod-name",
            "everything-7d9f-x1",
        ],
    )
    .await;

    // The first refusal is reported at once, with the tool, rule and binding.
    let mut agent = Mcp::new(&gw.url(), Some(AGENT_TOKEN));
    agent.initialize().await;
    let denied = agent.call("delete_note", json!({"note_id": "n1"})).await;
    assert_eq!(denied.rule(), "Denied", "{denied:?}");
    let events = cluster
        .wait_events("the first RequestDenied", |e| {
            !of_reason(e, "RequestDenied").is_empty()
        })
        .await;
    let first = of_reason(&events, "RequestDenied")[0].clone();
    let note = first.note.clone().unwrap();
    assert!(
        note.contains("\"delete_note\"")
            && note.contains("rule Denied")
            && note.contains("\"agent\""),
        "{note}"
    );
    let regarding = first.regarding.clone().unwrap();
    assert_eq!(
        (
            regarding.api_version.as_deref(),
            regarding.kind.as_deref(),
            regarding.name.as_deref(),
            regarding.namespace.as_deref(),
            regarding.uid.as_deref()
        ),
        (
            Some("mcp-operator.dev/v1alpha1"),
            Some("McpServer"),
            Some(SERVER),
            Some(NS),
            Some(UID)
        )
    );
    assert_eq!(
        first.reporting_controller.as_deref(),
        Some("mcp-operator-gateway")
    );
    assert_eq!(
        first.reporting_instance.as_deref(),
        Some("everything-7d9f-x1")
    );
    assert_eq!(first.type_.as_deref(), Some("Warning"));
    assert_eq!(first.action.as_deref(), Some("Deny"));

    // Further refusals are summarised: counts by rule, tool and binding.
    for _ in 0..4 {
        assert_eq!(
            agent
                .call("delete_note", json!({"note_id": "n1"}))
                .await
                .rule(),
            "Denied"
        );
    }
    // 401s and rate-limit trips, each under its own reason.
    for _ in 0..3 {
        let a = Mcp::new(&gw.url(), Some(BAD_TOKEN))
            .request("ping", json!({}))
            .await;
        assert_eq!(a.status, 401);
    }
    let mut flood = Mcp::new(&gw.url(), Some(FLOOD_TOKEN));
    flood.initialize().await;
    let mut limited = 0;
    for _ in 0..20 {
        if flood.request("ping", json!({})).await.status == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 8, "{limited} pings were rate limited");

    let events = cluster
        .wait_events("every refusal counted", |e| {
            total(e, "RequestDenied") == 5
                && total(e, "Unauthorized") == 3
                && total(e, "RateLimited") == limited
        })
        .await;
    let summary = of_reason(&events, "RequestDenied")[1].note.clone().unwrap();
    assert!(
        summary.contains("by rule: Denied 4; by tool: delete_note 4; by binding: agent 4"),
        "{summary}"
    );
    let rate = of_reason(&events, "RateLimited");
    assert!(rate[0].note.as_deref().unwrap().contains("\"flood\""));
    // Aggregated: a handful of Events for ~30 refusals.
    assert!(events.len() <= 8, "{:#?}", notes(&events));
    for e in &events {
        let note = e.note.as_deref().unwrap();
        assert!(note.len() <= 1024);
        for token in [AGENT_TOKEN, FLOOD_TOKEN, BAD_TOKEN] {
            assert!(!note.contains(token), "{note}");
        }
    }
    gw.wait_metric(
        "mcp_gateway_kube_events_total{result=\"sent\"}",
        events.len() as f64,
    )
    .await;
    assert_eq!(
        gw.metric("mcp_gateway_kube_events_total{result=\"failed\"}")
            .await,
        0.0
    );
    let logs = gw.stdout() + &gw.stderr();
    for token in [AGENT_TOKEN, FLOOD_TOKEN, BAD_TOKEN] {
        assert!(!logs.contains(token));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_failures_and_missing_api_access_never_reach_callers() {
    let cluster = Cluster::start().await;
    let upstream = support::python_server("streamable-http");
    let cfg = config(json!({
        "server": {"name": SERVER, "namespace": NS, "uid": UID},
        "auth": "Required",
        "policy": {"deny": ["delete_note"]},
        "bindings": [{"name": "agent", "tokenSha256": [hash(AGENT_TOKEN)]}]
    }));
    let broken = cluster.api.faults().set(
        FaultRule::new(FaultKind::Error500)
            .verbs(["create"])
            .resource("events"),
    );
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &cfg,
        &[
            "--kubeconfig",
            cluster.kubeconfig(),
            "--events-window-seconds",
            "1",
        ],
    )
    .await;
    let mut agent = Mcp::new(&gw.url(), Some(AGENT_TOKEN));
    agent.initialize().await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            agent
                .call("delete_note", json!({"note_id": "n1"}))
                .await
                .rule(),
            "Denied"
        );
        assert_eq!(
            Mcp::new(&gw.url(), Some(BAD_TOKEN))
                .request("ping", json!({}))
                .await
                .status,
            401
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // Both reasons' first reports and their summaries failed; logged once.
    gw.wait_metric("mcp_gateway_kube_events_total{result=\"failed\"}", 4.0)
        .await;
    assert!(cluster.api.faults().fired(broken) >= 4);
    assert!(cluster.events().await.is_empty());
    assert_eq!(gw.stderr().matches("cannot record Event").count(), 1);
    // When the API works again, so do Events.
    cluster.api.faults().remove(broken);
    agent.call("delete_note", json!({"note_id": "n1"})).await;
    cluster
        .wait_events("an Event once the API works", |e| !e.is_empty())
        .await;
    drop(gw);

    // No API configuration: said once, refusals still counted in metrics.
    let gw = GatewayProcess::start(&upstream.url("/mcp"), &cfg, &[]).await;
    let mut agent = Mcp::new(&gw.url(), Some(AGENT_TOKEN));
    agent.initialize().await;
    for _ in 0..3 {
        agent.call("delete_note", json!({"note_id": "n1"})).await;
    }
    gw.wait_metric("mcp_gateway_denied_total{rule=\"Denied\"}", 3.0)
        .await;
    assert_eq!(
        gw.stderr()
            .matches("no Kubernetes API configuration")
            .count(),
        1,
        "{}",
        gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_get_their_bindings_rights() {
    let cluster = Cluster::start().await;
    let upstream = support::python_server("streamable-http");
    let cfg = config(json!({
        "server": {"name": SERVER, "namespace": NS, "uid": UID},
        "auth": "Required",
        "bindings": [
            {"name": "sa-binding", "tokenSha256": [],
             "access": {"narrowing": {"deny": ["delete_note"]}},
             "serviceAccounts": [{"namespace": NS, "name": "agent"}]},
            {"name": "token-binding", "tokenSha256": [hash(AGENT_TOKEN)]}
        ]
    }));
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &cfg,
        &["--kubeconfig", cluster.kubeconfig()],
    )
    .await;
    let api = &cluster.api;
    let admin = &cluster.admin;

    // A projected token of a binding subject: the binding's rights, named in audit records.
    let good = token_request(admin, "agent", &[AUDIENCE]).await;
    let reviews = api.token_reviews();
    let mut sa = Mcp::new(&gw.url(), Some(&good));
    sa.initialize().await;
    let names = sa.list_tools().await.tool_names();
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"delete_note".to_owned()), "{names:?}");
    assert_eq!(sa.call("echo", json!({"message": "hi"})).await.text(), "hi");
    let refused = sa.call("delete_note", json!({"note_id": "n1"})).await;
    assert_eq!(refused.rule(), "Denied", "{refused:?}");
    let record = gw
        .wait_audit("the ServiceAccount's echo", |r| {
            r["tool"] == "echo" && r["outcome"] == "allowed"
        })
        .await;
    assert_eq!(record["binding"], "sa-binding");
    // Cached: one TokenReview for the whole session.
    assert_eq!(api.token_reviews() - reviews, 1);
    assert!(gw.metric("mcp_gateway_token_review_cache_hits_total").await >= 4.0);
    // The binding's own bearer token still works without any review.
    let mut by_token = Mcp::new(&gw.url(), Some(AGENT_TOKEN));
    by_token.initialize().await;
    assert_eq!(api.token_reviews() - reviews, 1);

    // Wrong audience (a token for the API server), a ServiceAccount no binding lists:
    // 401, and the refusal is cached too.
    let wrong_audience = token_request(admin, "agent", &[]).await;
    let stranger = token_request(admin, "stranger", &[AUDIENCE]).await;
    for token in [&wrong_audience, &stranger, &wrong_audience, &stranger] {
        let a = Mcp::new(&gw.url(), Some(token))
            .request("ping", json!({}))
            .await;
        assert_eq!(a.status, 401, "{a:?}");
        assert_eq!(a.rule(), "Unauthorized");
    }
    assert_eq!(api.token_reviews() - reviews, 3);
    // Not JWT-shaped: refused without asking the API server.
    let a = Mcp::new(&gw.url(), Some(BAD_TOKEN))
        .request("ping", json!({}))
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(api.token_reviews() - reviews, 3);

    // Concurrent first requests with a new token share one TokenReview.
    let fresh = token_request(admin, "agent", &[AUDIENCE]).await;
    let calls = (0..8).map(|_| {
        let url = gw.url();
        let fresh = fresh.clone();
        tokio::spawn(async move { Mcp::new(&url, Some(&fresh)).initialize().await })
    });
    for answer in futures::future::join_all(calls).await {
        let a = answer.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
    }
    assert_eq!(api.token_reviews() - reviews, 4);

    // An accepted token is not cached past its expiry.
    let issued = Instant::now();
    let brief = api.issue_service_account_token(NS, "agent", &[AUDIENCE], Duration::from_secs(3));
    let mut short = Mcp::new(&gw.url(), Some(&brief));
    short.initialize().await;
    eventually(
        "the expired 3 s token to be refused",
        Duration::from_secs(15),
        async || {
            let a = short.request("ping", json!({})).await;
            if a.status == 401 {
                return Ok(());
            }
            assert_eq!(a.status, 200, "{a:?}");
            Err(a)
        },
    )
    .await;
    assert!(
        issued.elapsed() >= Duration::from_secs(2),
        "refused before it expired"
    );

    gw.wait_metric(
        "mcp_gateway_token_reviews_total{result=\"authenticated\"}",
        3.0,
    )
    .await;
    assert_eq!(
        gw.metric("mcp_gateway_token_reviews_total{result=\"error\"}")
            .await,
        0.0
    );
    let logs = gw.stdout() + &gw.stderr();
    for token in [&good, &wrong_audience, &stranger, &fresh, &brief] {
        assert!(!logs.contains(token.as_str()), "a token was logged");
    }
}

/// A session opened with a ServiceAccount token belongs to that ServiceAccount: another
/// ServiceAccount of the same binding, and the binding's own token, get 404 (issue 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_sessions_belong_to_the_service_account() {
    let cluster = Cluster::start().await;
    let upstream = support::python_server("streamable-http");
    let cfg = config(json!({
        "server": {"name": SERVER, "namespace": NS, "uid": UID},
        "auth": "Required",
        "bindings": [
            {"name": "sa-binding", "tokenSha256": [hash(AGENT_TOKEN)],
             "serviceAccounts": [{"namespace": NS, "name": "agent"}, {"namespace": NS, "name": "stranger"}]},
        ]
    }));
    let gw = GatewayProcess::start(
        &upstream.url("/mcp"),
        &cfg,
        &["--kubeconfig", cluster.kubeconfig()],
    )
    .await;
    let admin = &cluster.admin;
    let agent = token_request(admin, "agent", &[AUDIENCE]).await;
    let stranger = token_request(admin, "stranger", &[AUDIENCE]).await;
    let mut owner = Mcp::new(&gw.url(), Some(&agent));
    owner.initialize().await;
    for other in [stranger.as_str(), AGENT_TOKEN] {
        let mut intruder = Mcp::new(&gw.url(), Some(other));
        intruder.session = owner.session.clone();
        let a = intruder.request("tools/list", json!({})).await;
        assert_eq!(a.status, 404, "{a:?}");
        assert_eq!(a.rule(), "SessionNotFound");
    }
    // The same ServiceAccount with a fresh token (kubelet rotates them) keeps it.
    let rotated = token_request(admin, "agent", &[AUDIENCE]).await;
    let mut again = Mcp::new(&gw.url(), Some(&rotated));
    again.session = owner.session.clone();
    assert_eq!(again.request("ping", json!({})).await.status, 200);
    assert_eq!(owner.request("ping", json!({})).await.status, 200);
}
