//! What users deploy, on a real API server: every object of `kubectl kustomize
//! config/default` and of `helm template charts/mcp-operator` (the value sets
//! hack/check-packaging.sh renders) passes `kubectl apply --server-side --dry-run=server`
//! — built-in kinds against the real API types and admission, RBAC objects against the
//! real RBAC escalation checks, CRDs against the real structural-schema and CEL rules.

use std::process::{Command, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{MANAGER, install_crds};
use crate::support::{RealCluster, ensure_namespace, peer_path, repo_path};

/// The operator's namespace in config/ and the chart's checks.
const NAMESPACE: &str = "mcp-operator-system";

/// A stand-in for prometheus-operator's ServiceMonitor CRD, which this cluster does not
/// have: the chart's ServiceMonitor is then checked for apiVersion, kind and metadata only.
async fn install_service_monitor_stub(client: &kube::Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "listKind": "ServiceMonitorList", "singular": "servicemonitor"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .expect("CRD");
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "servicemonitors.monitoring.coreos.com",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("ServiceMonitor stub CRD");
}

/// Runs `cmd`, returns its stdout; panics with its stderr on failure.
fn output(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `kubectl apply --server-side --dry-run=server -f -` of `yaml`; returns the failure text.
fn dry_run(cluster: &RealCluster, yaml: &str) -> Result<String, String> {
    let mut child = cluster
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager",
            "packaging-test",
        ])
        // No `-n`: objects name their namespaces (the chart's and kustomize's own, a Role
        // in `default`, one per watched namespace); kubectl refuses `-n` that differs.
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(yaml.as_bytes())
            .expect("writing to kubectl");
    }
    let out = child.wait_with_output().expect("kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[tokio::test]
async fn kustomize_and_helm_output_pass_server_side_dry_run() {
    let cluster = RealCluster::new("packaging").await;
    install_crds(&cluster).await;
    install_service_monitor_stub(&cluster.client).await;
    // A dry run creates nothing, so the namespaces the objects live in must exist.
    // The operator's namespace is shared with the controller suite (the shipped RBAC).
    for ns in [NAMESPACE, "team-a", "team-b"] {
        ensure_namespace(&cluster.client, ns).await;
    }
    let kubectl = peer_path("bin/kubectl");
    let helm = peer_path("bin/helm");
    let chart = repo_path("charts/mcp-operator");
    let mut renderings = vec![(
        "kubectl kustomize config/default".to_owned(),
        output(
            "kustomize",
            Command::new(&kubectl)
                .arg("kustomize")
                .arg(repo_path("config/default")),
        ),
    )];
    for values in [
        vec!["-f", "ci/default-values.yaml"],
        vec!["-f", "ci/namespaced-values.yaml"],
        vec!["--set", "crds.keep=false"],
    ] {
        let values: Vec<String> = values
            .iter()
            .map(|v| {
                if v.starts_with("ci/") {
                    chart.join(v).display().to_string()
                } else {
                    (*v).to_owned()
                }
            })
            .collect();
        let yaml = output(
            "helm template",
            Command::new(&helm)
                .args(["template", "mcp-operator"])
                .arg(&chart)
                .args(["--namespace", NAMESPACE, "--kube-version", "1.33.0"])
                .args(&values),
        );
        renderings.push((format!("helm template {}", values.join(" ")), yaml));
    }
    let mut failures = String::new();
    for (what, yaml) in &renderings {
        let objects = yaml.matches("\nkind: ").count() + usize::from(yaml.starts_with("kind: "));
        match dry_run(&cluster, yaml) {
            Ok(out) => {
                let applied = out
                    .lines()
                    .filter(|l| l.contains("(server dry run)"))
                    .count();
                assert!(
                    applied >= objects && applied > 5,
                    "{what}: {applied} objects applied of ~{objects}:\n{out}"
                );
            }
            Err(e) => failures.push_str(&format!("{what}:\n{e}\n")),
        }
    }
    assert!(
        failures.is_empty(),
        "server-side dry run refused:\n{failures}"
    );
}
