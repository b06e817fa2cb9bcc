//! RBAC mode: clients authenticated as a ServiceAccount are held to the shipped
//! `config/rbac` rules and refused with the real 403 Status; clients without a token
//! stay the cluster admin.

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Namespace, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};

use super::*;

const OPERATOR_NS: &str = "mcp-operator-system";
const OPERATOR_USER: &str = "system:serviceaccount:mcp-operator-system:mcp-operator";

/// Creates every object of `config/rbac/*.yaml` (the kustomization excepted) as admin.
async fn load_shipped_rbac(client: &Client) {
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": OPERATOR_NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let object: Value = serde_yaml::from_str(&text).unwrap();
        let pp = PostParams::default();
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let value = object.clone();
        match object["kind"].as_str().unwrap_or_default() {
            "ClusterRole" => drop(create::<ClusterRole>(Api::all(client.clone()), value).await),
            "ClusterRoleBinding" => {
                drop(create::<ClusterRoleBinding>(Api::all(client.clone()), value).await);
            }
            "Role" => drop(create::<Role>(Api::namespaced(client.clone(), ns), value).await),
            "RoleBinding" => {
                drop(create::<RoleBinding>(Api::namespaced(client.clone(), ns), value).await);
            }
            "ServiceAccount" => {
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            other => panic!("{}: unexpected kind {other}", path.display()),
        }
        loaded += 1;
    }
    assert!(
        loaded >= 5,
        "config/rbac has the role, bindings and account"
    );
}

async fn create<K>(api: Api<K>, value: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(value).unwrap(),
    )
    .await
    .unwrap()
}

fn forbidden(error: kube::Error) -> String {
    let status = api_error(error);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    status.message
}

/// The operator's ServiceAccount may do what `config/rbac` grants and nothing more.
#[tokio::test]
async fn operator_service_account_is_held_to_the_shipped_rules() {
    let (server, admin) = start_with_crds().await;
    load_shipped_rbac(&admin).await;
    let servers: Api<McpServer> = Api::default_namespaced(admin.clone());
    servers
        .create(&PostParams::default(), &stdio_server("memory"))
        .await
        .unwrap();

    let operator = server
        .service_account_client(OPERATOR_NS, "mcp-operator")
        .unwrap();
    // Discovery is open to every authenticated user.
    operator.apiserver_version().await.unwrap();
    // get/list/watch on the custom resources, cluster-wide.
    let all: Api<McpServer> = Api::all(operator.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let mut events = all
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        events.next().await,
        Some(Ok(WatchEvent::Added(_)))
    ));
    // Status writes (the status subresource) are allowed, spec writes are not.
    let own: Api<McpServer> = Api::namespaced(operator.clone(), "default");
    let status = Patch::Merge(json!({"status": {"observedGeneration": 1}}));
    own.patch_status("memory", &PatchParams::default(), &status)
        .await
        .unwrap();
    let spec = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    assert_eq!(
        forbidden(
            own.patch("memory", &PatchParams::default(), &spec)
                .await
                .unwrap_err()
        ),
        format!(
            r#"mcpservers.mcp-operator.dev "memory" is forbidden: User "{OPERATOR_USER}" cannot patch resource "mcpservers" in API group "mcp-operator.dev" in the namespace "default""#
        )
    );
    // ConfigMaps are not in the ClusterRole at all.
    let config_maps: Api<ConfigMap> = Api::namespaced(operator.clone(), "default");
    assert_eq!(
        forbidden(config_maps.list(&ListParams::default()).await.unwrap_err()),
        format!(
            r#"configmaps is forbidden: User "{OPERATOR_USER}" cannot list resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    // Leases only in the operator's namespace (a Role, not the ClusterRole).
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"}})).unwrap();
    Api::<Lease>::namespaced(operator.clone(), OPERATOR_NS)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    assert_eq!(
        forbidden(
            Api::<Lease>::namespaced(operator.clone(), "default")
                .create(&PostParams::default(), &lease)
                .await
                .unwrap_err()
        ),
        format!(
            r#"leases.coordination.k8s.io is forbidden: User "{OPERATOR_USER}" cannot create resource "leases" in API group "coordination.k8s.io" in the namespace "default""#
        )
    );
    // CRDs: read-only, cluster scope.
    let crds: Api<CustomResourceDefinition> = Api::all(operator);
    crds.get("mcpservers.mcp-operator.dev").await.unwrap();
    assert_eq!(
        forbidden(
            crds.delete("mcpservers.mcp-operator.dev", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        format!(
            r#"customresourcedefinitions.apiextensions.k8s.io "mcpservers.mcp-operator.dev" is forbidden: User "{OPERATOR_USER}" cannot delete resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope"#
        )
    );
}

/// RoleBindings grant only in their namespace, `resourceNames` narrows a rule, a
/// binding to a missing role is named in the reason, and tokenless clients stay admin.
#[tokio::test]
async fn role_bindings_resource_names_and_admin_fallback() {
    let (server, admin) = start(ApiServerOptions::default()).await;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-one"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]}],
    }))
    .unwrap();
    Api::<Role>::default_namespaced(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = |name: &str, role_kind: &str, role_name: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "reader"}],
        }))
        .unwrap()
    };
    let bindings: Api<RoleBinding> = Api::default_namespaced(admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &binding("read-one", "Role", "read-one"),
        )
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(admin.clone());
    for name in ["one", "two"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        config_maps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }

    let reader = server.service_account_client("default", "reader").unwrap();
    let as_reader: Api<ConfigMap> = Api::default_namespaced(reader.clone());
    as_reader.get("one").await.unwrap();
    let user = "system:serviceaccount:default:reader";
    assert_eq!(
        forbidden(as_reader.get("two").await.unwrap_err()),
        format!(
            r#"configmaps "two" is forbidden: User "{user}" cannot get resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(reader.clone(), "kube-system");
    forbidden(elsewhere.get("one").await.unwrap_err());

    bindings
        .create(
            &PostParams::default(),
            &binding("dangling", "ClusterRole", "missing"),
        )
        .await
        .unwrap();
    assert_eq!(
        forbidden(as_reader.list(&ListParams::default()).await.unwrap_err()),
        format!(
            r#"configmaps is forbidden: User "{user}" cannot list resource "configmaps" in API group "" in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#
        )
    );
    // No token: admin, as before RBAC mode existed.
    assert_eq!(
        config_maps
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

/// A token the server never minted is 401 Unauthorized.
#[tokio::test]
async fn unknown_token_is_unauthorized() {
    let (server, _admin) = start(ApiServerOptions::default()).await;
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.headers.push((
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer not-a-token"),
    ));
    let client = Client::try_from(config).unwrap();
    let status = api_error(
        Api::<ConfigMap>::default_namespaced(client)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
}
