//! One handler per verb on a resource path: `get`, `list`, `watch`, `create`, `update`,
//! `patch` (server-side apply, merge, JSON, strategic merge), `delete` and
//! `delete_collection`, plus the option parsing they share (`ListOptions`,
//! `PatchOptions`, watch options, `DeleteOptions` preconditions, the field manager).
//! `handlers` resolves the path into a [`Target`] and picks the verb.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::admission::{FieldError, FieldErrorKind};

use super::{
    apply::{self, ApplyRequest},
    error::{ApiResult, ApiServerError},
    gc::Propagation,
    meta::{self, Subresource},
    ops::ListOptions,
    patch::{PatchType, patched},
    resources::ResourceType,
    selectors::{FieldSelector, LabelSelector},
    state::State,
    table,
    watch::WatchRequest,
};

/// Query parameters.
pub type Params = HashMap<String, String>;

/// What a resource path addresses.
pub struct Target {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Subresource,
}

impl Target {
    /// The namespace, `""` for cluster-scoped targets.
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
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

/// What a verb handler reads from the request besides the target.
pub struct Call<'a> {
    pub params: &'a Params,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Call<'_> {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Whether the client asked for a server-side `Table` of `rt`.
    fn wants_table(&self, rt: &ResourceType) -> bool {
        table::wanted(self.header("accept"), rt)
    }

    fn manager(&self) -> String {
        manager(self.params, self.headers)
    }
}

/// `GET` a collection with `watch=true`: the changes since `resourceVersion`, streamed.
pub fn watch(state: &Arc<State>, target: Target, call: &Call<'_>) -> ApiResult<Response> {
    let params = call.params;
    validate_watch_options(params)?;
    let since = params.get("resourceVersion").filter(|v| !v.is_empty());
    let since = since
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiServerError::bad_request(format!("invalid resourceVersion {v:?}")))
        })
        .transpose()?;
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(state.options.max_watch, Duration::from_secs);
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let table = call.wants_table(&target.rt);
    super::watch::watch(
        state,
        WatchRequest {
            rt: target.rt,
            namespace: target.namespace,
            options: list_options(params)?,
            since,
            timeout,
            bookmarks,
            table,
        },
    )
}

/// `GET` a collection: a (paged, filtered) list, or its `Table`.
pub fn list(state: &State, target: &Target, call: &Call<'_>) -> ApiResult<Response> {
    let rt = &target.rt;
    let list = state
        .lock()
        .list(rt, target.namespace.as_deref(), &list_options(call.params)?)?;
    if call.wants_table(rt) {
        let items = list["items"].as_array().cloned().unwrap_or_default();
        return ok(
            StatusCode::OK,
            table::render(rt, &items, list["metadata"].clone()),
        );
    }
    ok(StatusCode::OK, list)
}

/// `GET` one object, or its `Table`.
pub fn get(state: &State, target: &Target, name: &str, call: &Call<'_>) -> ApiResult<Response> {
    let rt = &target.rt;
    let object = state.lock().get(rt, target.ns(), name)?;
    if call.wants_table(rt) {
        let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion")});
        return ok(StatusCode::OK, table::render(rt, &[object], metadata));
    }
    ok(StatusCode::OK, object)
}

/// `POST` to a collection.
pub fn create(state: &State, target: &Target, call: &Call<'_>) -> ApiResult<Response> {
    let manager = call.manager();
    ok(
        StatusCode::CREATED,
        state
            .lock()
            .create(&target.rt, target.ns(), json_body(call.body)?, &manager)?,
    )
}

/// `PUT` an object (or its `/status`).
pub fn update(state: &State, target: &Target, name: &str, call: &Call<'_>) -> ApiResult<Response> {
    let manager = call.manager();
    ok(
        StatusCode::OK,
        state.lock().update(
            &target.rt,
            target.ns(),
            name,
            json_body(call.body)?,
            target.sub,
            &manager,
        )?,
    )
}

/// `PATCH` an object (or its `/status`): server-side apply, or merge, JSON or strategic
/// merge patch.
pub fn patch(state: &State, target: &Target, name: &str, call: &Call<'_>) -> ApiResult<Response> {
    let manager = call.manager();
    let (rt, ns) = (&target.rt, target.ns());
    let patch_type = PatchType::from_content_type(call.header("content-type"))?;
    validate_patch_options(patch_type, call.params)?;
    let mut inner = state.lock();
    match patch_type {
        PatchType::Apply => {
            let force = call.param("force") == Some("true");
            let existed = inner.get(rt, ns, name).is_ok();
            let object = inner.apply(
                rt,
                ns,
                name,
                apply::parse_body(call.body)?,
                &ApplyRequest {
                    manager: &manager,
                    force,
                    sub: target.sub,
                },
            )?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            ok(code, object)
        }
        PatchType::Strategic if inner.admission.serves(&rt.api_version(), &rt.kind) => {
            // Custom resources have no patch merge keys: the real server refuses too.
            Err(ApiServerError::unsupported_media_type())
        }
        kind => {
            let old = inner.get(rt, ns, name)?;
            let new = patched(kind, &old, call.body)?;
            ok(
                StatusCode::OK,
                inner.update(rt, ns, name, new, target.sub, &manager)?,
            )
        }
    }
}

/// `DELETE` an object, with `DeleteOptions` (propagation, preconditions) from the body
/// or the query.
pub fn delete(state: &State, target: &Target, name: &str, call: &Call<'_>) -> ApiResult<Response> {
    let (rt, ns) = (&target.rt, target.ns());
    let options: Value = if call.body.is_empty() {
        json!({})
    } else {
        json_body(call.body)?
    };
    let policy = call
        .param("propagationPolicy")
        .or_else(|| options.get("propagationPolicy").and_then(Value::as_str))
        .unwrap_or_default();
    let propagation = Propagation::parse(policy)?;
    let mut inner = state.lock();
    check_preconditions(&inner.get(rt, ns, name)?, &options, rt, name)?;
    ok(StatusCode::OK, inner.delete(rt, ns, name, propagation)?)
}

/// `DELETE` a collection: every listed object, best effort; answers the list.
pub fn delete_collection(state: &State, target: &Target, call: &Call<'_>) -> ApiResult<Response> {
    let rt = &target.rt;
    let mut inner = state.lock();
    let list = inner.list(rt, target.namespace.as_deref(), &list_options(call.params)?)?;
    let policy = Propagation::parse(call.param("propagationPolicy").unwrap_or_default())?;
    for item in list["items"].as_array().into_iter().flatten() {
        let item_ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let _ = inner.delete(rt, item_ns, meta::name_of(item), policy);
    }
    ok(StatusCode::OK, list)
}
