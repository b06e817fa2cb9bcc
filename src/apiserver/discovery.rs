//! Discovery as client-go and kube read it: `/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/<group>`, `/apis/<group>/<version>` (plain, unaggregated documents: clients
//! that ask for aggregated discovery fall back to these when the response is plain JSON).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State as AxumState},
};
use serde_json::{Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    resources::{ResourceType, VERBS},
    state::State,
};

/// `/version`: a v1.33 server, so clients pick matching API behaviour.
pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-mcp-operator-dev", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
    }))
}

/// `/api`.
pub async fn api_versions() -> Json<Value> {
    Json(
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
    )
}

fn group_document(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or_default()})
}

/// `/apis`.
pub async fn api_groups(AxumState(state): AxumState<Arc<State>>) -> Json<Value> {
    let groups = state.lock().registry.groups();
    let groups: Vec<Value> = groups.iter().map(|(g, vs)| group_document(g, vs)).collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `/apis/<group>`.
pub async fn api_group(
    AxumState(state): AxumState<Arc<State>>,
    Path(group): Path<String>,
) -> ApiResult<Json<Value>> {
    let groups = state.lock().registry.groups();
    let (name, versions) = groups
        .iter()
        .find(|(g, _)| *g == group)
        .ok_or_else(ApiServerError::no_route)?;
    let mut document = group_document(name, versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Ok(Json(document))
}

fn resource_entries(rt: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind, "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        main["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        main["categories"] = json!(rt.categories);
    }
    let mut entries = vec![main];
    if rt.status {
        entries.push(json!({"name": format!("{}/status", rt.plural), "singularName": "", "namespaced": rt.namespaced, "kind": rt.kind, "verbs": ["get", "patch", "update"]}));
    }
    entries
}

fn resource_list(state: &State, group: &str, version: &str) -> ApiResult<Value> {
    let inner = state.lock();
    let types: Vec<&ResourceType> = inner
        .registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return Err(ApiServerError::no_route());
    }
    let resources: Vec<Value> = types.into_iter().flat_map(resource_entries).collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `/api/v1`.
pub async fn core_resources(AxumState(state): AxumState<Arc<State>>) -> ApiResult<Json<Value>> {
    resource_list(&state, "", "v1").map(Json)
}

/// `/apis/<group>/<version>`.
pub async fn group_resources(
    AxumState(state): AxumState<Arc<State>>,
    Path((group, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    resource_list(&state, &group, &version).map(Json)
}
