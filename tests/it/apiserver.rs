//! The embedded API server (src/apiserver) driven by the real kube client and kubectl.
//! Each test names the Kubernetes behaviour it checks; this file holds shared helpers.

mod apply;
mod deletion;
mod events;
mod faults;
mod kubectl;
mod objects;
mod rbac;
mod scale;
mod tokens;
mod watch;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::{WatchStreamExt, watcher},
};
use mcp_operator::{
    api::{McpServer, crd},
    apiserver::{ApiServer, ApiServerHandle, ApiServerOptions},
};
use serde_json::{Value, json};

async fn start(options: ApiServerOptions) -> (ApiServerHandle, Client) {
    let server = ApiServer::start(options).await.expect("server starts");
    let client = server.client().expect("client");
    (server, client)
}

async fn start_with_crds() -> (ApiServerHandle, Client) {
    let (server, client) = start(ApiServerOptions::default()).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crd::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD created");
    }
    (server, client)
}

fn api_error(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other}"),
    }
}

fn stdio_server(name: &str) -> McpServer {
    serde_json::from_value(json!({
        "apiVersion": "mcp-operator.dev/v1alpha1",
        "kind": "McpServer",
        "metadata": {"name": name},
        "spec": {"transport": "Stdio", "container": {"image": "node:22-alpine", "command": ["npx", "server-memory"]}},
    }))
    .expect("valid McpServer")
}

fn secret(name: &str, data: Value) -> Secret {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}))
        .expect("valid Secret")
}
