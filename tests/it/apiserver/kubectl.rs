//! The real kubectl (the pinned one from `make peers`) against the server.

use super::*;

/// The kubectl the repository pins (`make peers` installs it into `.peers/bin`). A missing
/// kubectl fails the test: `make test` installs it, so its absence is a broken setup.
pub(super) fn kubectl() -> std::path::PathBuf {
    let peers = std::env::var_os("MCP_OPERATOR_PEERS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers"));
    let pinned = peers.join("bin/kubectl");
    assert!(
        pinned.is_file(),
        "{} is missing: run `make peers`",
        pinned.display()
    );
    pinned
}

pub(super) async fn run_kubectl(
    kubectl: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> String {
    let output = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The real kubectl works against the server: server-side apply of the CRDs and the
/// examples, then `kubectl get mcpservers`.
#[tokio::test]
async fn kubectl_applies_the_examples_and_lists_them() {
    let kubectl = kubectl();
    let (server, _client) = start(ApiServerOptions::default()).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    server.write_kubeconfig(config.path()).unwrap();
    let applied = run_kubectl(
        &kubectl,
        config.path(),
        &["apply", "--server-side", "-f", "crds/"],
    )
    .await;
    assert!(
        applied.contains("mcpservers.mcp-operator.dev serverside-applied"),
        "{applied}"
    );
    let applied = run_kubectl(
        &kubectl,
        config.path(),
        &["apply", "--server-side", "-f", "examples/"],
    )
    .await;
    assert!(
        applied.contains("mcpserver.mcp-operator.dev/everything serverside-applied"),
        "{applied}"
    );
    let listed = run_kubectl(&kubectl, config.path(), &["get", "mcpservers"]).await;
    let header = listed.lines().next().unwrap_or_default();
    assert!(
        header.split_whitespace().eq([
            "NAME",
            "TRANSPORT",
            "READY",
            "TOOLS",
            "PHASE",
            "LAST",
            "PROBE",
            "AGE"
        ]),
        "{listed}"
    );
    // Status columns are empty (no controller ran); AGE is whatever second the clock is
    // in, so only its form is checked (an exact "0s" failed when a second boundary fell
    // between apply and get).
    let seconds_old = |age: &str| {
        age.strip_suffix('s')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(
        listed.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            matches!(fields[..], ["everything", "Stdio", age] if seconds_old(age))
        }),
        "{listed}"
    );
    // `mcp` is the CRDs' category: all three kinds are listed.
    let category = run_kubectl(&kubectl, config.path(), &["get", "mcp"]).await;
    assert!(
        category.contains("mcpserver.mcp-operator.dev/memory")
            && category.contains("mcpbinding.mcp-operator.dev/"),
        "{category}"
    );
    let described = run_kubectl(
        &kubectl,
        config.path(),
        &["describe", "mcpserver", "everything"],
    )
    .await;
    assert!(
        described.contains("Name:") && described.contains("everything"),
        "{described}"
    );
    let deleted = run_kubectl(&kubectl, config.path(), &["delete", "mcpserver", "memory"]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    let listed = run_kubectl(
        &kubectl,
        config.path(),
        &["get", "mcpservers", "-o", "name"],
    )
    .await;
    assert!(!listed.contains("memory"), "{listed}");
}

/// kubectl with a ServiceAccount kubeconfig: allowed reads work, refusals print the real
/// server's Forbidden message.
#[tokio::test]
async fn kubectl_as_a_service_account_gets_the_real_forbidden_message() {
    let kubectl = kubectl();
    let (server, _client) = start(ApiServerOptions::default()).await;
    let admin = tempfile::NamedTempFile::new().unwrap();
    server.write_kubeconfig(admin.path()).unwrap();
    let rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: cm-reader, namespace: default}\nrules:\n- {apiGroups: [\"\"], resources: [configmaps], verbs: [get, list]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: cm-reader, namespace: default}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}\nsubjects:\n- {kind: ServiceAccount, name: viewer, namespace: default}\n";
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest.path(), rbac).unwrap();
    let manifest_path = manifest.path().to_str().unwrap();
    run_kubectl(&kubectl, admin.path(), &["create", "-f", manifest_path]).await;
    let viewer = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        viewer.path(),
        server.kubeconfig_for_service_account("default", "viewer"),
    )
    .unwrap();
    let listed = run_kubectl(&kubectl, viewer.path(), &["get", "configmaps"]).await;
    assert!(listed.is_empty() || listed.contains("NAME"), "{listed}");
    let output = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(viewer.path())
        .args(["get", "secrets"])
        .output()
        .await
        .expect("kubectl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:default:viewer" cannot list resource "secrets" in API group "" in the namespace "default""#),
        "{stderr}"
    );
}

/// kubectl's strategic-merge paths on a built-in kind: client-side apply (twice, the
/// second a strategic merge patch computed from last-applied), label, annotate.
#[tokio::test]
async fn kubectl_client_side_apply_label_and_annotate() {
    let kubectl = kubectl();
    let (server, client) = start(ApiServerOptions::default()).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    server.write_kubeconfig(config.path()).unwrap();
    let manifest = tempfile::NamedTempFile::new().unwrap();
    let deployment = |image: &str, env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        env: [{env}]\n      - name: sidecar\n        image: busybox\n"
        )
    };
    std::fs::write(
        manifest.path(),
        deployment("nginx:1", "{name: A, value: '1'}, {name: B, value: '2'}"),
    )
    .unwrap();
    let path = manifest.path().to_str().unwrap();
    let out = run_kubectl(&kubectl, config.path(), &["apply", "-f", path]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    std::fs::write(
        manifest.path(),
        deployment("nginx:2", "{name: A, value: '1'}"),
    )
    .unwrap();
    let out = run_kubectl(&kubectl, config.path(), &["apply", "-f", path]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    run_kubectl(
        &kubectl,
        config.path(),
        &["label", "deployment", "web", "tier=front"],
    )
    .await;
    run_kubectl(
        &kubectl,
        config.path(),
        &["annotate", "deployment", "web", "note=hello"],
    )
    .await;

    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::default_namespaced(client);
    let web = serde_json::to_value(api.get("web").await.unwrap()).unwrap();
    let containers = &web["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:2", "{containers}");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(containers[1]["name"], "sidecar", "{containers}");
    assert_eq!(web["metadata"]["labels"]["tier"], "front");
    assert_eq!(web["metadata"]["annotations"]["note"], "hello");
}

/// `kubectl get -w` on a custom resource with printer columns (a Table watch) prints
/// rows for objects created while it runs.
#[tokio::test]
async fn kubectl_get_watch_prints_table_rows() {
    use tokio::io::AsyncBufReadExt;
    let kubectl = kubectl();
    let (server, client) = start_with_crds().await;
    let config = tempfile::NamedTempFile::new().unwrap();
    server.write_kubeconfig(config.path()).unwrap();
    let servers: Api<McpServer> = Api::default_namespaced(client);
    servers
        .create(&PostParams::default(), &stdio_server("first"))
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(config.path())
        .args(["get", "mcpservers", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut created_second = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.starts_with("second ")) {
        let line = tokio::time::timeout_at(deadline, lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            let _ = child.start_kill();
            let stderr = child.wait_with_output().await.unwrap().stderr;
            panic!(
                "kubectl get -w printed {seen:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        };
        seen.push(line);
        if !created_second && seen.iter().any(|l| l.starts_with("first ")) {
            servers
                .create(&PostParams::default(), &stdio_server("second"))
                .await
                .unwrap();
            created_second = true;
        }
    }
    assert!(
        seen[0].split_whitespace().eq([
            "NAME",
            "TRANSPORT",
            "READY",
            "TOOLS",
            "PHASE",
            "LAST",
            "PROBE",
            "AGE"
        ]),
        "{seen:?}"
    );
    let second = seen.iter().find(|l| l.starts_with("second ")).unwrap();
    assert!(second.contains("Stdio"), "{seen:?}");
}
