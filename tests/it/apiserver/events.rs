//! Events: `events.k8s.io/v1` and core `v1` Events are one set of objects, as on a real
//! cluster (kube-apiserver serves both groups from one storage and converts): an Event
//! written through one group is read, listed (with the `involvedObject.*` field selectors
//! `kubectl describe` sends) and watched through the other, and `kubectl describe` shows
//! the Events written about an object.

use k8s_openapi::api::{core::v1::Event as CoreEvent, events::v1::Event};

use super::{kubectl::*, *};

fn events_v1(name: &str, regarding: Value, note: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2026-01-02T03:04:05.000000Z",
        "regarding": regarding,
        "related": {"apiVersion": "v1", "kind": "Secret", "name": "creds", "namespace": "default"},
        "note": note,
        "reason": "Reconciled",
        "type": "Normal",
        "action": "Reconcile",
        "reportingController": "mcp-operator.dev/controller",
        "reportingInstance": "operator-0",
        "series": {"count": 3, "lastObservedTime": "2026-01-02T03:09:05.000000Z"},
    }))
    .expect("valid events.k8s.io/v1 Event")
}

/// An Event created through events.k8s.io/v1 is a core v1 Event: listed with the
/// `involvedObject.*` field selectors, converted field by field.
#[tokio::test]
async fn an_events_k8s_io_event_is_listed_as_a_core_event() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let regarding = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "settings", "namespace": "default", "uid": "0000-1111"});
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "namespace": "default", "uid": "2222"});
    events
        .create(
            &PostParams::default(),
            &events_v1("settings.1", regarding, "all good"),
        )
        .await
        .expect("events.k8s.io Event created");
    events
        .create(
            &PostParams::default(),
            &events_v1("other.1", other, "another"),
        )
        .await
        .expect("second Event created");

    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let listed = core
        .list(&ListParams::default().fields(
            "involvedObject.name=settings,involvedObject.namespace=default,involvedObject.kind=ConfigMap,involvedObject.uid=0000-1111",
        ))
        .await
        .expect("core Events listed");
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|e| e.metadata.name.clone())
        .collect();
    assert_eq!(names, ["settings.1"], "{listed:?}");
    let event = &listed.items[0];
    assert_eq!(event.message.as_deref(), Some("all good"));
    assert_eq!(event.involved_object.name.as_deref(), Some("settings"));
    assert_eq!(event.involved_object.uid.as_deref(), Some("0000-1111"));
    assert_eq!(
        event.related.as_ref().and_then(|r| r.name.as_deref()),
        Some("creds")
    );
    assert_eq!(event.reason.as_deref(), Some("Reconciled"));
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(event.action.as_deref(), Some("Reconcile"));
    assert_eq!(
        event.reporting_component.as_deref(),
        Some("mcp-operator.dev/controller")
    );
    assert_eq!(event.reporting_instance.as_deref(), Some("operator-0"));
    assert!(event.event_time.is_some());
    assert_eq!(event.series.as_ref().and_then(|s| s.count), Some(3));
    let all = core.list(&ListParams::default()).await.expect("all listed");
    assert_eq!(all.items.len(), 2);
    let none = core
        .list(&ListParams::default().fields("involvedObject.name=absent"))
        .await
        .expect("listed");
    assert!(none.items.is_empty(), "{none:?}");
}

