//! Errors of the embedded API server and their shape on the wire: every refusal becomes a
//! `meta.k8s.io/v1` `Status` with the `reason` and `code` the real API server uses, so
//! clients (kube, kubectl) classify them exactly as they would against a cluster.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::resources::ResourceType;
use crate::admission::{FieldError, FieldErrorKind};

/// Everything that can go wrong in the embedded API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// A request refused with a Kubernetes `Status` (404, 409, 422, ...).
    #[error("{} ({}): {}", .0.reason, .0.code, .0.message)]
    Status(Box<ApiStatus>),
    /// The listener could not be bound.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Where it was to be written.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The server's URL did not parse (cannot happen for `127.0.0.1:<port>`).
    #[error("invalid server URL: {0}")]
    Url(#[from] http::uri::InvalidUri),
    /// A kube client for the server could not be built.
    #[error("cannot build a kube client: {0}")]
    Client(#[from] kube::Error),
}

/// The fields of a failure `Status` object.
#[derive(Clone, Debug)]
pub struct ApiStatus {
    /// HTTP code.
    pub code: u16,
    /// `StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message, worded as the real server words it.
    pub message: String,
    /// `details` (name, group, kind, causes), if any.
    pub details: Option<Value>,
}

/// Result type of request handling.
pub type ApiResult<T> = Result<T, ApiServerError>;

impl ApiServerError {
    fn status(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Self {
        Self::Status(Box::new(ApiStatus {
            code,
            reason,
            message,
            details,
        }))
    }

    /// `secrets "x" not found` (404 NotFound).
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        let message = format!("{} {name:?} not found", rt.group_resource());
        Self::status(404, "NotFound", message, Some(details(rt, name)))
    }

    /// A path that names no served resource.
    pub fn no_route() -> Self {
        let message = "the server could not find the requested resource".to_owned();
        Self::status(404, "NotFound", message, None)
    }

    /// `secrets "x" already exists` (409 AlreadyExists).
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let message = format!("{} {name:?} already exists", rt.group_resource());
        Self::status(409, "AlreadyExists", message, Some(details(rt, name)))
    }

    /// Optimistic-concurrency failure (409 Conflict).
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            rt.group_resource()
        );
        Self::status(409, "Conflict", message, Some(details(rt, name)))
    }

    /// Server-side apply conflicts between field managers (409 Conflict with causes).
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager:?}"), "field": field})
            })
            .collect();
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with {manager:?}: {field}"))
            .collect();
        let plural = if conflicts.len() == 1 { "" } else { "s" };
        let message = format!(
            "Apply failed with {} conflict{plural}: {}",
            conflicts.len(),
            listed.join("\n")
        );
        // The API server's apply conflicts name no object in their details.
        let d = json!({"causes": causes});
        Self::status(409, "Conflict", message, Some(d))
    }

    /// `<Kind>.<group> "x" is invalid: ...` (422 Invalid), shaped like the real server:
    /// one error is shown bare, several as `[a, b]`; each becomes a `details.causes` entry.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let aggregate = match shown.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = errors.iter().map(cause).collect();
        let d = json!({"name": name, "group": group, "kind": kind, "causes": causes});
        Self::status(
            422,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {aggregate}"),
            Some(d),
        )
    }

    /// An invalid request option (`DeleteOptions`, `PatchOptions`, `ListOptions` of
    /// meta.k8s.io), 422 as the API server validates them: `<path>: <Kind>: <detail>`.
    pub fn invalid_options(
        options: &str,
        path: &str,
        kind: FieldErrorKind,
        value: &str,
        detail: &str,
    ) -> Self {
        let error = FieldError {
            path: path.to_owned(),
            kind,
            value: value.to_owned(),
            detail: detail.to_owned(),
        };
        Self::invalid(options, "meta.k8s.io", "", &[error])
    }

    /// A JSON patch whose operation failed (422 Invalid, no details), as the API server
    /// words it.
    pub fn patch_rejected() -> Self {
        Self::status(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request".into(),
            Some(json!({})),
        )
    }

    /// A delete precondition that does not hold (409 Conflict): `what` is `UID` or
    /// `ResourceVersion`, as `storage.NewInvalidObjError` words it.
    pub fn precondition_failed(
        rt: &ResourceType,
        name: &str,
        what: &str,
        wanted: &str,
        stored: &str,
    ) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} {name:?}: the {what} in the precondition ({wanted}) does not match the {what} in record ({stored}). The object might have been deleted and then recreated",
            rt.kind
        );
        let details = json!({"name": name, "group": rt.group, "kind": rt.kind});
        Self::status(409, "Conflict", message, Some(details))
    }

    /// A malformed request (400 BadRequest).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::status(400, "BadRequest", message.into(), None)
    }

    /// A watch or list from a compacted resourceVersion (410 Expired).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::status(410, "Expired", message.into(), None)
    }

    /// A verb the resource does not support (405 MethodNotAllowed).
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::status(405, "MethodNotAllowed", message.into(), None)
    }

    /// A patch type this resource does not take (415 UnsupportedMediaType): strategic
    /// merge on a custom resource.
    pub fn unsupported_media_type() -> Self {
        let message = "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";
        Self::status(415, "UnsupportedMediaType", message.into(), None)
    }

    /// A content type no patch has (415), worded as the API server's content negotiation
    /// words it.
    pub fn unknown_media_type() -> Self {
        Self::status(
            415,
            "UnsupportedMediaType",
            "415: Unsupported Media Type".into(),
            Some(json!({})),
        )
    }

    /// `Internal error occurred: ...` (500 InternalError).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::status(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            None,
        )
    }

    /// Throttling (429 TooManyRequests); the response also carries `Retry-After`.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        let details = json!({"retryAfterSeconds": retry_after_seconds});
        let message = "Too many requests, please try again later.".to_owned();
        Self::status(429, "TooManyRequests", message, Some(details))
    }

    /// A request without valid credentials (401 Unauthorized).
    pub fn unauthorized() -> Self {
        Self::status(401, "Unauthorized", "Unauthorized".to_owned(), None)
    }

    /// An authorization refusal (403 Forbidden): `<resource>.<group> "name" is
    /// forbidden: <why>`, or without the name for collections, as `NewForbidden` words it.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        let message = if name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} {name:?} is forbidden: {why}")
        };
        let mut details = json!({"group": group, "kind": resource});
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        Self::status(403, "Forbidden", message, Some(details))
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let status = match self {
            Self::Status(status) => status.as_ref().clone(),
            other => ApiStatus {
                code: 500,
                reason: "InternalError",
                message: other.to_string(),
                details: None,
            },
        };
        let mut value = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": status.message,
            "reason": status.reason,
            "code": status.code,
        });
        if let Some(mut details) = status.details {
            // Go leaves empty strings out (`omitempty`): a core kind's details carry no
            // `group`, a collection's no `name`.
            if let Some(map) = details.as_object_mut() {
                map.retain(|_, v| v.as_str() != Some(""));
            }
            value["details"] = details;
        }
        value
    }

    /// The HTTP code of this error.
    pub fn code(&self) -> u16 {
        match self {
            Self::Status(status) => status.code,
            _ => 500,
        }
    }
}

