//! Hardening tests: the controller takes nothing it does not own (issue 13, items 8 and
//! 12). A namespace user pre-creates an object with the name of a child the operator
//! would write (its own, or another McpServer's or McpBinding's); the operator must leave
//! it byte-for-byte alone (`resourceVersion`, labels, data, no ownerReference added),
//! report `Accepted=False` reason `ChildConflict` with a Warning Event, write no other
//! child, never delete it with the McpServer, and take the name as soon as it is free.
//! And a ServiceAccount the operator does not own — the user's `serviceAccountName`, or a
//! pre-created one of the gateway's name — never lands in the cluster-wide TokenReview
//! ClusterRoleBinding.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, PostParams},
};
use mcp_operator::{
    api::{McpServer, common::find_condition},
    controller::token_review::CLUSTER_ROLE_BINDING,
};
use serde_json::{Value, json};

use crate::controller::{
    Operator,
    binding::{assert_settles, create_binding},
    cluster, config, create_server, events_for, eventually, gateway_config, get_server,
    make_available, namespace, wait_condition, wait_event,
};

/// A server with a pod: it wants all seven children.
fn pod_spec() -> Value {
    json!({
        "transport": "StreamableHttp",
        "container": {"image": "ghcr.io/example/mcp:1", "port": 3000},
        "probe": {"disabled": true},
    })
}

/// One kind of child: its API resource, the name server `server` gives it, and a foreign
/// object of that name (labels and content a user would set).
struct Foreign {
    kind: &'static str,
    resource: ApiResource,
    name: String,
    object: Value,
}

