//! Object mechanics: CRD establishment and discovery, generation vs resourceVersion,
//! status isolation, optimistic concurrency, list selectors and paging, 422 on invalid CRs.

use super::*;

/// Applying a CRD makes its resource served and Established (discovery lists it).
#[tokio::test]
async fn applied_crds_are_established_and_discoverable() {
    let (_server, client) = start_with_crds().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("mcpservers.mcp-operator.dev")
        .await
        .unwrap();
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"),
        "{conditions:?}"
    );
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let (resource, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.kind == "McpServer")
        .expect("McpServer discovered");
    assert_eq!(resource.plural, "mcpservers");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
}

/// metadata.generation moves only on spec changes (status subresource types); every
/// write moves resourceVersion.
#[tokio::test]
async fn generation_tracks_spec_while_resource_version_tracks_every_write() {
    let (_server, client) = start_with_crds().await;
    let api: Api<McpServer> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &stdio_server("memory"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let rv = |s: &McpServer| s.metadata.resource_version.clone().unwrap_or_default();

    let status = Patch::Merge(json!({"status": {"phase": "Pending"}}));
    let after_status = api
        .patch_status("memory", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(after_status.metadata.generation, Some(1));
    assert_ne!(rv(&after_status), rv(&created));

    let labels = Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}}));
    let after_labels = api
        .patch("memory", &PatchParams::default(), &labels)
        .await
        .unwrap();
    assert_eq!(after_labels.metadata.generation, Some(1));
    assert_ne!(rv(&after_labels), rv(&after_status));

    let spec = Patch::Merge(json!({"spec": {"replicas": 2}}));
    let after_spec = api
        .patch("memory", &PatchParams::default(), &spec)
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
}

/// With a status subresource, writes to the object ignore status and writes to /status
/// change nothing but status.
#[tokio::test]
async fn status_subresource_isolates_status_from_spec() {
    let (_server, client) = start_with_crds().await;
    let api: Api<McpServer> = Api::namespaced(client, "default");
    let mut object = stdio_server("iso");
    object.status = Some(serde_json::from_value(json!({"phase": "Ready"})).unwrap());
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert!(created.status.is_none(), "status is dropped on create");

    let both = Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"phase": "Ready"}}));
    let main = api
        .patch("iso", &PatchParams::default(), &both)
        .await
        .unwrap();
    assert_eq!(main.spec.replicas, 3);
    assert!(main.status.is_none(), "main resource write ignored status");

    let both = Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"phase": "Pending"}}));
    let status = api
        .patch_status("iso", &PatchParams::default(), &both)
        .await
        .unwrap();
    assert_eq!(status.spec.replicas, 3, "status write ignored spec");
    assert_eq!(
        serde_json::to_value(&status.status).unwrap()["phase"],
        json!("Pending")
    );
}

/// An update carrying a stale resourceVersion is refused with 409 Conflict.
#[tokio::test]
async fn stale_update_is_a_conflict() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let api: Api<Secret> = Api::default_namespaced(client);
    let first = api
        .create(&PostParams::default(), &secret("s", json!({"a": "1"})))
        .await
        .unwrap();
    let mut second = first.clone();
    second.string_data = Some([("a".to_owned(), "2".to_owned())].into());
    api.replace("s", &PostParams::default(), &second)
        .await
        .unwrap();
    let err = api_error(
        api.replace("s", &PostParams::default(), &second)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (409, "Conflict"),
        "{err:?}"
    );
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    let err = api_error(
        api.create(&PostParams::default(), &first)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let err = api_error(api.get("missing").await.unwrap_err());
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "secrets \"missing\" not found")
    );
}

/// List honours set-based label selectors, field selectors, and limit/continue paging.
#[tokio::test]
async fn list_selectors_and_paging() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let api: Api<Secret> = Api::default_namespaced(client);
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "cache")] {
        let mut s = secret(name, json!({}));
        s.metadata.labels = Some([("tier".to_owned(), tier.to_owned())].into());
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<Secret>| {
        l.items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier in (web,db)"))
                .await
                .unwrap()
        ),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier notin (web)"))
                .await
                .unwrap()
        ),
        ["b", "d"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    let token = page.metadata.continue_.clone().expect("a continue token");
    assert_eq!(names(page), ["a", "b", "c"]);
    let rest = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert!(rest.metadata.continue_.is_none());
    assert_eq!(names(rest), ["d"]);
}

/// An invalid custom resource is refused with 422 Invalid carrying the CEL message, in
/// the real server's shape (`<Kind>.<group> "<name>" is invalid: ...`, causes per field).
#[tokio::test]
async fn invalid_custom_resource_is_422_with_the_cel_message() {
    let (_server, client) = start_with_crds().await;
    let api: Api<McpServer> = Api::namespaced(client, "default");
    let mut object = serde_json::to_value(stdio_server("both")).unwrap();
    object["spec"]["remote"] = json!({"url": "https://example.com/mcp"});
    let object: McpServer = serde_json::from_value(object).unwrap();
    let err = api_error(
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{err:?}");
    assert!(
        err.message
            .starts_with("McpServer.mcp-operator.dev \"both\" is invalid: "),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("set exactly one of spec.container"),
        "{}",
        err.message
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].field.as_str()),
        ("FieldValueInvalid", "spec")
    );
}

/// `/openapi/v2` is a valid (empty) Swagger document for JSON clients.
#[tokio::test]
async fn openapi_v2_is_a_valid_empty_swagger_document() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let request = http::Request::get("/openapi/v2")
        .header("accept", "application/json")
        .body(Vec::new())
        .unwrap();
    let doc: Value = client.request(request).await.unwrap();
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["paths"].is_object() && doc["definitions"].is_object());
}