fn details(rt: &ResourceType, name: &str) -> Value {
    json!({"name": name, "group": rt.group, "kind": rt.plural})
}

/// One `details.causes` entry: the message is the error without its field prefix, as
/// `field.Error.ErrorBody()` renders it.
fn cause(error: &FieldError) -> Value {
    let reason = match error.kind {
        FieldErrorKind::Required => "FieldValueRequired",
        FieldErrorKind::Invalid | FieldErrorKind::Unknown => "FieldValueInvalid",
        FieldErrorKind::Unsupported => "FieldValueNotSupported",
        FieldErrorKind::TooLong => "FieldValueTooLong",
        FieldErrorKind::TooMany => "FieldValueTooMany",
        FieldErrorKind::Duplicate => "FieldValueDuplicate",
        FieldErrorKind::Forbidden => "FieldValueForbidden",
    };
    let full = error.to_string();
    let prefix = format!("{}: ", error.path);
    let message = full.strip_prefix(&prefix).unwrap_or(&full).to_owned();
    json!({"reason": reason, "message": message, "field": error.path})
}

impl IntoResponse for ApiServerError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let status = self.to_status();
        // The real server sends throttling delays both in the Status and as a header,
        // which is what clients' retry policies read.
        let retry_after = status
            .pointer("/details/retryAfterSeconds")
            .and_then(Value::as_u64);
        let mut response = (code, axum::Json(status)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", http::HeaderValue::from(seconds));
        }
        response
    }
}
