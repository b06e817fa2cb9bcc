//! Who a request can be: [`UserInfo`], the bearer tokens the handle mints for RBAC tests
//! ([`Tokens`]) and the ServiceAccount tokens TokenRequest issues ([`IssuedTokens`]).
//! A leaf: the stores live in [`super::state::State`]; `rbac` authenticates with them and
//! `tokens` serves TokenRequest and TokenReview over them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// The API server's own audience: the default of TokenRequest and TokenReview.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// The `iss` claim of issued tokens.
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub name: String,
    /// Groups, e.g. `system:serviceaccounts:<namespace>`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The user a ServiceAccount token authenticates as.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }
}

/// The bearer tokens the server accepts.
#[derive(Default)]
pub struct Tokens {
    users: std::sync::Mutex<HashMap<String, UserInfo>>,
}

impl Tokens {
    /// A new token authenticating as ServiceAccount `namespace/name` (which need not
    /// exist as an object).
    pub fn mint_service_account(&self, namespace: &str, name: &str) -> String {
        let token = format!("mcp-operator-dev.{}", uuid::Uuid::new_v4().simple());
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token.clone(), UserInfo::service_account(namespace, name));
        token
    }

    /// The user a minted token authenticates as.
    pub fn user_of(&self, token: &str) -> Option<UserInfo> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}

/// One token the server issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Who the token authenticates as.
    pub user: UserInfo,
    namespace: String,
    name: String,
    /// The ServiceAccount's uid when it existed at issue time (then it must still).
    pub sa_uid: Option<String>,
    audiences: Vec<String>,
    /// Unix seconds.
    expires: i64,
    /// The token's `jti` claim.
    pub jti: String,
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

    /// Counts one TokenReview request.
    pub fn count_review(&self) {
        self.reviews.fetch_add(1, Ordering::Relaxed);
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
    ///
    /// `current_uid` looks up the current uid of ServiceAccount `(namespace, name)`.
    pub fn check(
        &self,
        current_uid: impl FnOnce(&str, &str) -> Option<String>,
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
            let current = current_uid(&issued.namespace, &issued.name);
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
    pub fn authenticate(
        &self,
        current_uid: impl FnOnce(&str, &str) -> Option<String>,
        token: &str,
    ) -> Option<UserInfo> {
        self.check(current_uid, token, &[API_AUDIENCE.to_owned()])
            .ok()
            .map(|(issued, _)| issued.user)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
