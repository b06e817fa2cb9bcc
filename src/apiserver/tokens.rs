//! ServiceAccount tokens as the real server issues and checks them: TokenRequest
//! (`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`, what kubelet does for a
//! projected token) and TokenReview (`POST /apis/authentication.k8s.io/v1/tokenreviews`,
//! what a webhook or a sidecar calls to check a token it was shown). The store of issued
//! tokens is `credentials::IssuedTokens`, held in the shared `State`.
//!
//! Issued tokens are JWT-shaped (`header.payload.signature`, base64url) so that clients
//! can read `aud` and `exp` as they would from a real token, but they are not signed: the
//! server remembers every token it issued and validates by lookup (audience, expiry, and
//! that the ServiceAccount still exists with the uid it had). A token whose audiences
//! include the API server's ([`API_AUDIENCE`], the default) also authenticates requests
//! to this server, as a projected in-cluster token does; one issued only for another
//! audience (e.g. `mcp-operator.dev`) does not.
//!
//! Deviations: no signing keys or `/openid/v1/jwks`; `boundObjectRef` is ignored;
//! `expirationSeconds` must be at least 600 through the API, as in Kubernetes, while
//! [`ApiServerHandle::issue_service_account_token`](super::ApiServerHandle::issue_service_account_token)
//! takes any lifetime (tests of expiry).

use std::time::Duration;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    credentials::API_AUDIENCE,
    error::{ApiResult, ApiServerError},
    state::State,
};
use crate::admission::{FieldError, FieldErrorKind};

/// Lifetime of a TokenRequest without `expirationSeconds`.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime the API accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime the API accepts (2^32 s, as Kubernetes).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn invalid(kind: &str, name: &str, path: &str, value: String, detail: &str) -> ApiServerError {
    ApiServerError::invalid(
        kind,
        "authentication.k8s.io",
        name,
        &[FieldError {
            path: path.to_owned(),
            kind: FieldErrorKind::Invalid,
            value,
            detail: detail.to_owned(),
        }],
    )
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`.
pub fn token_request(
    state: &State,
    namespace: &str,
    name: &str,
    body: &[u8],
) -> ApiResult<Response> {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiServerError::bad_request(format!("error decoding request body: {e}")))?
    };
    let uid = {
        let inner = state.lock();
        let rt = inner
            .registry
            .find("", "v1", "serviceaccounts")
            .cloned()
            .ok_or_else(ApiServerError::no_route)?;
        let sa = inner.get(&rt, namespace, name)?;
        sa.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "TokenRequest",
            name,
            "spec.expirationSeconds",
            seconds.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "TokenRequest",
            name,
            "spec.expirationSeconds",
            seconds.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences = string_list(spec.get("audiences"));
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_owned());
    }
    let (token, expires) = state.issued.issue(
        namespace,
        name,
        uid,
        audiences.clone(),
        Duration::from_secs(seconds.unsigned_abs()),
    );
    let mut spec_out = spec;
    spec_out["audiences"] = json!(audiences);
    spec_out["expirationSeconds"] = json!(seconds);
    let response = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": super::meta::now()},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
    });
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: never an error for a bad token,
/// an unauthenticated status instead.
pub fn token_review(state: &State, body: &[u8]) -> ApiResult<Response> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| ApiServerError::bad_request(format!("error decoding request body: {e}")))?;
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = spec
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if token.is_empty() {
        return Err(invalid(
            "TokenReview",
            "",
            "spec.token",
            "\"\"".into(),
            "token must not be empty",
        ));
    }
    state.issued.count_review();
    let mut audiences = string_list(spec.get("audiences"));
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_owned());
    }
    // Tokens minted by the handle for RBAC tests authenticate for the API audience only.
    let legacy = state
        .tokens
        .user_of(&token)
        .filter(|_| audiences.iter().any(|a| a == API_AUDIENCE));
    let status = match (
        legacy,
        state.issued.check(
            |ns, name| state.service_account_uid(ns, name),
            &token,
            &audiences,
        ),
    ) {
        (Some(user), _) => json!({
            "authenticated": true,
            "user": {"username": user.name, "groups": user.groups},
            "audiences": [API_AUDIENCE],
        }),
        (None, Ok((issued, matched))) => json!({
            "authenticated": true,
            "user": {
                "username": issued.user.name,
                "uid": issued.sa_uid.unwrap_or_default(),
                "groups": issued.user.groups,
                "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={}", issued.jti)]},
            },
            "audiences": matched,
        }),
        (None, Err(why)) => json!({"user": {}, "error": format!("[invalid bearer token, {why}]")}),
    };
    let response = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    });
    Ok((StatusCode::CREATED, Json(response)).into_response())
}