fn foreign(kind: &'static str, server: &str) -> Foreign {
    let gateway = format!("{server}-gateway");
    let labels = json!({"team": "payments", "app.kubernetes.io/managed-by": "someone-else"});
    let (resource, name, body) = match kind {
        "Service" => (
            ApiResource::erase::<Service>(&()),
            server.to_owned(),
            json!({"spec": {"ports": [{"port": 5432}], "selector": {"app": "db"}}}),
        ),
        "ServiceAccount" => (
            ApiResource::erase::<ServiceAccount>(&()),
            server.to_owned(),
            json!({"automountServiceAccountToken": true}),
        ),
        "Secret" => (
            ApiResource::erase::<Secret>(&()),
            gateway,
            json!({"type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        ),
        "NetworkPolicy" => (
            ApiResource::erase::<NetworkPolicy>(&()),
            server.to_owned(),
            json!({"spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]}}),
        ),
        "Deployment" => (
            ApiResource::erase::<Deployment>(&()),
            server.to_owned(),
            json!({"spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                             "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
            }}),
        ),
        "Role" => (
            ApiResource::erase::<Role>(&()),
            gateway,
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        ),
        "RoleBinding" => (
            ApiResource::erase::<RoleBinding>(&()),
            gateway,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                   "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
        ),
        other => panic!("no such child kind {other}"),
    };
    let mut object = json!({
        "apiVersion": resource.api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": labels, "annotations": {"owner": "a human"}},
    });
    object
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    Foreign {
        kind,
        resource,
        name,
        object,
    }
}

/// Every field the user set, plus what proves nobody else wrote: resourceVersion,
/// ownerReferences, managedFields' managers.
fn fingerprint(obj: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(obj).unwrap();
    let managers: Vec<Value> = obj
        .managed_fields()
        .iter()
        .map(|m| json!(m.manager))
        .collect();
    v["metadata"]["managedFields"] = json!(managers);
    v
}

async fn get_dyn(client: &Client, ns: &str, f: &Foreign) -> Option<DynamicObject> {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &f.resource)
        .get_opt(&f.name)
        .await
        .expect("get")
}

/// Asserts the foreign object is exactly as created: same resourceVersion and content,
/// no ownerReference, no field manager but its creator's.
async fn assert_untouched(client: &Client, ns: &str, f: &Foreign, before: &Value) {
    let now = get_dyn(client, ns, f)
        .await
        .unwrap_or_else(|| panic!("{} {ns}/{} still exists", f.kind, f.name));
    assert!(
        now.owner_references().is_empty(),
        "{} {ns}/{} was adopted: {:?}",
        f.kind,
        f.name,
        now.owner_references()
    );
    assert_eq!(
        &fingerprint(&now),
        before,
        "{} {ns}/{} was modified",
        f.kind,
        f.name
    );
}

/// Waits for Accepted=False ChildConflict naming `kind "name"`; returns the message.
async fn wait_conflict(client: &Client, ns: &str, server: &str, kind: &str, name: &str) -> String {
    let s = wait_condition(
        client,
        ns,
        server,
        "Accepted",
        "False",
        Some("ChildConflict"),
    )
    .await;
    let c = find_condition(&s.status.as_ref().unwrap().conditions, "Accepted")
        .unwrap()
        .clone();
    let named = format!("{kind} \"{name}\"");
    assert!(
        c.message.contains(&named) && c.message.contains("not owned by this McpServer"),
        "the message names {named}: {}",
        c.message
    );
    c.message
}

/// Waits until the server's status has an Accepted condition (the reconcile that wrote
/// it has applied whatever it was going to apply).
async fn wait_accepted_known(client: &Client, ns: &str, server: &str) {
    eventually(&format!("{ns}/{server} has Accepted"), 60, || async {
        let s = get_server(client, ns, server).await;
        s.status
            .and_then(|st| find_condition(&st.conditions, "Accepted").cloned())
            .map(|_| ())
    })
    .await;
}

/// The whole story for one kind of child, in its own namespace.
async fn never_adopted(client: &Client, kind: &'static str) {
    let ns = format!("conflict-{}", kind.to_lowercase());
    let server = "foo";
    namespace(client, &ns).await;
    let f = foreign(kind, server);
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &f.resource);
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(f.object.clone()).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create foreign {kind}: {e}"));
    let before = fingerprint(&created);

    let mcp = create_server(client, &ns, server, pod_spec()).await;
    // Once the operator said anything about the server, it has done all it will do.
    wait_accepted_known(client, &ns, server).await;
    assert_untouched(client, &ns, &f, &before).await;
    let message = wait_conflict(client, &ns, server, kind, &f.name).await;
    let note = wait_event(client, &ns, server, "ChildConflict").await;
    assert!(note.contains(&f.name) && note.contains(kind), "{note}");
    // No child at all was written: the check comes before the first apply.
    if kind != "Deployment" {
        let d = Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt(server)
            .await
            .unwrap();
        assert!(
            d.is_none(),
            "{kind}: a Deployment was created despite the conflict"
        );
    }
    if kind != "Secret" {
        assert!(
            gateway_config(client, &ns, server).await.is_none(),
            "{kind}: a gateway Secret was written despite the conflict"
        );
    }
    let s = get_server(client, &ns, server).await;
    let st = s.status.unwrap();
    assert_eq!(
        find_condition(&st.conditions, "Ready").map(|c| c.status.as_str()),
        Some("False"),
        "{message}"
    );

    // Deleting the McpServer never takes the foreign object with it.
    Api::<McpServer>::namespaced(client.clone(), &ns)
        .delete(server, &DeleteParams::default())
        .await
        .unwrap();
    eventually(&format!("McpServer {ns}/{server} gone"), 30, || async {
        Api::<McpServer>::namespaced(client.clone(), &ns)
            .get_opt(server)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_untouched(client, &ns, &f, &before).await;
    drop(mcp);

    // A new McpServer of that name is refused again; once the user deletes their object,
    // the server takes the name with its own child (no touch of the McpServer needed).
    let mcp = create_server(client, &ns, server, pod_spec()).await;
    wait_conflict(client, &ns, server, kind, &f.name).await;
    assert_untouched(client, &ns, &f, &before).await;
    api.delete(&f.name, &DeleteParams::default()).await.unwrap();
    wait_condition(client, &ns, server, "Accepted", "True", None).await;
    let own = eventually(&format!("own {kind} {ns}/{}", f.name), 30, || async {
        get_dyn(client, &ns, &f).await
    })
    .await;
    let uid = mcp.uid().unwrap();
    assert!(
        own.owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true)),
        "{kind} {} is now the server's own",
        f.name
    );
    assert_ne!(
        own.labels().get("team").map(String::as_str),
        Some("payments")
    );
    make_available(client, &ns, server).await;
    wait_condition(client, &ns, server, "Available", "True", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_of_a_child_name_is_never_adopted_nor_deleted() {
    let (_api, client) = cluster().await;
    let operator = Operator::start(client.clone(), config());
    let kinds = [
        "Service",
        "ServiceAccount",
        "Secret",
        "NetworkPolicy",
        "Deployment",
        "Role",
        "RoleBinding",
    ];
    futures::future::join_all(kinds.map(|k| never_adopted(&client, k))).await;
    operator.stop().await.expect("clean shutdown");
}

/// A conflict costs no writes while nothing changes (no hot loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_settles_without_writes() {
    let (_api, client) = cluster().await;
    let ns = "conflict-idle";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    let f = foreign("Service", "idle");
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &f.resource)
        .create(
            &PostParams::default(),
            &serde_json::from_value(f.object.clone()).unwrap(),
        )
        .await
        .unwrap();
    create_server(&client, ns, "idle", pod_spec()).await;
    wait_conflict(&client, ns, "idle", "Service", "idle").await;
    assert_settles(&operator).await;
    let events = events_for(&client, ns, "idle").await;
    let conflicts = events.iter().filter(|(r, _)| r == "ChildConflict").count();
    assert_eq!(
        conflicts, 1,
        "one Warning Event, not one per reconcile: {events:?}"
    );
    operator.stop().await.expect("clean shutdown");
}

fn binding_secret_spec(server: &str) -> Value {
    json!({"servers": [{"name": server}], "secretName": format!("{server}-gateway")})
}

async fn secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// Server `bar` vs McpBinding `bar` whose `secretName` is `bar-gateway`: whichever comes
/// first keeps the Secret, the other reports the conflict and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_binding_never_take_each_others_secret() {
    let (_api, client) = cluster().await;
    let operator = Operator::start(client.clone(), config());

    // The binding first: the server must not overwrite the binding's credentials.
    let ns = "binding-first";
    namespace(&client, ns).await;
    create_binding(&client, ns, "bar", binding_secret_spec("bar")).await;
    let held = eventually("the binding's Secret bar-gateway", 30, || async {
        secret(&client, ns, "bar-gateway").await
    })
    .await;
    assert_eq!(held.type_.as_deref(), Some("mcp-operator.dev/binding"));
    create_server(&client, ns, "bar", pod_spec()).await;
    wait_accepted_known(&client, ns, "bar").await;
    assert_settles(&operator).await;
    let now = secret(&client, ns, "bar-gateway").await.unwrap();
    // Compared without printing: the data holds the binding's token.
    assert!(
        now.data == held.data,
        "the binding's Secret data was overwritten (keys now: {:?})",
        now.data.as_ref().map(|d| d.keys().collect::<Vec<_>>())
    );
    assert_eq!(now.owner_references(), held.owner_references());
    assert_eq!(
        now.metadata.resource_version,
        held.metadata.resource_version
    );
    let message = wait_conflict(&client, ns, "bar", "Secret", "bar-gateway").await;
    assert!(
        message.contains("McpBinding"),
        "says who holds it: {message}"
    );
    wait_event(&client, ns, "bar", "ChildConflict").await;
    assert!(
        Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt("bar")
            .await
            .unwrap()
            .is_none()
    );

    // The server first: the binding must not overwrite the gateway's configuration.
    let ns = "server-first";
    namespace(&client, ns).await;
    let server = create_server(&client, ns, "bar", pod_spec()).await;
    eventually("the server's Secret bar-gateway", 30, || async {
        secret(&client, ns, "bar-gateway").await
    })
    .await;
    wait_condition(&client, ns, "bar", "Accepted", "True", None).await;
    create_binding(&client, ns, "bar", binding_secret_spec("bar")).await;
    wait_event(&client, ns, "bar", "SecretConflict").await;
    assert_settles(&operator).await;
    let now = secret(&client, ns, "bar-gateway").await.unwrap();
    assert_eq!(
        now.type_.as_deref(),
        Some("mcp-operator.dev/gateway-config")
    );
    // Only the server wrote it (its config now lists the binding, without token hashes).
    let keys: Vec<&String> = now.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["config.json"], "no binding credentials in it");
    let managers: Vec<&str> = now
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(managers, ["mcp-operator"]);
    let c = gateway_config(&client, ns, "bar").await.unwrap();
    let bar = c.bindings.iter().find(|b| b.name == "bar").unwrap();
    assert!(bar.token_sha256.is_empty(), "{bar:?}");
    let owners: Vec<&str> = now
        .owner_references()
        .iter()
        .map(|o| o.uid.as_str())
        .collect();
    assert_eq!(owners, [server.uid().unwrap().as_str()]);
    operator.stop().await.expect("clean shutdown");
}

