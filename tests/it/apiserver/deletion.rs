//! Deletion: ownerReference garbage collection and finalizers.

use super::*;

/// Background deletion of an owner deletes the dependents whose ownerReferences point
/// at its uid; Orphan keeps them and strips the reference.
#[tokio::test]
async fn garbage_collection_follows_owner_references() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let owners: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client);
    for (owner, dependent) in [("owner-a", "dep-a"), ("owner-b", "dep-b")] {
        let cm = owners
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": owner}})).unwrap(),
            )
            .await
            .unwrap();
        let mut s = secret(dependent, json!({}));
        s.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.into(),
                uid: cm.metadata.uid.unwrap(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    owners
        .delete("owner-a", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(api_error(secrets.get("dep-a").await.unwrap_err()).code, 404);
    owners
        .delete("owner-b", &DeleteParams::orphan())
        .await
        .unwrap();
    let kept = secrets.get("dep-b").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

/// An object with finalizers is only marked (deletionTimestamp) by delete; it goes away
/// when the last finalizer is removed.
#[tokio::test]
async fn finalizers_block_deletion_until_cleared() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let api: Api<Secret> = Api::default_namespaced(client);
    let mut s = secret("held", json!({"k": "v"}));
    s.metadata.finalizers = Some(vec!["mcp-operator.dev/cleanup".into()]);
    api.create(&PostParams::default(), &s).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = api.get("held").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    api.patch("held", &PatchParams::default(), &clear)
        .await
        .unwrap();
    assert_eq!(api_error(api.get("held").await.unwrap_err()).code, 404);
}
