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

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::{GroupVersionKind, Status};
use mcp_operator::dev::manifests;
use serde_json::Value;

use crate::support::control_plane::{self, crd_condition as condition};
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

/// Installs the shipped CRDs and waits until each is Established
/// ([`support::control_plane::install_shipped_crds`](crate::support::control_plane::install_shipped_crds)).
async fn install_crds(cluster: &RealCluster) -> Vec<CustomResourceDefinition> {
    control_plane::install_shipped_crds(&cluster.kubeconfig, &cluster.client).await
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