/// A core v1 Event (what client-go's old recorder and kubectl write) is an events.k8s.io
/// Event: message → note, involvedObject → regarding, source/count/timestamps → the
/// deprecated* fields.
#[tokio::test]
async fn a_core_event_is_read_through_events_k8s_io() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let event: CoreEvent = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "pod.1"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default", "uid": "abc"},
        "message": "pulled the image",
        "reason": "Pulled",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "count": 4,
        "firstTimestamp": "2026-01-02T03:04:05Z",
        "lastTimestamp": "2026-01-02T03:08:05Z",
    }))
    .expect("valid core Event");
    core.create(&PostParams::default(), &event)
        .await
        .expect("core Event created");

    let events: Api<Event> = Api::namespaced(client, "default");
    let read = events
        .get("pod.1")
        .await
        .expect("read through events.k8s.io");
    assert_eq!(read.note.as_deref(), Some("pulled the image"));
    assert_eq!(
        read.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );
    assert_eq!(read.reason.as_deref(), Some("Pulled"));
    assert_eq!(read.deprecated_count, Some(4));
    assert_eq!(
        read.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
    assert_eq!(
        read.deprecated_source
            .as_ref()
            .and_then(|s| s.host.as_deref()),
        Some("node-1")
    );
    assert!(read.deprecated_first_timestamp.is_some());
    assert!(read.deprecated_last_timestamp.is_some());
    let listed = events
        .list(&ListParams::default().fields("regarding.name=web"))
        .await
        .expect("listed through events.k8s.io");
    assert_eq!(listed.items.len(), 1, "{listed:?}");

    // An update through events.k8s.io keeps what the core Event had and is seen there.
    let mut changed = read.clone();
    changed.note = Some("pulled it again".into());
    events
        .replace("pod.1", &PostParams::default(), &changed)
        .await
        .expect("replaced through events.k8s.io");
    let core: Api<CoreEvent> = Api::namespaced(events.into_client(), "default");
    let again = core.get("pod.1").await.expect("read as core");
    assert_eq!(again.message.as_deref(), Some("pulled it again"));
    assert_eq!(again.count, Some(4));
    assert_eq!(
        again.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
}

/// A watch on core Events sees an Event created through events.k8s.io/v1, converted;
/// deleting it through core v1 removes it from events.k8s.io too.
#[tokio::test]
async fn a_core_watch_sees_events_k8s_io_writes() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let mut stream = core
        .watch(
            &WatchParams::default()
                .fields("involvedObject.name=watched")
                .timeout(20),
            "0",
        )
        .await
        .expect("watch starts")
        .boxed();
    let events: Api<Event> = Api::namespaced(client, "default");
    let regarding =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "watched", "namespace": "default"});
    events
        .create(
            &PostParams::default(),
            &events_v1("watched.1", regarding, "seen by the watch"),
        )
        .await
        .expect("created");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = stream.try_next().await.expect("watch event") {
            if let WatchEvent::Added(e) = event {
                return e;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("ADDED within 10 s");
    assert_eq!(seen.message.as_deref(), Some("seen by the watch"));
    core.delete("watched.1", &DeleteParams::default())
        .await
        .expect("deleted through core");
    let gone = events
        .get("watched.1")
        .await
        .expect_err("gone from events.k8s.io");
    assert_eq!(api_error(gone).code, 404);
}

/// `kubectl describe mcpserver` shows the events.k8s.io/v1 Events written about it (the
/// operator writes those), as on a real cluster.
#[tokio::test]
async fn kubectl_describe_shows_events_k8s_io_events() {
    let kubectl = kubectl();
    let (server, client) = start_with_crds().await;
    let servers: Api<McpServer> = Api::namespaced(client.clone(), "default");
    let created = servers
        .create(&PostParams::default(), &stdio_server("described"))
        .await
        .expect("McpServer created");
    let uid = created.metadata.uid.clone().expect("uid");
    let regarding = json!({"apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer", "name": "described", "namespace": "default", "uid": uid});
    let events: Api<Event> = Api::namespaced(client, "default");
    events
        .create(
            &PostParams::default(),
            &events_v1("described.1", regarding, "the note of the operator's Event"),
        )
        .await
        .expect("Event created");
    let config = tempfile::NamedTempFile::new().unwrap();
    server.write_kubeconfig(config.path()).unwrap();
    let described = run_kubectl(
        &kubectl,
        config.path(),
        &["describe", "mcpserver", "described", "-n", "default"],
    )
    .await;
    let events_section = described
        .split_once("Events:")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    assert!(
        events_section.contains("the note of the operator's Event")
            && events_section.contains("Reconciled"),
        "{described}"
    );
    let listed = run_kubectl(&kubectl, config.path(), &["get", "events", "-n", "default"]).await;
    assert!(listed.contains("described.1"), "{listed}");
}

/// The other direction: a watch on events.k8s.io Events (selecting on `regarding.name`)
/// sees a core Event written after it started, converted; a core update arrives as
/// MODIFIED with the new note.
#[tokio::test]
async fn an_events_k8s_io_watch_sees_core_writes() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut stream = events
        .watch(
            &WatchParams::default()
                .fields("regarding.name=web")
                .timeout(20),
            "0",
        )
        .await
        .expect("watch starts")
        .boxed();
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let event: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "web.1"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "default"},
        "message": "first", "reason": "Started", "type": "Normal",
    }))
    .expect("valid core Event");
    core.create(&PostParams::default(), &event)
        .await
        .expect("created");
    core.patch(
        "web.1",
        &PatchParams::default(),
        &Patch::Merge(json!({"message": "second"})),
    )
    .await
    .expect("patched");
    let notes = tokio::time::timeout(Duration::from_secs(10), async {
        let mut notes = Vec::new();
        while let Some(event) = stream.try_next().await.expect("watch event") {
            match event {
                WatchEvent::Added(e) => notes.push(("ADDED", e.note.unwrap_or_default())),
                WatchEvent::Modified(e) => {
                    notes.push(("MODIFIED", e.note.unwrap_or_default()));
                    return notes;
                }
                _ => {}
            }
        }
        panic!("watch ended after {notes:?}");
    })
    .await
    .expect("ADDED and MODIFIED within 10 s");
    assert_eq!(
        notes,
        [
            ("ADDED", "first".to_owned()),
            ("MODIFIED", "second".to_owned())
        ]
    );
}
