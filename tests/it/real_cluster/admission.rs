//! Admission differential: every custom resource in `examples/` and `config/samples/` is
//! accepted by the real API server, stored with the same defaults `Admission` and the
//! embedded server apply; every manifest in `tests/fixtures/invalid/` is refused, with
//! the same status code, reason and message from the real server, the embedded server and
//! `Admission`.

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use mcp_operator::admission::Admission;
use mcp_operator::api::crd;
use mcp_operator::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use serde_json::Value;

use super::{create_strict, documents, install_crds};
use crate::support::{RealCluster, create_namespace, repo_path};

/// The embedded API server with our CRDs, and a client for it.
async fn embedded() -> (ApiServerHandle, kube::Client) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("embedded server starts");
    let client = server.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD created");
    }
    (server, client)
}

fn is_ours(object: &Value) -> bool {
    object["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("mcp-operator.dev/"))
}

#[tokio::test]
async fn examples_and_samples_are_accepted_with_the_same_defaults() {
    let cluster = RealCluster::new("admission-examples").await;
    install_crds(&cluster).await;
    let (_embedded, embedded_client) = embedded().await;
    let admission = Admission::for_own_kinds();
    let mut checked = 0;
    let mut differences = String::new();
    for dir in ["examples", "config/samples"] {
        // Samples repeat examples by name: a namespace each.
        let namespace = format!("{}-{}", cluster.namespace, dir.replace('/', "-"));
        create_namespace(&cluster.client, &namespace).await;
        create_namespace(&embedded_client, &namespace).await;
        // As a user applies them: kubectl reads YAML 1.1 (`Off` is a boolean there).
        let out = cluster
            .kubectl()
            .args([
                "apply",
                "--server-side",
                "--dry-run=server",
                "-n",
                &namespace,
                // A directory with a kustomization is applied as one (`-k`).
                if dir == "examples" { "-f" } else { "-k" },
            ])
            .arg(repo_path(dir))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("kubectl runs");
        if !out.status.success() {
            let _ = writeln!(
                differences,
                "kubectl apply --server-side --dry-run=server -f {dir}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for doc in documents(&repo_path(dir)) {
            let source = doc.source.display().to_string();
            let object = doc.object;
            let real = create_strict(&cluster.client, &namespace, &object).await;
            let real = match real {
                Ok(stored) => stored,
                Err(status) => {
                    let _ = writeln!(
                        differences,
                        "{source}: refused by the real server: {status:?}"
                    );
                    continue;
                }
            };
            if !is_ours(&object) {
                continue;
            }
            checked += 1;
            let ours = create_strict(&embedded_client, &namespace, &object).await;
            match ours {
                Ok(stored) if stored["spec"] == real["spec"] => {}
                Ok(stored) => {
                    let _ = writeln!(
                        differences,
                        "{source}: stored spec differs\n  real:     {}\n  embedded: {}",
                        real["spec"], stored["spec"]
                    );
                }
                Err(status) => {
                    let _ = writeln!(
                        differences,
                        "{source}: refused by the embedded server: {status:?}"
                    );
                }
            }
            match admission.admit(&object, None) {
                Ok(admitted) if admitted["spec"] == real["spec"] => {}
                Ok(admitted) => {
                    let _ = writeln!(
                        differences,
                        "{source}: Admission's defaults differ\n  real:      {}\n  admission: {}",
                        real["spec"], admitted["spec"]
                    );
                }
                Err(e) => {
                    let _ = writeln!(differences, "{source}: refused by Admission: {e}");
                }
            }
        }
    }
    assert!(
        checked >= 12,
        "expected every example and sample, checked {checked}"
    );
    assert!(differences.is_empty(), "{differences}");
}

#[tokio::test]
async fn invalid_fixtures_are_refused_alike_by_real_and_embedded_server_and_admission() {
    let cluster = RealCluster::new("admission-invalid").await;
    install_crds(&cluster).await;
    let (_embedded, embedded_client) = embedded().await;
    create_namespace(&embedded_client, &cluster.namespace).await;
    let admission = Admission::for_own_kinds();
    let docs = documents(&repo_path("tests/fixtures/invalid"));
    assert!(
        docs.len() >= 30,
        "expected a fixture per rule, found {}",
        docs.len()
    );
    let mut differences = String::new();
    let mut refused = 0;
    for doc in &docs {
        let source = doc
            .source
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let real = match create_strict(&cluster.client, &cluster.namespace, &doc.object).await {
            Ok(_) => {
                let _ = writeln!(differences, "{source}: ACCEPTED by the real server");
                continue;
            }
            Err(status) => status,
        };
        refused += 1;
        let embedded = create_strict(&embedded_client, &cluster.namespace, &doc.object).await;
        let admitted = admission.admit(&doc.object, None);
        let mut lines = Vec::new();
        match &embedded {
            Ok(_) => lines.push("  embedded: ACCEPTED".to_owned()),
            Err(ours)
                if (ours.code, &ours.reason, &ours.message)
                    != (real.code, &real.reason, &real.message) =>
            {
                lines.push(format!(
                    "  embedded:  {} {}: {}",
                    ours.code, ours.reason, ours.message
                ));
            }
            Err(_) => {}
        }
        match &admitted {
            Ok(_) => lines.push("  admission: ACCEPTED".to_owned()),
            Err(e) if e.to_string() != real.message => lines.push(format!("  admission: {e}")),
            Err(_) => {}
        }
        if !lines.is_empty() {
            let _ = writeln!(
                differences,
                "{source}:\n  real:      {} {}: {}\n{}",
                real.code,
                real.reason,
                real.message,
                lines.join("\n")
            );
        }
    }
    assert_eq!(refused, docs.len(), "{differences}");
    assert!(
        differences.is_empty(),
        "differences (a bug in ours):\n{differences}"
    );
}
