//! Hardening tests: names that fit and garbage collection (issue 13, items 9 and 13).
//!
//! Names: an McpServer whose name cannot name its Service (a DNS-1035 label of at most
//! 63 characters), or an McpBinding whose name cannot be its Secret's label value, is
//! refused at admission by the embedded API server, with the message a person acts on
//! (the root CEL rules of the CRDs: a real API server prints the same; the fixtures in
//! `tests/fixtures/invalid/` cover `Admission` itself).
//!
//! Garbage collection: the embedded API server deletes an object whose owners (by uid)
//! are all gone — also when it is created or updated after its owner was deleted, or
//! points at a deleted owner whose name was taken again — as kube-controller-manager's
//! garbage collector does. A create/delete/recreate loop with the operator running, its
//! Deployment apply held in flight across the McpServer's deletion, leaves no orphan.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams},
};
use mcp_operator::{
    api::{McpBinding, McpServer},
    apiserver::{FaultKind, FaultRule},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::controller::{Operator, cluster, config, create_server, eventually, namespace};

/// A server with a pod: it gets all seven children.
fn pod_spec() -> Value {
    json!({
        "transport": "StreamableHttp",
        "container": {"image": "ghcr.io/example/mcp:1", "port": 3000},
        "probe": {"disabled": true},
    })
}

fn invalid_message(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert_eq!(status.reason, "Invalid", "{status:?}");
            status.message
        }
        other => panic!("expected 422 Invalid, got {other}"),
    }
}

#[tokio::test]
async fn names_that_cannot_name_their_children_are_refused() {
    let (_api, client) = cluster().await;
    let ns = "names";
    namespace(&client, ns).await;
    let servers: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let server = |name: &str| -> McpServer {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": name}, "spec": pod_spec(),
        }))
        .unwrap()
    };
    // 64 characters: a valid object name (DNS-1123 subdomain), but no Service name.
    let long = format!("{}z", "m".repeat(63));
    let message = invalid_message(
        servers
            .create(&PostParams::default(), &server(&long))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        format!(
            "McpServer.mcp-operator.dev {long:?} is invalid: <nil>: Invalid value: \"object\": \
             metadata.name may be at most 63 characters: the operator creates a Service with \
             the McpServer's name, and Service names are DNS-1035 labels of at most 63 \
             characters"
        )
    );
    for name in ["1memory", "memory.v2"] {
        let message = invalid_message(
            servers
                .create(&PostParams::default(), &server(name))
                .await
                .unwrap_err(),
        );
        assert!(
            message.contains(
                "<nil>: Invalid value: \"object\": metadata.name must be a DNS-1035 label"
            ),
            "{message}"
        );
    }
    // The longest allowed name is accepted.
    let longest = "m".repeat(63);
    servers
        .create(&PostParams::default(), &server(&longest))
        .await
        .expect("a 63-character name is a valid Service name");

    let bindings: Api<McpBinding> = Api::namespaced(client.clone(), ns);
    let binding: McpBinding = serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
        "metadata": {"name": long}, "spec": {"servers": [{"name": longest}]},
    }))
    .unwrap();
    let message = invalid_message(
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains(
            "<nil>: Invalid value: \"object\": metadata.name may be at most 63 characters: the \
             operator labels the McpBinding's Secret"
        ),
        "{message}"
    );
}

/// An ownerReference to `owner` (controller, blockOwnerDeletion, as the operator sets).
fn owner_ref(owner: &McpServer) -> Value {
    json!({
        "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
        "name": owner.name_any(), "uid": owner.uid().unwrap(),
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn owned_secret(name: &str, owner: &Value) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "ownerReferences": [owner]},
        "stringData": {"k": "v"},
    }))
    .unwrap()
}

async fn wait_gone<K>(api: &Api<K>, name: &str, why: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} is collected: {why}"), 10, || async {
        api.get_opt(name)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_child_of_a_deleted_owner_is_collected() {
    let (_api, client) = cluster().await;
    let ns = "gc-dangling";
    namespace(&client, ns).await;
    let servers: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);

    let first = create_server(&client, ns, "owner", pod_spec()).await;
    servers
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    // Created after the owner's deletion: the API server takes it (as a real one does),
    // the garbage collector removes it.
    secrets
        .create(
            &PostParams::default(),
            &owned_secret("late", &owner_ref(&first)),
        )
        .await
        .expect("created");
    wait_gone(&secrets, "late", "its owner's uid no longer exists").await;

    // The owner's name is taken again: a reference to the old uid still dangles.
    let second = create_server(&client, ns, "owner", pod_spec()).await;
    secrets
        .create(
            &PostParams::default(),
            &owned_secret("stale", &owner_ref(&first)),
        )
        .await
        .expect("created");
    secrets
        .create(
            &PostParams::default(),
            &owned_secret("fresh", &owner_ref(&second)),
        )
        .await
        .expect("created");
    wait_gone(&secrets, "stale", "McpServer owner has another uid now").await;
    assert!(
        secrets.get_opt("fresh").await.unwrap().is_some(),
        "a child of the live owner stays"
    );

    // An update that points an existing object at the deleted owner.
    secrets
        .create(
            &PostParams::default(),
            &owned_secret("repointed", &owner_ref(&second)),
        )
        .await
        .unwrap();
    let mut repointed = secrets.get("repointed").await.unwrap();
    repointed.metadata.owner_references =
        Some(vec![serde_json::from_value(owner_ref(&first)).unwrap()]);
    secrets
        .replace("repointed", &PostParams::default(), &repointed)
        .await
        .expect("replaced");
    wait_gone(&secrets, "repointed", "its only owner is gone").await;
}

