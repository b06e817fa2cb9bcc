//! HTTP routing: resource paths (`/api/v1/...`, `/apis/<group>/<version>/...`, with or
//! without `namespaces/<ns>/`, with an optional `/status`) are resolved against the
//! registry and dispatched by method, name and `watch` to one handler per verb in
//! `verbs`; TokenRequest and TokenReview go to `tokens`, discovery and OpenAPI to
//! `discovery` and `openapi`.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State as AxumState},
    http::{HeaderMap, Method},
    response::{IntoResponse, Response},
    routing::{any, get},
};

use super::{
    discovery,
    error::{ApiResult, ApiServerError},
    meta::Subresource,
    openapi,
    state::State,
    tokens,
    verbs::{self, Call, Params, Target},
};

/// The router of the whole server.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::api_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::api_groups))
        .route("/apis/{group}", get(discovery::api_group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::root))
        .route("/openapi/v3/{*rest}", get(openapi::group_version))
        .route("/api/v1/{*rest}", any(core_resource))
        .route("/apis/{group}/{version}/{*rest}", any(group_resource))
        .fallback(|| async { ApiServerError::no_route() })
        .with_state(state)
}

fn resolve(state: &State, group: &str, version: &str, rest: &str) -> ApiResult<Target> {
    let registry = state.lock().registry.clone();
    let mut segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut namespace = None;
    if segments.len() >= 3
        && segments[0] == "namespaces"
        && registry
            .find(group, version, segments[2])
            .is_some_and(|rt| rt.namespaced)
    {
        namespace = Some(segments[1].to_owned());
        segments.drain(..2);
    }
    let rt = segments
        .first()
        .and_then(|plural| registry.find(group, version, plural))
        .ok_or_else(ApiServerError::no_route)?
        .clone();
    let sub = match segments.get(2) {
        None => Subresource::Main,
        Some(&"status") if rt.status && segments.len() == 3 => Subresource::Status,
        Some(_) => return Err(ApiServerError::no_route()),
    };
    if rt.namespaced && namespace.is_none() && segments.len() > 1 {
        return Err(ApiServerError::no_route());
    }
    Ok(Target {
        rt,
        namespace,
        name: segments.get(1).map(|s| (*s).to_owned()),
        sub,
    })
}

async fn core_resource(
    AxumState(state): AxumState<Arc<State>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    if let (&Method::POST, ["namespaces", ns, "serviceaccounts", name, "token"]) =
        (&method, rest.split('/').collect::<Vec<_>>().as_slice())
    {
        return respond(tokens::token_request(&state, ns, name, &body));
    }
    let call = Call {
        params: &params,
        headers: &headers,
        body: &body,
    };
    respond(resource(
        &state,
        resolve(&state, "", "v1", &rest),
        method,
        &call,
    ))
}

async fn group_resource(
    AxumState(state): AxumState<Arc<State>>,
    Path((group, version, rest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    if (group.as_str(), version.as_str(), rest.as_str())
        == ("authentication.k8s.io", "v1", "tokenreviews")
    {
        return respond(match method {
            Method::POST => tokens::token_review(&state, &body),
            other => Err(ApiServerError::method_not_allowed(format!(
                "{other} is not supported on tokenreviews.authentication.k8s.io"
            ))),
        });
    }
    let call = Call {
        params: &params,
        headers: &headers,
        body: &body,
    };
    respond(resource(
        &state,
        resolve(&state, &group, &version, &rest),
        method,
        &call,
    ))
}

fn respond(result: ApiResult<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Dispatches a resource request to its verb by method, name and `watch`.
fn resource(
    state: &Arc<State>,
    target: ApiResult<Target>,
    method: Method,
    call: &Call<'_>,
) -> ApiResult<Response> {
    let target = target?;
    let watching = matches!(call.param("watch"), Some("true" | "1"));
    match (method, target.name.clone()) {
        (Method::GET, None) if watching => verbs::watch(state, target, call),
        (Method::GET, None) => verbs::list(state, &target, call),
        (Method::GET, Some(name)) => verbs::get(state, &target, &name, call),
        (Method::POST, None) => verbs::create(state, &target, call),
        (Method::PUT, Some(name)) => verbs::update(state, &target, &name, call),
        (Method::PATCH, Some(name)) => verbs::patch(state, &target, &name, call),
        (Method::DELETE, Some(name)) => verbs::delete(state, &target, &name, call),
        (Method::DELETE, None) => verbs::delete_collection(state, &target, call),
        (method, _) => Err(ApiServerError::method_not_allowed(format!(
            "{method} is not supported on {}",
            target.rt.group_resource()
        ))),
    }
}
