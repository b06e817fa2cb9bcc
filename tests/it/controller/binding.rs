//! McpBinding on the embedded API server: the binding Secret (`mcp.json`, `token`,
//! `<server>.url`), each rule's effect on the rendered gateway Secrets (`config.json`:
//! token hashes, narrowing, grants, ServiceAccounts) and on binding status (servers,
//! exposedTools, Ready), targets by name and selector across several servers, a missing
//! server, a Secret conflict, rotation with grace, revocation on delete, the shipped RBAC,
//! and that no token appears in any status or Event. Helpers here are shared with
//! `binding_gateway`.

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::DeleteParams;
use mcp_operator::{
    api::{McpBinding, McpBindingStatus},
    gateway::config::{BindingConfig, GatewayConfig, token_sha256},
};

use super::*;

/// A remote server fronted by its gateway, never probed (the tests set its inventory).
pub(super) fn gateway_spec() -> Value {
    json!({
        "transport": "StreamableHttp",
        "remote": {"url": "http://127.0.0.1:9/mcp"},
        "probe": {"disabled": true},
    })
}

/// Creates an McpServer with labels.
pub(super) async fn create_labelled(
    client: &Client,
    ns: &str,
    name: &str,
    labels: Value,
    spec: Value,
) {
    let server: McpServer = serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    Api::<McpServer>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &server)
        .await
        .expect("McpServer created");
}

/// Creates an McpBinding from a JSON spec.
pub(crate) async fn create_binding(client: &Client, ns: &str, name: &str, spec: Value) {
    let b: McpBinding = serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap();
    Api::<McpBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &b)
        .await
        .unwrap_or_else(|e| panic!("McpBinding {name} created: {e}"));
}

/// Plays the prober: gives server `name` an inventory of `tools` (status.tools), once the
/// controller has written its status. Returns once status shows them.
pub(super) async fn set_tools(client: &Client, ns: &str, name: &str, tools: &[&str]) {
    let api: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let wanted: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t, "sha256": token_sha256(t), "exposed": true}))
        .collect();
    eventually(&format!("{ns}/{name} has status.tools"), 60, || {
        let api = api.clone();
        let wanted = wanted.clone();
        async move {
            let s = api.get(name).await.ok()?;
            let st = s.status?;
            st.url.as_ref()?;
            if st.tools.len() == wanted.len() {
                return Some(());
            }
            let patch = json!({"status": {"tools": wanted, "toolCount": wanted.len()}});
            let _ = api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            None
        }
    })
    .await;
}

/// The entry of `binding` in a gateway configuration.
pub(super) fn entry<'a>(c: &'a GatewayConfig, binding: &str) -> Option<&'a BindingConfig> {
    c.bindings.iter().find(|b| b.name == binding)
}

/// Binding names in a gateway configuration.
fn entries(c: &GatewayConfig) -> Vec<&str> {
    c.bindings.iter().map(|b| b.name.as_str()).collect()
}

/// Waits until binding `name`'s status satisfies `check`.
pub(super) async fn wait_binding(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&McpBindingStatus) -> bool,
) -> McpBindingStatus {
    let api: Api<McpBinding> = Api::namespaced(client.clone(), ns);
    crate::support::eventually::eventually(
        &format!("McpBinding {ns}/{name}: {what}"),
        Duration::from_secs(60),
        async || {
            let b = api.get(name).await.expect("McpBinding exists");
            let st = b.status.unwrap_or_default();
            if check(&st) { Ok(st) } else { Err(st) }
        },
    )
    .await
}