/// Names of the objects in `ns` that are left of server `name`: every child kind the
/// operator writes.
async fn leftovers(client: &Client, ns: &str, name: &str) -> Vec<String> {
    async fn present<K>(client: &Client, ns: &str, name: &str, out: &mut Vec<String>)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        if let Some(obj) = api.get_opt(name).await.expect("get") {
            let owners: Vec<String> = obj
                .owner_references()
                .iter()
                .map(|o| o.uid.clone())
                .collect();
            out.push(format!("{} {name} (owners {owners:?})", K::kind(&())));
        }
    }
    let gateway = format!("{name}-gateway");
    let mut out = Vec::new();
    present::<Deployment>(client, ns, name, &mut out).await;
    present::<Service>(client, ns, name, &mut out).await;
    present::<ServiceAccount>(client, ns, name, &mut out).await;
    present::<NetworkPolicy>(client, ns, name, &mut out).await;
    present::<Secret>(client, ns, &gateway, &mut out).await;
    present::<Role>(client, ns, &gateway, &mut out).await;
    present::<RoleBinding>(client, ns, &gateway, &mut out).await;
    out
}

/// Polls until nothing of server `name` is left; on timeout, names what is.
async fn wait_no_leftovers(client: &Client, ns: &str, name: &str, cycle: usize) {
    crate::support::eventually::eventually(
        &format!("cycle {cycle}: no children left of the deleted McpServer {name}"),
        Duration::from_secs(15),
        async || {
            let left = leftovers(client, ns, name).await;
            if left.is_empty() { Ok(()) } else { Err(left) }
        },
    )
    .await;
}

#[tokio::test]
async fn a_create_delete_recreate_loop_leaves_no_orphans() {
    let (api, client) = cluster().await;
    let ns = "gc-loop";
    namespace(&client, ns).await;
    let operator = Operator::start(client.clone(), config());
    let servers: Api<McpServer> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for cycle in 0..3 {
        // Hold the operator's Deployment apply (it comes after the ServiceAccount, Role,
        // RoleBinding, Secret and NetworkPolicy) long enough to delete the McpServer
        // while it is in flight: it then lands with an ownerReference to a deleted uid.
        let hold = api.faults().set(
            FaultRule::new(FaultKind::Latency(Duration::from_millis(1500)))
                .verbs(["patch"])
                .resource("deployments")
                .times(1),
        );
        let rv = deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut watch = deployments
            .watch(&WatchParams::default().fields("metadata.name=loop"), &rv)
            .await
            .unwrap()
            .boxed();
        create_server(&client, ns, "loop", pod_spec()).await;
        eventually("the operator's Deployment apply is held", 30, || async {
            (api.faults().fired(hold) > 0).then_some(())
        })
        .await;
        servers
            .delete("loop", &DeleteParams::background())
            .await
            .unwrap();
        // The fact that the held apply landed: the Deployment was added after the
        // deletion.
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = watch.try_next().await.expect("watch") {
                if matches!(event, WatchEvent::Added(_)) {
                    return;
                }
            }
            panic!("watch ended");
        })
        .await
        .expect("the held Deployment apply lands within 30 s");
        wait_no_leftovers(&client, ns, "loop", cycle).await;
        api.faults().remove(hold);
    }

    // Recreated once more and left alone: every child is the new server's.
    let server = create_server(&client, ns, "loop", pod_spec()).await;
    let uid = server.uid().unwrap();
    crate::support::eventually::eventually(
        &format!("the recreated McpServer (uid {uid}) to own its seven children"),
        Duration::from_secs(30),
        async || {
            let left = leftovers(&client, ns, "loop").await;
            let owned = format!("(owners [{uid:?}])");
            if left.len() == 7 && left.iter().all(|l| l.ends_with(&owned)) {
                Ok(())
            } else {
                Err(left)
            }
        },
    )
    .await;
    servers
        .delete("loop", &DeleteParams::background())
        .await
        .unwrap();
    wait_no_leftovers(&client, ns, "loop", 3).await;
    operator.stop().await.expect("clean shutdown");
}

