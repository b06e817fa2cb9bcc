//! 10,000 objects: paging with limit/continue reaches every object exactly once, and
//! watches (from scratch and from a resourceVersion) deliver events. Functional checks
//! only; how fast this is belongs to `benches/apiserver.rs`.

use std::collections::BTreeSet;

use super::*;

const OBJECTS: usize = 10_000;

fn numbered(i: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": format!("cm-{i:05}"), "labels": {"parity": if i.is_multiple_of(2) { "even" } else { "odd" }}},
        "data": {"i": i.to_string()},
    }))
    .expect("valid ConfigMap")
}

async fn create_all(api: &Api<ConfigMap>) {
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &numbered(i))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await
        .expect("every create succeeds");
}

#[tokio::test]
async fn ten_thousand_objects_page_and_watch() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    create_all(&api).await;

    // Paging: 20 pages of 500, each name once, in order, remainingItemCount counting down.
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(500);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                let remaining = page.metadata.remaining_item_count.unwrap_or_default();
                assert_eq!(remaining, i64::try_from(OBJECTS - names.len()).unwrap());
                params = params.continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, OBJECTS / 500);
    let expected: Vec<String> = (0..OBJECTS).map(|i| format!("cm-{i:05}")).collect();
    assert_eq!(names, expected);

    // Paging with a label selector: half of them.
    let mut odd = 0;
    let mut params = ListParams::default().labels("parity=odd").limit(700);
    loop {
        let page = api.list(&params).await.unwrap();
        odd += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(odd, OBJECTS / 2);

    // A watch from scratch first replays all 10,000 as ADDED, then sees a change.
    let mut events = api
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = BTreeSet::new();
    while added.len() < OBJECTS {
        match events.next().await {
            Some(Ok(WatchEvent::Added(cm))) => {
                added.insert(cm.metadata.name.unwrap_or_default());
            }
            other => panic!("expected ADDED, got {other:?}"),
        }
    }
    let patch = Patch::Merge(json!({"data": {"changed": "yes"}}));
    api.patch("cm-04242", &PatchParams::default(), &patch)
        .await
        .unwrap();
    match events.next().await {
        Some(Ok(WatchEvent::Modified(cm))) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("cm-04242"));
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // A watch from the list's resourceVersion sees only later changes.
    let listed = api.list(&ListParams::default().limit(1)).await.unwrap();
    let from = listed.metadata.resource_version.unwrap();
    api.delete("cm-00007", &DeleteParams::default())
        .await
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(60), &from)
        .await
        .unwrap()
        .boxed();
    match events.next().await {
        Some(Ok(WatchEvent::Deleted(cm))) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("cm-00007"));
        }
        other => panic!("expected DELETED, got {other:?}"),
    }
}