async fn review_subjects(client: &Client) -> Vec<String> {
    Api::<ClusterRoleBinding>::all(client.clone())
        .get_opt(CLUSTER_ROLE_BINDING)
        .await
        .unwrap()
        .and_then(|crb| crb.subjects)
        .unwrap_or_default()
        .into_iter()
        .map(|s| format!("{}/{}", s.namespace.unwrap_or_default(), s.name))
        .collect()
}

/// Item 12: only ServiceAccounts the operator created and owns may review tokens. A
/// user-chosen `serviceAccountName` and a pre-existing ServiceAccount of the gateway's
/// name both stay out of the ClusterRoleBinding, even when an McpBinding with
/// ServiceAccount subjects targets their server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operator_owned_service_accounts_may_review_tokens() {
    let (_api, client) = cluster().await;
    let ns = "reviews";
    namespace(&client, ns).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    // `custom` is the name of a ServiceAccount `custom` does not want (its pod runs as
    // ci-deployer): pruning must not delete it, it is not ours.
    for name in ["ci-deployer", "squat", "custom"] {
        sas.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let operator = Operator::start(client.clone(), config());
    let mut custom = pod_spec();
    custom["container"]["serviceAccountName"] = json!("ci-deployer");
    create_server(&client, ns, "custom", custom).await;
    create_server(&client, ns, "squat", pod_spec()).await;
    create_server(&client, ns, "plain", pod_spec()).await;
    create_binding(
        &client,
        ns,
        "agents",
        json!({"servers": [{"name": "custom"}, {"name": "squat"}, {"name": "plain"}],
               "subjects": [{"kind": "ServiceAccount", "name": "agent"}]}),
    )
    .await;
    // The operator's own gateway ServiceAccount is listed: the binding is being kept.
    eventually("plain's gateway may review tokens", 30, || async {
        review_subjects(&client)
            .await
            .contains(&format!("{ns}/plain"))
            .then_some(())
    })
    .await;
    wait_condition(&client, ns, "custom", "Accepted", "True", None).await;
    wait_accepted_known(&client, ns, "squat").await;
    assert_settles(&operator).await;
    assert_eq!(review_subjects(&client).await, [format!("{ns}/plain")]);
    wait_conflict(&client, ns, "squat", "ServiceAccount", "squat").await;
    let note = wait_event(&client, ns, "custom", "ServiceAccountTokensDisabled").await;
    assert!(
        note.contains("ci-deployer") && note.contains("agents"),
        "{note}"
    );
    // The gateway of `custom` is not told about ServiceAccounts it cannot check.
    let c = gateway_config(&client, ns, "custom").await.unwrap();
    let agents = c.bindings.iter().find(|b| b.name == "agents").unwrap();
    assert!(agents.service_accounts.is_empty(), "{agents:?}");
    let c = gateway_config(&client, ns, "plain").await.unwrap();
    let agents = c.bindings.iter().find(|b| b.name == "agents").unwrap();
    assert_eq!(agents.service_accounts.len(), 1);
    // The user's ServiceAccounts were neither adopted nor pruned.
    for name in ["ci-deployer", "custom"] {
        let sa = sas.get(name).await.unwrap();
        assert!(sa.owner_references().is_empty(), "{name}");
    }
    operator.stop().await.expect("clean shutdown");
}

/// A foreign Deployment of the server's name is not the server's: its replicas never make
/// the server Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_deployment_never_makes_the_server_available() {
    let (_api, client) = cluster().await;
    let ns = "conflict-available";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    let f = foreign("Deployment", "lookalike");
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &f.resource)
        .create(
            &PostParams::default(),
            &serde_json::from_value(f.object.clone()).unwrap(),
        )
        .await
        .unwrap();
    // The user's Deployment is fully rolled out.
    make_available(&client, ns, "lookalike").await;
    create_server(&client, ns, "lookalike", pod_spec()).await;
    let s = wait_conflict_status(&client, ns, "lookalike").await;
    let available = find_condition(&s.conditions, "Available");
    assert!(
        available.is_none_or(|c| c.status != "True"),
        "Available from a Deployment that is not the server's: {available:?}"
    );
    operator.stop().await.expect("clean shutdown");
}

async fn wait_conflict_status(
    client: &Client,
    ns: &str,
    server: &str,
) -> mcp_operator::api::McpServerStatus {
    wait_conflict(client, ns, server, "Deployment", server).await;
    get_server(client, ns, server).await.status.unwrap()
}
