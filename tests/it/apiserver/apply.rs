//! Server-side apply: creation, managedFields ownership, conflicts and force, pruning.

use super::*;

/// Server-side apply creates, records managedFields, refuses to change another
/// manager's field (409) unless forced, and prunes fields the manager stopped applying.
#[tokio::test]
async fn server_side_apply_ownership_conflicts_and_force() {
    let (_server, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let applied = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": data});
    let operator = PatchParams::apply("mcp-operator").force();
    api.patch(
        "cm",
        &operator,
        &Patch::Apply(applied(json!({"a": "1", "b": "2"}))),
    )
    .await
    .unwrap();

    let other = PatchParams::apply("someone-else");
    let err = api_error(
        api.patch(
            "cm",
            &other,
            &Patch::Apply(applied(json!({"a": "changed"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (409, "Conflict"),
        "{err:?}"
    );
    assert!(
        err.message.contains("conflict with \"mcp-operator\""),
        "{}",
        err.message
    );
    assert_eq!(err.details.unwrap().causes[0].field, ".data.a");

    // Same value: no conflict, shared ownership.
    api.patch("cm", &other, &Patch::Apply(applied(json!({"b": "2"}))))
        .await
        .unwrap();
    let forced = api
        .patch(
            "cm",
            &other.clone().force(),
            &Patch::Apply(applied(json!({"a": "changed", "b": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "changed");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"mcp-operator".to_owned())
            && managers.contains(&"someone-else".to_owned()),
        "{managers:?}"
    );

    // mcp-operator now applies only c: b is still owned by someone-else and stays, a
    // moved to someone-else and stays.
    let pruned = api
        .patch("cm", &operator, &Patch::Apply(applied(json!({"c": "3"}))))
        .await
        .unwrap();
    let data = pruned.data.unwrap();
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
    // someone-else stops applying b and a: both disappear.
    let pruned = api
        .patch("cm", &other, &Patch::Apply(applied(json!({}))))
        .await
        .unwrap();
    assert_eq!(
        pruned.data.unwrap().keys().cloned().collect::<Vec<_>>(),
        ["c"]
    );
}
