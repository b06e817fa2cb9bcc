//! Watches: resuming from a resourceVersion, 410 Gone, kube-runtime watcher.

use super::*;

/// A watch from a resourceVersion replays every later change; one from a revision
/// older than the retained history gets an ERROR event with a 410 Status.
#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_expires_with_410() {
    let options = ApiServerOptions {
        history_limit: 5,
        ..ApiServerOptions::default()
    };
    let (_server, client) = start(options).await;
    let api: Api<Secret> = Api::default_namespaced(client);
    let first = api
        .create(&PostParams::default(), &secret("w0", json!({})))
        .await
        .unwrap();
    let from = first.metadata.resource_version.unwrap();
    for name in ["w1", "w2"] {
        api.create(&PostParams::default(), &secret(name, json!({})))
            .await
            .unwrap();
    }
    let params = WatchParams::default().timeout(1);
    let events: Vec<WatchEvent<Secret>> = api
        .watch(&params, &from)
        .await
        .unwrap()
        .take(2)
        .try_collect()
        .await
        .unwrap();
    let names: Vec<String> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(s) => s.metadata.name.clone().unwrap_or_default(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, ["w1", "w2"]);

    for i in 0..6 {
        api.create(
            &PostParams::default(),
            &secret(&format!("filler{i}"), json!({})),
        )
        .await
        .unwrap();
    }
    let mut stream = api.watch(&params, &from).await.unwrap().boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

/// kube-runtime's watcher (list, then watch with bookmarks) sees live changes.
#[tokio::test]
async fn runtime_watcher_sees_changes() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let api: Api<Secret> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &secret("before", json!({})))
        .await
        .unwrap();
    let mut objects = watcher(
        api.clone(),
        watcher::Config::default().labels("watched=yes"),
    )
    .applied_objects()
    .boxed();
    let mut labelled = secret("after", json!({}));
    labelled.metadata.labels = Some([("watched".to_owned(), "yes".to_owned())].into());
    api.create(&PostParams::default(), &labelled).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), objects.next())
        .await
        .expect("event in time");
    assert_eq!(
        seen.unwrap().unwrap().metadata.name.as_deref(),
        Some("after")
    );
}
