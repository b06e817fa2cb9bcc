//! The real-cluster tier: tests against a real etcd, kube-apiserver and
//! kube-controller-manager v1.33 built from source (`make control-plane`; the fixture is
//! `support::control_plane`). One control plane for the whole run, a namespace per test.
//! Where the embedded API server (src/apiserver) or `admission::Admission` decide
//! something, the test compares their decision with the real server's: a difference is a
//! bug in ours, fixed there (or listed in docs/dev.md, "Test tiers", with the reason it
//! stays).

mod admission;
mod controller;
mod crds;
mod differential;
mod packaging;
mod teardown;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::{GroupVersionKind, Status};
use mcp_operator::dev::manifests;
use serde_json::Value;

use crate::support::{RealCluster, repo_path};

/// Field manager of what these tests apply.
const MANAGER: &str = "real-cluster-tests";

/// The CRDs as shipped in `crds/`.
fn shipped_crds() -> Vec<CustomResourceDefinition> {
    let docs = manifests::load(&[repo_path("crds")]).expect("crds/ readable");
    docs.into_iter()
        .map(|d| {
            serde_json::from_value(d.object)
                .unwrap_or_else(|e| panic!("{}: not a CRD: {e}", d.source.display()))
        })
        .collect()
}

/// Installs the shipped CRDs as a user does — `kubectl apply --server-side -f crds/`, so
/// the files are read as YAML 1.1, like kubectl and helm read them — and waits until each
/// is Established; returns them as the server has them. Idempotent: every test that needs
/// the CRDs calls it.
async fn install_crds(cluster: &RealCluster) -> Vec<CustomResourceDefinition> {
    let out = cluster
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(repo_path("crds"))
        .stdin(Stdio::null())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "the real API server refuses the shipped CRDs (kubectl apply --server-side -f crds/):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let names: Vec<String> = shipped_crds()
        .into_iter()
        .map(|crd| crd.metadata.name.expect("CRD name"))
        .collect();
    crate::support::eventually::eventually(
        "every shipped CRD Established (last seen: the first that is not)",
        Duration::from_secs(60),
        async || {
            let mut installed = Vec::new();
            for name in &names {
                let crd = api.get(name).await.expect("CRD readable");
                if condition(&crd, "Established") != Some("True") {
                    return Err(format!("{name}: {:?}", crd.status));
                }
                installed.push(crd);
            }
            Ok(installed)
        },
    )
    .await
}

/// The status of a CRD's condition `kind`.
fn condition<'a>(crd: &'a CustomResourceDefinition, kind: &str) -> Option<&'a str> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// Creates `object` in `namespace` as `kubectl create` does (`fieldValidation=Strict`).
/// Returns the stored object, or the server's Status.
async fn create_strict(
    client: &kube::Client,
    namespace: &str,
    object: &Value,
) -> Result<Value, Box<Status>> {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovery of {api_version} {kind}: {e}"));
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let uri = format!(
        "{prefix}/namespaces/{namespace}/{}?fieldValidation=Strict&fieldManager={MANAGER}",
        resource.plural
    );
    let mut object = object.clone();
    object["metadata"]["namespace"] = Value::from(namespace);
    let request = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&object).expect("JSON"))
        .expect("request");
    match client.request::<Value>(request).await {
        Ok(stored) => Ok(stored),
        Err(kube::Error::Api(status)) => Err(status),
        Err(other) => panic!("creating {kind} in {namespace}: {other}"),
    }
}

/// Every document under `path` (a file or a directory), with the file it came from.
fn documents(path: &Path) -> Vec<manifests::Document> {
    manifests::load(&[path.to_owned()]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}