/// The dependents of [`gc_scenarios`] as a server has them: name → owner uids (sorted),
/// None once collected.
type GcState = Vec<(String, Option<Vec<String>>)>;

/// Builds the same ownership situations on `client` (an API server with a garbage
/// collector): owners deleted, recreated under their name, in another namespace, of an
/// unknown kind, one of two owners gone. Returns the dependents' names.
async fn gc_scenarios(client: &Client, ns: &str) -> Vec<String> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let other = format!("{ns}-other");
    crate::support::create_namespace(client, &other).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), &other);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    let reference = |owner: &ConfigMap| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid().unwrap()});
    let dependent = |name: &str, owners: Vec<Value>| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}}))
            .unwrap()
    };
    let old = configmaps
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    configmaps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let new = configmaps
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let foreign = elsewhere
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let unknown = json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "name": "g", "uid": "6d1c2d4e-0000-4000-8000-000000000000"});
    let cases = [
        ("stale-uid", vec![reference(&old)]),
        ("live-owner", vec![reference(&new)]),
        ("one-of-two-gone", vec![reference(&old), reference(&new)]),
        ("owner-in-other-namespace", vec![reference(&foreign)]),
        ("unknown-owner-kind", vec![unknown]),
    ];
    let mut names = Vec::new();
    for (name, owners) in cases {
        secrets
            .create(&PostParams::default(), &dependent(name, owners))
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
        names.push(name.to_owned());
    }
    names
}

async fn gc_state(client: &Client, ns: &str, names: &[String]) -> GcState {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut state = Vec::new();
    for name in names {
        let owners = secrets.get_opt(name).await.expect("get").map(|s| {
            let mut uids: Vec<String> =
                s.owner_references().iter().map(|o| o.uid.clone()).collect();
            uids.sort();
            uids
        });
        state.push((name.clone(), owners));
    }
    state
}

/// Uids differ between the servers: a state is compared as "which owner of the scenario".
fn shape(state: &GcState) -> Vec<(String, Option<usize>)> {
    state
        .iter()
        .map(|(name, owners)| (name.clone(), owners.as_ref().map(Vec::len)))
        .collect()
}

#[tokio::test]
async fn garbage_collection_matches_kube_controller_manager() {
    let real = crate::support::RealCluster::new("gc-differential").await;
    let embedded = mcp_operator::apiserver::ApiServer::start(Default::default())
        .await
        .expect("embedded server starts");
    let embedded_client = embedded.client().expect("client");
    crate::support::create_namespace(&embedded_client, &real.namespace).await;

    let names = gc_scenarios(&embedded_client, &real.namespace).await;
    let ours = gc_state(&embedded_client, &real.namespace, &names).await;
    gc_scenarios(&real.client, &real.namespace).await;
    // The real collector is asynchronous: wait (bounded) for it to reach our end state.
    crate::support::eventually::eventually(
        &format!(
            "kube-controller-manager's garbage collector to reach the embedded end state \
             {ours:?} (last seen: the real one)"
        ),
        Duration::from_secs(90),
        async || {
            let theirs = gc_state(&real.client, &real.namespace, &names).await;
            if shape(&theirs) == shape(&ours) {
                Ok(())
            } else {
                Err(theirs)
            }
        },
    )
    .await;
    // What the real collector keeps it keeps for good: a dependent created after all the
    // others, with a deleted owner, is collected first — then nothing else changed.
    let secrets: Api<Secret> = Api::namespaced(real.client.clone(), &real.namespace);
    let sentinel_owner = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody", "uid": "6d1c2d4e-0000-4000-8000-000000000001"});
    let sentinel: Secret = serde_json::from_value(
        json!({"metadata": {"name": "sentinel", "ownerReferences": [sentinel_owner]}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &sentinel)
        .await
        .unwrap();
    wait_gone(&secrets, "sentinel", "its owner never existed").await;
    let theirs = gc_state(&real.client, &real.namespace, &names).await;
    assert_eq!(
        shape(&theirs),
        shape(&ours),
        "real: {theirs:?}\nembedded: {ours:?}"
    );
    // And the surviving references are to the live owner in both.
    let expected = [
        ("stale-uid", None),
        ("live-owner", Some(1)),
        ("one-of-two-gone", Some(1)),
        ("owner-in-other-namespace", None),
        ("unknown-owner-kind", Some(1)),
    ];
    let expected: Vec<(String, Option<usize>)> = expected
        .iter()
        .map(|(n, o)| ((*n).to_owned(), *o))
        .collect();
    assert_eq!(shape(&ours), expected, "{ours:?}");
}