/// (status, reason, message) of the binding's Ready condition.
pub(super) fn ready(st: &McpBindingStatus) -> (String, String, String) {
    find_condition(&st.conditions, "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// `exposedTools` of `server` in a binding's status (None: not listed).
fn exposed(st: &McpBindingStatus, server: &str) -> Option<i32> {
    st.servers
        .iter()
        .find(|s| s.name == server)
        .map(|s| s.exposed_tools)
}

/// The binding Secret `name`, once it exists and (if given) satisfies `check`.
pub(super) async fn binding_secret(
    client: &Client,
    ns: &str,
    name: &str,
    check: impl Fn(&Secret) -> bool,
) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    crate::support::eventually::eventually(
        &format!("Secret {ns}/{name}"),
        Duration::from_secs(60),
        async || match api.get_opt(name).await.unwrap() {
            Some(s) if check(&s) => Ok(s),
            Some(_) => Err("present, but not as wanted"),
            None => Err("absent"),
        },
    )
    .await
}

/// A key of a Secret as text.
pub(super) fn key(s: &Secret, key: &str) -> String {
    let data = s.data.as_ref().expect("Secret has data");
    let v = data
        .get(key)
        .unwrap_or_else(|| panic!("Secret has no key {key}"));
    String::from_utf8(v.0.clone()).unwrap()
}

/// No token appears in any McpServer/McpBinding/McpPolicy (status included), gateway
/// Secret or Event of `ns`.
pub(super) async fn assert_no_token_outside_binding_secrets(
    client: &Client,
    ns: &str,
    tokens: &[String],
) {
    let mut texts = Vec::new();
    macro_rules! all {
        ($ty:ty) => {
            for o in Api::<$ty>::namespaced(client.clone(), ns)
                .list(&Default::default())
                .await
                .unwrap()
            {
                texts.push(serde_json::to_string(&o).unwrap());
            }
        };
    }
    all!(McpServer);
    all!(McpBinding);
    all!(mcp_operator::api::McpPolicy);
    all!(Event);
    all!(k8s_openapi::api::core::v1::Event);
    for s in Api::<Secret>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
    {
        if s.type_.as_deref() == Some("mcp-operator.dev/binding") {
            continue;
        }
        for v in s.data.unwrap_or_default().values() {
            texts.push(String::from_utf8_lossy(&v.0).into_owned());
        }
        texts.push(serde_json::to_string(&s.metadata).unwrap());
    }
    assert!(texts.len() > 3, "there is something to search");
    for token in tokens {
        assert!(
            token.len() >= 64,
            "a real token: {} characters",
            token.len()
        );
        for t in &texts {
            assert!(!t.contains(token.as_str()), "a token leaked into: {t}");
        }
    }
}

/// Waits until the operator has made no write for a second, then checks it makes none
/// for two more.
pub(crate) async fn assert_settles(operator: &Operator) {
    crate::support::eventually::assert_settled("the operator's writes", async || {
        operator.metrics.writes()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_render_narrowing_grants_and_targets_into_gateways_and_status() {
    let (_api, client) = cluster().await;
    let ns = "bindings";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    let team = json!({"team": "a"});
    create_labelled(&client, ns, "memory", team.clone(), gateway_spec()).await;
    create_labelled(&client, ns, "time", team.clone(), gateway_spec()).await;
    create_labelled(&client, ns, "other", json!({}), gateway_spec()).await;
    create_policy(
        &client,
        ns,
        "grants",
        json!({"targetRefs": [{"name": "memory"}],
               "tools": {"deny": ["delete_*"], "requireGrant": ["create_*"]}}),
    )
    .await;
    set_tools(
        &client,
        ns,
        "memory",
        &[
            "create_entities",
            "create_relations",
            "delete_all",
            "read_graph",
        ],
    )
    .await;
    set_tools(&client, ns, "time", &["get_time", "convert_time"]).await;
    create_binding(
        &client,
        ns,
        "agent",
        json!({
            "servers": [
                {"name": "memory", "grants": ["create_entities", "delete_all"], "tools": {"deny": ["read_*"]}},
                {"name": "time", "tools": {"allow": ["get_*"]}},
            ],
            "subjects": [{"kind": "ServiceAccount", "name": "agent"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}],
        }),
    )
    .await;
    create_binding(
        &client,
        ns,
        "reader",
        json!({"serverSelector": {"matchLabels": {"team": "a"}}}),
    )
    .await;

    // The Secret: exactly docs/api.md's keys, typed, owned, labelled, mcp.json usable as is.
    let secret = binding_secret(&client, ns, "agent-mcp", |s| {
        s.data.as_ref().is_some_and(|d| d.contains_key("time.url"))
    })
    .await;
    assert_eq!(secret.type_.as_deref(), Some("mcp-operator.dev/binding"));
    let agent: McpBinding = Api::namespaced(client.clone(), ns)
        .get("agent")
        .await
        .unwrap();
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("McpBinding", agent.uid().unwrap().as_str(), Some(true))
    );
    assert_eq!(
        secret.labels()["app.kubernetes.io/managed-by"],
        "mcp-operator"
    );
    assert_eq!(secret.labels()["app.kubernetes.io/instance"], "agent");
    let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["mcp.json", "memory.url", "time.url", "token"]);
    let token = key(&secret, "token");
    assert!(
        token.len() >= 64
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let memory_url = format!("http://memory.{ns}.svc:8080/mcp");
    assert_eq!(key(&secret, "memory.url"), memory_url);
    let mcp: Value = serde_json::from_str(&key(&secret, "mcp.json")).unwrap();
    assert_eq!(
        mcp,
        json!({"mcpServers": {
            "memory": {"type": "http", "url": memory_url, "headers": {"Authorization": format!("Bearer {token}")}},
            "time": {"type": "http", "url": format!("http://time.{ns}.svc:8080/mcp"), "headers": {"Authorization": format!("Bearer {token}")}},
        }})
    );
    assert!(
        secret
            .annotations()
            .contains_key("mcp-operator.dev/token-rotated-at"),
        "{:?}",
        secret.annotations()
    );

    // Gateways: the token's hash (never the token), narrowing, grants, ServiceAccounts.
    let memory = wait_gateway(&client, ns, "memory", "agent and reader", |c| {
        entries(c) == ["agent", "reader"] && c.bindings.iter().all(|b| b.token_sha256.len() == 1)
    })
    .await;
    let a = entry(&memory, "agent").unwrap();
    assert_eq!(a.token_sha256, [token_sha256(&token)]);
    assert_eq!(a.access.grants, ["create_entities", "delete_all"]);
    assert_eq!(a.access.narrowing.as_ref().unwrap().deny, ["read_*"]);
    let sas: Vec<(&str, &str)> = a
        .service_accounts
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(sas, [(ns, "agent"), ("build", "ci")]);
    let r = entry(&memory, "reader").unwrap();
    assert_eq!(
        r.access,
        Default::default(),
        "selected servers get no narrowing or grants"
    );
    assert_ne!(r.token_sha256, a.token_sha256, "one token per binding");
    let time = wait_gateway(&client, ns, "time", "agent and reader", |c| {
        entries(c) == ["agent", "reader"]
    })
    .await;
    assert_eq!(
        entry(&time, "agent")
            .unwrap()
            .access
            .narrowing
            .as_ref()
            .unwrap()
            .allow,
        ["get_*"]
    );
    assert!(
        wait_gateway(&client, ns, "other", "rendered", |_| true)
            .await
            .bindings
            .is_empty()
    );

    // Status: exposedTools = what this binding may call under policy, narrowing, grants.
    let st = wait_binding(&client, ns, "agent", "two servers, Ready", |st| {
        ready(st).0 == "True" && exposed(st, "memory") == Some(1) && exposed(st, "time") == Some(1)
    })
    .await;
    // memory: create_entities (granted); create_relations NotGranted; delete_all Denied
    // by policy although granted; read_graph narrowed away. time: get_time only.
    assert_eq!(st.secret_name.as_deref(), Some("agent-mcp"));
    assert_eq!(st.observed_generation, agent.metadata.generation);
    assert!(st.token_rotated_at.is_some());
    assert_eq!(st.servers[0].url, memory_url);
    assert!(!st.servers[0].ready, "never probed: not Ready");
    let st = wait_binding(&client, ns, "reader", "memory and time", |st| {
        exposed(st, "memory") == Some(1) && exposed(st, "time") == Some(2)
    })
    .await;
    assert_eq!(ready(&st).1, "Ready");
    // The server's own status: a tool under requireGrant is exposed once a binding grants it.
    let server = get_server(&client, ns, "memory").await;
    let tools = server.status.unwrap().tools;
    let reason = |n: &str| {
        let t = tools.iter().find(|t| t.name == n).unwrap();
        (t.exposed, t.reason.map(mcp_operator::policy::reason_name))
    };
    assert_eq!(reason("create_entities"), (true, None));
    assert_eq!(reason("create_relations"), (false, Some("NotGranted")));
    assert_eq!(reason("delete_all"), (false, Some("Denied")));

    // A selector change: `other` joins reader, `time` leaves it (time keeps agent).
    let servers: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let label = |v: Value| json!({"metadata": {"labels": {"team": v}}});
    servers
        .patch(
            "other",
            &PatchParams::default(),
            &Patch::Merge(&label(json!("a"))),
        )
        .await
        .unwrap();
    servers
        .patch(
            "time",
            &PatchParams::default(),
            &Patch::Merge(&label(Value::Null)),
        )
        .await
        .unwrap();
    wait_gateway(&client, ns, "other", "reader joins", |c| {
        entries(c) == ["reader"]
    })
    .await;
    wait_gateway(&client, ns, "time", "reader leaves", |c| {
        entries(c) == ["agent"]
    })
    .await;
    let reader = binding_secret(&client, ns, "reader-mcp", |s| {
        let d = s.data.as_ref().unwrap();
        d.contains_key("other.url") && !d.contains_key("time.url")
    })
    .await;
    let st = wait_binding(&client, ns, "reader", "memory and other", |st| {
        st.servers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            == ["memory", "other"]
    })
    .await;
    assert_eq!(ready(&st).0, "True");

    // A binding that stops naming a server leaves its gateway.
    let bindings: Api<McpBinding> = Api::namespaced(client.clone(), ns);
    let patch = json!({"spec": {"servers": [{"name": "memory", "grants": ["create_entities"]}]}});
    bindings
        .patch("agent", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_gateway(&client, ns, "time", "agent leaves", |c| {
        c.bindings.is_empty()
    })
    .await;
    binding_secret(&client, ns, "agent-mcp", |s| {
        !s.data.as_ref().unwrap().contains_key("time.url")
    })
    .await;
    let st = wait_binding(&client, ns, "agent", "memory only, generation 2", |st| {
        st.servers.len() == 1 && st.observed_generation == Some(2)
    })
    .await;
    // Without the narrowing read_graph is callable too.
    assert_eq!(exposed(&st, "memory"), Some(2));
    wait_gateway(&client, ns, "memory", "agent's new grants", |c| {
        entry(c, "agent")
            .is_some_and(|a| a.access.grants == ["create_entities"] && a.access.narrowing.is_none())
    })
    .await;

    assert_no_token_outside_binding_secrets(&client, ns, &[token.clone(), key(&reader, "token")])
        .await;
    assert_settles(&operator).await;

    // Deleting a binding revokes its token on every gateway; its Secret is collected.
    bindings
        .delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    wait_gateway(&client, ns, "memory", "reader revoked", |c| {
        entries(c) == ["agent"]
    })
    .await;
    wait_gateway(&client, ns, "other", "reader revoked", |c| {
        c.bindings.is_empty()
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    eventually("reader-mcp garbage-collected", 60, || async {
        secrets
            .get_opt("reader-mcp")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_servers_and_foreign_secrets_are_reported_not_overwritten() {
    let (_api, client) = cluster().await;
    let ns = "binding-problems";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    create_server(&client, ns, "memory", gateway_spec()).await;

    // A missing server: named in Ready, the others still served.
    create_binding(
        &client,
        ns,
        "lost",
        json!({"servers": [{"name": "memory"}, {"name": "ghost"}]}),
    )
    .await;
    let st = wait_binding(&client, ns, "lost", "ServerNotFound, memory served", |st| {
        ready(st).1 == "ServerNotFound" && ready(st).2.contains("serves memory")
    })
    .await;
    let (status, _, message) = ready(&st);
    assert_eq!(status, "False");
    assert!(
        message.contains("ghost") && message.contains("serves memory"),
        "{message}"
    );
    let ghost = st.servers.iter().find(|s| s.name == "ghost").unwrap();
    assert_eq!(
        (ghost.url.as_str(), ghost.ready, ghost.exposed_tools),
        ("", false, 0)
    );
    let secret = binding_secret(&client, ns, "lost-mcp", |_| true).await;
    let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["mcp.json", "memory.url", "token"]);
    let lost_token = key(&secret, "token");
    wait_gateway(&client, ns, "memory", "lost served", |c| {
        entry(c, "lost").is_some_and(|e| e.token_sha256 == [token_sha256(&lost_token)])
    })
    .await;
    let note = wait_event(&client, ns, "lost", "ServerNotFound").await;
    assert!(note.contains("ghost"), "{note}");
    // The server appears: served, Ready.
    create_server(&client, ns, "ghost", gateway_spec()).await;
    wait_binding(&client, ns, "lost", "Ready", |st| ready(st).0 == "True").await;
    let secret = binding_secret(&client, ns, "lost-mcp", |s| {
        s.data.as_ref().unwrap().contains_key("ghost.url")
    })
    .await;
    assert_eq!(key(&secret, "token"), lost_token, "the token is kept");
    wait_gateway(&client, ns, "ghost", "lost served", |c| {
        entry(c, "lost").is_some_and(|e| e.token_sha256 == [token_sha256(&lost_token)])
    })
    .await;

    // The server goes away again: reported, and its URL leaves the Secret.
    Api::<McpServer>::namespaced(client.clone(), ns)
        .delete("ghost", &DeleteParams::default())
        .await
        .unwrap();
    wait_binding(&client, ns, "lost", "ServerNotFound again", |st| {
        ready(st).1 == "ServerNotFound"
    })
    .await;
    binding_secret(&client, ns, "lost-mcp", |s| {
        !s.data.as_ref().unwrap().contains_key("ghost.url")
    })
    .await;

    // A Secret of the wanted name that the binding does not own is left alone.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let foreign_token = "f".repeat(96);
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": {"name": "taken-mcp", "namespace": ns},
        "data": {"token": ByteString(foreign_token.clone().into_bytes())},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    create_binding(
        &client,
        ns,
        "taken",
        json!({"servers": [{"name": "memory"}], "subjects": [{"kind": "ServiceAccount", "name": "taken"}]}),
    )
    .await;
    let st = wait_binding(&client, ns, "taken", "SecretConflict", |st| {
        ready(st).1 == "SecretConflict"
    })
    .await;
    assert!(ready(&st).2.contains("taken-mcp"), "{}", ready(&st).2);
    assert_eq!(st.secret_name, None);
    assert_eq!(st.token_rotated_at, None);
    wait_event(&client, ns, "taken", "SecretConflict").await;
    // Its gateway entry carries no token hash: the foreign token grants nothing (the
    // ServiceAccount subject still identifies the binding).
    let c = wait_gateway(&client, ns, "memory", "taken listed", |c| {
        entry(c, "taken").is_some()
    })
    .await;
    let taken = entry(&c, "taken").unwrap();
    assert!(taken.token_sha256.is_empty(), "{taken:?}");
    assert_eq!(taken.service_accounts.len(), 1);
    let before = secrets.get("taken-mcp").await.unwrap();
    // Give the controller every chance to (wrongly) write it.
    assert_settles(&operator).await;
    let untouched = secrets.get("taken-mcp").await.unwrap();
    assert_eq!(
        untouched.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(key(&untouched, "token"), foreign_token);
    assert!(untouched.owner_references().is_empty());
    // Once the foreign Secret is gone the binding writes its own.
    secrets
        .delete("taken-mcp", &DeleteParams::default())
        .await
        .unwrap();
    let own = binding_secret(&client, ns, "taken-mcp", |s| {
        s.type_.as_deref() == Some("mcp-operator.dev/binding")
    })
    .await;
    let taken_token = key(&own, "token");
    assert_ne!(taken_token, foreign_token);
    wait_binding(&client, ns, "taken", "Ready", |st| ready(st).0 == "True").await;
    wait_gateway(&client, ns, "memory", "taken's own token", |c| {
        entry(c, "taken").is_some_and(|e| e.token_sha256 == [token_sha256(&taken_token)])
    })
    .await;
    assert_no_token_outside_binding_secrets(&client, ns, &[lost_token, taken_token]).await;
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_and_the_previous_one_is_accepted_for_the_grace_period() {
    tokens_rotate(&crate::support::TestCluster::embedded("rotation").await).await;
}

/// The body of [`tokens_rotate_and_the_previous_one_is_accepted_for_the_grace_period`],
/// on either server.
pub(crate) async fn tokens_rotate(c: &crate::support::TestCluster) {
    let client = c.client.clone();
    let ns = c.ns.as_str();
    let mark = c.audit_mark();
    // Admission: the grace period must be shorter than the period.
    let bad: McpBinding = serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {"servers": [{"name": "memory"}], "tokenRotation": {"period": "2s", "gracePeriod": "2s"}},
    }))
    .unwrap();
    let err = Api::<McpBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("gracePeriod must be shorter"),
        "{err}"
    );

    let operator = Operator::start(c.operator_client().await, config_for(c));
    create_server(&client, ns, "memory", gateway_spec()).await;
    create_binding(
        &client,
        ns,
        "rotating",
        json!({"servers": [{"name": "memory"}], "tokenRotation": {"period": "6s", "gracePeriod": "3s"}}),
    )
    .await;
    let first = binding_secret(&client, ns, "rotating-mcp", |_| true).await;
    let t0 = key(&first, "token");
    let h0 = token_sha256(&t0);
    let st0 = wait_binding(&client, ns, "rotating", "rotated at", |st| {
        st.token_rotated_at.is_some()
    })
    .await;

    // The period ends: a new token, the previous one's hash kept with its expiry.
    let second = binding_secret(&client, ns, "rotating-mcp", |s| key(s, "token") != t0).await;
    let t1 = key(&second, "token");
    let h1 = token_sha256(&t1);
    let ann = second.annotations();
    assert_eq!(ann["mcp-operator.dev/previous-token-sha256"], h0);
    assert!(ann.contains_key("mcp-operator.dev/previous-token-expires-at"));
    assert!(ann.values().all(|v| !v.contains(&t0) && !v.contains(&t1)));
    assert!(key(&second, "mcp.json").contains(&format!("Bearer {t1}")));
    // Both are accepted during the grace period...
    wait_gateway(&client, ns, "memory", "current and previous", |c| {
        entry(c, "rotating").is_some_and(|e| e.token_sha256 == [h1.clone(), h0.clone()])
    })
    .await;
    let st1 = wait_binding(&client, ns, "rotating", "tokenRotatedAt moved", |st| {
        st.token_rotated_at.is_some() && st.token_rotated_at != st0.token_rotated_at
    })
    .await;
    assert!(st1.token_rotated_at.unwrap().0 > st0.token_rotated_at.unwrap().0);
    // ...then only the current one (the next rotation is 3 s after that).
    wait_gateway(&client, ns, "memory", "previous expired", |c| {
        entry(c, "rotating").is_some_and(|e| e.token_sha256.len() == 1 && e.token_sha256[0] != h0)
    })
    .await;
    let note = wait_event(&client, ns, "rotating", "TokenRotated").await;
    assert!(
        note.contains("rotating-mcp") && note.contains("accepted until"),
        "{note}"
    );
    wait_event(&client, ns, "rotating", "PreviousTokenExpired").await;
    let last = binding_secret(&client, ns, "rotating-mcp", |_| true).await;
    assert_no_token_outside_binding_secrets(&client, ns, &[t0, t1, key(&last, "token")]).await;
    assert_operator_never_refused(c, &operator, mark);
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_controller_works_under_the_shipped_rbac() {
    let (api, admin) = cluster().await;
    namespace(&admin, OPERATOR_NS).await;
    let ns = "agents";
    namespace(&admin, ns).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .filter(|f| f.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    for file in files {
        apply_yaml(&admin, OPERATOR_NS, &std::fs::read_to_string(file).unwrap()).await;
    }
    let client = api
        .service_account_client(OPERATOR_NS, "mcp-operator")
        .expect("ServiceAccount client");
    let operator = Operator::start(client, config());
    create_server(&admin, ns, "memory", gateway_spec()).await;
    create_binding(
        &admin,
        ns,
        "agent",
        json!({"servers": [{"name": "memory"}]}),
    )
    .await;
    let secret = binding_secret(&admin, ns, "agent-mcp", |_| true).await;
    let token = key(&secret, "token");
    wait_gateway(&admin, ns, "memory", "agent", |c| {
        entry(c, "agent").is_some_and(|e| e.token_sha256 == [token_sha256(&token)])
    })
    .await;
    wait_binding(&admin, ns, "agent", "Ready", |st| ready(st).0 == "True").await;
    wait_event(&admin, ns, "agent", "Created").await;
    let metrics = operator.metrics.render();
    assert!(
        !metrics.contains("reason=\"Forbidden\""),
        "a request was refused:\n{metrics}"
    );
    operator.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_example_does_what_its_comments_say() {
    let (_api, client) = cluster().await;
    let ns = "example-binding";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    for file in [
        "02-stdio-memory.yaml",
        "04-streamablehttp-everything.yaml",
        "08-policy-baseline.yaml",
        "09-binding.yaml",
    ] {
        apply_example(&client, ns, file).await;
    }
    let secret = binding_secret(&client, ns, "research-agent-mcp", |s| {
        let d = s.data.as_ref().unwrap();
        d.contains_key("memory.url") && d.contains_key("everything-http.url")
    })
    .await;
    let hash = token_sha256(&key(&secret, "token"));
    let memory = wait_gateway(&client, ns, "memory", "research-agent", |c| {
        entry(c, "research-agent").is_some_and(|e| e.token_sha256 == [hash.clone()])
    })
    .await;
    // The baseline gates create_*; the binding grants create_entities only.
    assert!(memory.policy.require_grant.contains(&"create_*".to_owned()));
    let agent = entry(&memory, "research-agent").unwrap();
    assert_eq!(agent.access.grants, ["create_entities"]);
    let sas: Vec<(&str, &str)> = agent
        .service_accounts
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(sas, [(ns, "research-agent")]);
    let everything = wait_gateway(&client, ns, "everything-http", "research-agent", |c| {
        entry(c, "research-agent").is_some()
    })
    .await;
    let narrowing = entry(&everything, "research-agent")
        .unwrap()
        .access
        .narrowing
        .clone()
        .unwrap();
    assert_eq!(narrowing.allow, ["echo", "get-sum"]);
    let st = wait_binding(&client, ns, "research-agent", "Ready", |st| {
        ready(st).0 == "True"
    })
    .await;
    assert_eq!(st.secret_name.as_deref(), Some("research-agent-mcp"));
    operator.stop().await.expect("clean shutdown");
}
