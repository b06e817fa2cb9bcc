//! ServiceAccount tokens as the real server issues and checks them: TokenRequest
//! (`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`, what kubelet does for a
//! projected token) and TokenReview (`POST /apis/authentication.k8s.io/v1/tokenreviews`,
//! what a webhook or a sidecar calls to check a token it was shown).
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

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    error::{ApiResult, ApiServerError},
    rbac::UserInfo,
    server::State,
};
use crate::admission::{FieldError, FieldErrorKind};

/// The API server's own audience: the default of TokenRequest and TokenReview.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// The `iss` claim of issued tokens.
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Lifetime of a TokenRequest without `expirationSeconds`.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime the API accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime the API accepts (2^32 s, as Kubernetes).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// One token the server issued.
#[derive(Clone, Debug)]
struct Issued {
    user: UserInfo,
    namespace: String,
    name: String,
    /// The ServiceAccount's uid when it existed at issue time (then it must still).
    sa_uid: Option<String>,
    audiences: Vec<String>,
    /// Unix seconds.
    expires: i64,
    jti: String,
}

/// Every token issued, and how often TokenReview was called.
#[derive(Default)]
pub struct IssuedTokens {
    tokens: Mutex<HashMap<String, Issued>>,
    reviews: AtomicU64,
}

impl IssuedTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// TokenReview requests served so far.
    pub fn reviews(&self) -> u64 {
        self.reviews.load(Ordering::Relaxed)
    }

    /// Issues a token for ServiceAccount `namespace/name`.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        sa_uid: Option<String>,
        audiences: Vec<String>,
        lifetime: Duration,
    ) -> (String, i64) {
        let now = unix_now();
        let expires = now + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let jti = uuid::Uuid::new_v4().to_string();
        let header = json!({"alg": "RS256", "kid": "mcp-operator-dev"});
        let mut sa = json!({"name": name});
        if let Some(uid) = &sa_uid {
            sa["uid"] = json!(uid);
        }
        let claims = json!({
            "aud": audiences,
            "exp": expires,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": jti,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": sa},
        });
        let signature = uuid::Uuid::new_v4();
        let token = format!(
            "{}.{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes()),
            base64url(signature.as_bytes()),
        );
        self.lock().insert(
            token.clone(),
            Issued {
                user: UserInfo::service_account(namespace, name),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                sa_uid,
                audiences,
                expires,
                jti,
            },
        );
        (token, expires)
    }

    /// The user of an issued token valid for one of `audiences` (the intersection is
    /// returned too), or why not.
    fn check(
        &self,
        state: &State,
        token: &str,
        audiences: &[String],
    ) -> Result<(Issued, Vec<String>), String> {
        let issued = self
            .lock()
            .get(token)
            .cloned()
            .ok_or_else(|| "token not issued by this server".to_owned())?;
        if issued.expires <= unix_now() {
            return Err("service account token has expired".into());
        }
        let matched: Vec<String> = audiences
            .iter()
            .filter(|a| issued.audiences.contains(a))
            .cloned()
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "token audiences {:?} is invalid for the target audiences {:?}",
                issued.audiences, audiences
            ));
        }
        if let Some(uid) = &issued.sa_uid {
            let current = service_account_uid(state, &issued.namespace, &issued.name);
            if current.as_deref() != Some(uid.as_str()) {
                return Err(format!(
                    "service account {}/{} has been deleted",
                    issued.namespace, issued.name
                ));
            }
        }
        Ok((issued, matched))
    }

    /// The user an issued token authenticates as when presented to this server.
    pub fn authenticate(&self, state: &State, token: &str) -> Option<UserInfo> {
        self.check(state, token, &[API_AUDIENCE.to_owned()])
            .ok()
            .map(|(issued, _)| issued.user)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn service_account_uid(state: &State, namespace: &str, name: &str) -> Option<String> {
    let inner = state.lock();
    let rt = inner.registry.find("", "v1", "serviceaccounts")?.clone();
    let sa = inner.get(&rt, namespace, name).ok()?;
    sa.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Unpadded base64url, as JWTs use.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
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
    state.issued.reviews.fetch_add(1, Ordering::Relaxed);
    let mut audiences = string_list(spec.get("audiences"));
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_owned());
    }
    // Tokens minted by the handle for RBAC tests authenticate for the API audience only.
    let legacy = state
        .tokens
        .user_of(&token)
        .filter(|_| audiences.iter().any(|a| a == API_AUDIENCE));
    let status = match (legacy, state.issued.check(state, &token, &audiences)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(plain.as_bytes()), encoded);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
