//! A minimal OpenAPI v3 surface: `/openapi/v3` lists one document per group-version, and
//! each document declares, per kind, a PATCH operation accepting `fieldValidation`. That
//! is what kubectl checks before it leaves validation to the server (`--validate=strict`,
//! its default) instead of downloading the protobuf OpenAPI v2 schema, which this server
//! does not serve. Schemas themselves are not published yet (`kubectl explain` is out).
//! `/openapi/v2` answers JSON requests with a valid, empty Swagger document (for clients
//! that only check it parses) and protobuf-only requests with 406, so clients fall back.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    state::State,
};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v2`: an empty Swagger 2.0 document in JSON; 406 for protobuf-only clients.
pub async fn v2(headers: axum::http::HeaderMap) -> Response {
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !(accept.contains("json") || accept.contains("*/*")) {
        return (
            StatusCode::NOT_ACCEPTABLE,
            Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "only application/json is served", "reason": "NotAcceptable", "code": 406})),
        )
            .into_response();
    }
    Json(json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes (mcp-operator embedded API server)", "version": "v1.33.0"},
        "paths": {},
        "definitions": {},
    }))
    .into_response()
}

/// `/openapi/v3`: the document of every served group-version.
pub async fn root(AxumState(state): AxumState<Arc<State>>) -> Json<Value> {
    let inner = state.lock();
    let revision = inner.store.revision();
    let mut paths = Map::new();
    for rt in inner.registry.all() {
        let path = gv_path(&rt.group, &rt.version);
        let url = format!("/openapi/v3/{path}?hash={revision:016X}");
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    Json(json!({"paths": paths}))
}

/// `/openapi/v3/<api/v1 | apis/group/version>`: PATCH operations with `fieldValidation`.
pub async fn group_version(
    AxumState(state): AxumState<Arc<State>>,
    Path(rest): Path<String>,
) -> ApiResult<Json<Value>> {
    let segments: Vec<&str> = rest.split('/').collect();
    let (group, version) = match segments.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return Err(ApiServerError::no_route()),
    };
    let inner = state.lock();
    let mut paths = Map::new();
    for rt in inner
        .registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let scope = if rt.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let path = format!("/{}/{scope}{}/{{name}}", gv_path(group, version), rt.plural);
        let patch = json!({
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "force", "in": "query", "schema": {"type": "boolean"}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": patch}));
    }
    if paths.is_empty() {
        return Err(ApiServerError::no_route());
    }
    Ok(Json(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (mcp-operator embedded API server)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })))
}
