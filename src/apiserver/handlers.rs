//! HTTP routing: resource paths (`/api/v1/...`, `/apis/<group>/<version>/...`, with or
//! without `namespaces/<ns>/`, with an optional `/status`) are resolved against the
//! registry and dispatched to the verbs by method and query.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State as AxumState},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use serde_json::{Value, json};

use crate::admission::{FieldError, FieldErrorKind};

use super::{
    apply::{self, ApplyRequest},
    discovery,
    error::{ApiResult, ApiServerError},
    gc::Propagation,
    meta::Subresource,
    openapi,
    ops::ListOptions,
    patch::{self, PatchType},
    resources::ResourceType,
    selectors::{FieldSelector, LabelSelector},
    state::State,
    table, tokens,
    watch::{self, WatchRequest},
};

type Params = HashMap<String, String>;

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

/// What a resource path addresses.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Subresource,
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
    respond(resource(
        &state,
        resolve(&state, "", "v1", &rest),
        method,
        &headers,
        &params,
        &body,
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
    respond(resource(
        &state,
        resolve(&state, &group, &version, &rest),
        method,
        &headers,
        &params,
        &body,
    ))
}

fn respond(result: ApiResult<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiServerError::bad_request(format!("error decoding request body: {e}")))
}

fn list_options(params: &Params) -> ApiResult<ListOptions> {
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    Ok(ListOptions {
        labels: LabelSelector::parse(param("labelSelector"))?,
        fields: FieldSelector::parse(param("fieldSelector"))?,
        limit: params.get("limit").and_then(|l| l.parse().ok()),
        continue_token: params.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

/// `PatchOptions` as the API server validates them: an apply patch needs a field
/// manager; `force` is for apply patches only.
fn validate_patch_options(patch_type: PatchType, params: &Params) -> ApiResult<()> {
    let manager = params.get("fieldManager").filter(|m| !m.is_empty());
    let force = params.get("force").is_some_and(|f| f == "true");
    match patch_type {
        PatchType::Apply if manager.is_none() => Err(ApiServerError::invalid_options(
            "PatchOptions",
            "fieldManager",
            FieldErrorKind::Required,
            "",
            "is required for apply patch",
        )),
        PatchType::Apply => Ok(()),
        _ if force => Err(ApiServerError::invalid_options(
            "PatchOptions",
            "force",
            FieldErrorKind::Forbidden,
            "",
            "may not be specified for non-apply patch",
        )),
        _ => Ok(()),
    }
}

/// Watch `ListOptions` as kube-apiserver v1.33 validates them with the WatchList feature
/// gate off (its default there): `sendInitialEvents` is refused, and
/// `resourceVersionMatch` needs it.
fn validate_watch_options(params: &Params) -> ApiResult<()> {
    let forbidden = |path: &str, detail: &str| FieldError {
        path: path.to_owned(),
        kind: FieldErrorKind::Forbidden,
        value: String::new(),
        detail: detail.to_owned(),
    };
    let matching = params.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let mut errors = Vec::new();
    if params.contains_key("sendInitialEvents") {
        if matching.map(String::as_str) != Some("NotOlderThan") {
            errors.push(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        errors.push(forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    } else if matching.is_some() {
        errors.push(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiServerError::invalid(
        "ListOptions",
        "meta.k8s.io",
        "",
        &errors,
    ))
}

/// `DeleteOptions.preconditions` (uid, resourceVersion) against the stored object.
fn check_preconditions(
    stored: &Value,
    options: &Value,
    rt: &ResourceType,
    name: &str,
) -> ApiResult<()> {
    for (key, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let Some(wanted) = options
            .pointer(&format!("/preconditions/{key}"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let have = stored
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if wanted != have {
            return Err(ApiServerError::precondition_failed(
                rt, name, what, wanted, have,
            ));
        }
    }
    Ok(())
}

/// The field manager: `fieldManager`, else the User-Agent's program name, as Kubernetes
/// derives it.
fn manager(params: &Params, headers: &HeaderMap) -> String {
    if let Some(m) = params.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    agent.split('/').next().unwrap_or("unknown").to_owned()
}

fn ok(code: StatusCode, object: Value) -> ApiResult<Response> {
    Ok((code, Json(object)).into_response())
}

fn resource(
    state: &Arc<State>,
    target: ApiResult<Target>,
    method: Method,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> ApiResult<Response> {
    let Target {
        rt,
        namespace,
        name,
        sub,
    } = target?;
    let ns = namespace.clone().unwrap_or_default();
    let manager = manager(params, headers);
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match (method, name) {
        (Method::GET, None)
            if matches!(params.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            validate_watch_options(params)?;
            let since = params.get("resourceVersion").filter(|v| !v.is_empty());
            let since = since
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        ApiServerError::bad_request(format!("invalid resourceVersion {v:?}"))
                    })
                })
                .transpose()?;
            let timeout = params
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map_or(state.options.max_watch, Duration::from_secs);
            let bookmarks = params
                .get("allowWatchBookmarks")
                .is_some_and(|v| v == "true");
            let table = table::wanted(accept, &rt);
            watch::watch(
                state,
                WatchRequest {
                    rt,
                    namespace,
                    options: list_options(params)?,
                    since,
                    timeout,
                    bookmarks,
                    table,
                },
            )
        }
        (Method::GET, None) => {
            let list = state
                .lock()
                .list(&rt, namespace.as_deref(), &list_options(params)?)?;
            if table::wanted(accept, &rt) {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                return ok(
                    StatusCode::OK,
                    table::render(&rt, &items, list["metadata"].clone()),
                );
            }
            ok(StatusCode::OK, list)
        }
        (Method::GET, Some(name)) => {
            let object = state.lock().get(&rt, &ns, &name)?;
            if table::wanted(accept, &rt) {
                let metadata =
                    json!({"resourceVersion": object.pointer("/metadata/resourceVersion")});
                return ok(StatusCode::OK, table::render(&rt, &[object], metadata));
            }
            ok(StatusCode::OK, object)
        }
        (Method::POST, None) => ok(
            StatusCode::CREATED,
            state.lock().create(&rt, &ns, json_body(body)?, &manager)?,
        ),
        (Method::PUT, Some(name)) => ok(
            StatusCode::OK,
            state
                .lock()
                .update(&rt, &ns, &name, json_body(body)?, sub, &manager)?,
        ),
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_type = PatchType::from_content_type(content_type)?;
            validate_patch_options(patch_type, params)?;
            let mut inner = state.lock();
            match patch_type {
                PatchType::Apply => {
                    let force = params.get("force").is_some_and(|f| f == "true");
                    let existed = inner.get(&rt, &ns, &name).is_ok();
                    let object = inner.apply(
                        &rt,
                        &ns,
                        &name,
                        apply::parse_body(body)?,
                        &ApplyRequest {
                            manager: &manager,
                            force,
                            sub,
                        },
                    )?;
                    ok(
                        if existed {
                            StatusCode::OK
                        } else {
                            StatusCode::CREATED
                        },
                        object,
                    )
                }
                PatchType::Strategic if inner.admission.serves(&rt.api_version(), &rt.kind) => {
                    // Custom resources have no patch merge keys: the real server refuses too.
                    Err(ApiServerError::unsupported_media_type())
                }
                kind => {
                    let old = inner.get(&rt, &ns, &name)?;
                    let new = patch::patched(kind, &old, body)?;
                    ok(
                        StatusCode::OK,
                        inner.update(&rt, &ns, &name, new, sub, &manager)?,
                    )
                }
            }
        }
        (Method::DELETE, Some(name)) => {
            let options: Value = if body.is_empty() {
                json!({})
            } else {
                json_body(body)?
            };
            let policy = params
                .get("propagationPolicy")
                .map(String::as_str)
                .or_else(|| options.get("propagationPolicy").and_then(Value::as_str))
                .unwrap_or_default();
            let propagation = Propagation::parse(policy)?;
            let mut inner = state.lock();
            check_preconditions(&inner.get(&rt, &ns, &name)?, &options, &rt, &name)?;
            ok(StatusCode::OK, inner.delete(&rt, &ns, &name, propagation)?)
        }
        (Method::DELETE, None) => {
            let mut inner = state.lock();
            let list = inner.list(&rt, namespace.as_deref(), &list_options(params)?)?;
            let policy = Propagation::parse(
                params
                    .get("propagationPolicy")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )?;
            for item in list["items"].as_array().into_iter().flatten() {
                let item_ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let _ = inner.delete(&rt, item_ns, super::meta::name_of(item), policy);
            }
            ok(StatusCode::OK, list)
        }
        (method, _) => Err(ApiServerError::method_not_allowed(format!(
            "{method} is not supported on {}",
            rt.group_resource()
        ))),
    }
}
