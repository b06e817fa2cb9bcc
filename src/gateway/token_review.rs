//! ServiceAccount tokens as credentials: a bearer token that matches no configured hash,
//! when some binding lists `serviceAccounts`, is checked with a TokenReview
//! (authentication.k8s.io/v1, audiences [`AUDIENCE`]). Authenticated, audience matched,
//! and user `system:serviceaccount:<ns>:<name>` → the caller is that ServiceAccount; the
//! live configuration maps it to a binding (so a reload applies at once, the cache holds
//! identities, not rights).
//!
//! Results are cached by the token's SHA-256 (the token itself is never stored or
//! logged): identities for at most [`POSITIVE_TTL`] and never past the token's `exp`
//! (read from the JWT payload, unverified — only ever used to shorten the cache), refusals
//! for [`NEGATIVE_TTL`], API failures for [`ERROR_TTL`] (so a struggling API server is not
//! hammered); at most [`MAX_ENTRIES`] entries. Concurrent lookups of one token share one
//! TokenReview. A token that is not JWT-shaped, or whose `exp` has passed, is refused
//! without a call.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::metrics::Metrics;

/// The audience a ServiceAccount token must be issued for.
pub const AUDIENCE: &str = "mcp-operator.dev";
/// Longest time an identity is cached.
pub const POSITIVE_TTL: Duration = Duration::from_secs(60);
/// How long a refused token is cached.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// How long an API failure is cached (the caller gets 401 meanwhile).
pub const ERROR_TTL: Duration = Duration::from_secs(2);
/// Most cached tokens.
pub const MAX_ENTRIES: usize = 10_000;
/// Longest wait for the API server.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

type Key = [u8; 32];

/// What a TokenReview said.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// `system:serviceaccount:<ns>:<name>`.
    ServiceAccount(Arc<str>),
    Refused,
    Failed,
}

#[derive(Clone)]
struct Entry {
    verdict: Verdict,
    until: Instant,
}

/// Checks ServiceAccount tokens against the API server.
pub struct TokenReviewer {
    api: Api<TokenReview>,
    metrics: Arc<Metrics>,
    cache: Mutex<HashMap<Key, Entry>>,
    inflight: Mutex<HashMap<Key, Arc<OnceCell<Entry>>>>,
    /// Whether the last call failed (logged on the change only).
    failing: std::sync::atomic::AtomicBool,
}

impl TokenReviewer {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        TokenReviewer {
            api: Api::all(client),
            metrics,
            cache: Mutex::default(),
            inflight: Mutex::default(),
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The ServiceAccount user name `token` authenticates as, or None.
    pub async fn review(&self, token: &str) -> Option<Arc<str>> {
        let key: Key = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(e) = lock(&self.cache).get(&key).filter(|e| e.until > now) {
            self.metrics
                .token_review_cache_hits
                .fetch_add(1, Ordering::Relaxed);
            return username(&e.verdict);
        }
        let cell = {
            let mut inflight = lock(&self.inflight);
            let cell = inflight.entry(key).or_default();
            // A finished lookup whose callers all went away before caching it.
            if cell.get().is_some_and(|e| e.until <= now) {
                *cell = Arc::default();
            }
            cell.clone()
        };
        let entry = cell.get_or_init(|| self.call(token)).await.clone();
        {
            let mut cache = lock(&self.cache);
            if cache.len() >= MAX_ENTRIES {
                let now = Instant::now();
                cache.retain(|_, e| e.until > now);
                if cache.len() >= MAX_ENTRIES
                    && let Some(k) = cache.keys().next().copied()
                {
                    cache.remove(&k);
                }
            }
            cache.insert(key, entry.clone());
        }
        {
            let mut inflight = lock(&self.inflight);
            if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                inflight.remove(&key);
            }
        }
        username(&entry.verdict)
    }

    async fn call(&self, token: &str) -> Entry {
        let now = Instant::now();
        let refused = || Entry {
            verdict: Verdict::Refused,
            until: now + NEGATIVE_TTL,
        };
        let Some(exp) = jwt_expiry(token) else {
            return refused();
        };
        let left = exp.saturating_sub(unix_now());
        if left == 0 {
            return refused();
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let result = tokio::time::timeout(
            CALL_TIMEOUT,
            self.api.create(&PostParams::default(), &review),
        )
        .await;
        let status = match result {
            Ok(Ok(r)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("TokenReview works again");
                }
                r.status.unwrap_or_default()
            }
            Ok(Err(error)) => return self.failed(&error.to_string()),
            Err(_) => return self.failed("timed out"),
        };
        let user = status
            .user
            .and_then(|u| u.username)
            .filter(|u| is_service_account(u));
        let audience_ok = status
            .audiences
            .is_some_and(|a| a.iter().any(|a| a == AUDIENCE));
        match user {
            Some(user) if status.authenticated == Some(true) && audience_ok => {
                self.metrics
                    .token_reviews_authenticated
                    .fetch_add(1, Ordering::Relaxed);
                Entry {
                    verdict: Verdict::ServiceAccount(user.into()),
                    until: now + POSITIVE_TTL.min(Duration::from_secs(left)),
                }
            }
            _ => {
                self.metrics
                    .token_reviews_rejected
                    .fetch_add(1, Ordering::Relaxed);
                refused()
            }
        }
    }

    fn failed(&self, error: &str) -> Entry {
        self.metrics
            .token_reviews_failed
            .fetch_add(1, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            // kube errors quote the API's Status or the transport error, never the body sent.
            tracing::warn!(
                %error,
                "TokenReview failed: ServiceAccount tokens are refused until it works (does the gateway's ServiceAccount have the mcp-operator-gateway-tokenreview ClusterRole?)"
            );
        }
        Entry {
            verdict: Verdict::Failed,
            until: Instant::now() + ERROR_TTL,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn username(v: &Verdict) -> Option<Arc<str>> {
    match v {
        Verdict::ServiceAccount(u) => Some(u.clone()),
        Verdict::Refused | Verdict::Failed => None,
    }
}

/// `system:serviceaccount:<ns>:<name>` with both parts non-empty.
fn is_service_account(user: &str) -> bool {
    user.strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
}

/// The user name of ServiceAccount `namespace/name`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `exp` claim of a JWT-shaped token (unverified), or None when it is not one.
fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let claims: serde_json::Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    claims.get("exp")?.as_u64()
}

/// Unpadded (or padded) base64url.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_jwt_shaped_tokens_only() {
        // {"alg":"none"} . {"exp":1700000000,"aud":["mcp-operator.dev"]} . sig
        let token =
            "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDAsImF1ZCI6WyJtY3Atb3BlcmF0b3IuZGV2Il19.c2ln";
        assert_eq!(jwt_expiry(token), Some(1_700_000_000));
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
        assert_eq!(jwt_expiry("a.!!.c"), None);
        assert_eq!(base64url_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64url_decode("Zm9vYg").unwrap(), b"foob");
    }

    #[test]
    fn only_service_account_users_count() {
        assert!(is_service_account("system:serviceaccount:agents:bot"));
        assert!(!is_service_account("system:serviceaccount:agents:"));
        assert!(!is_service_account("system:serviceaccount::bot"));
        assert!(!is_service_account("alice"));
        assert!(!is_service_account("system:serviceaccount:a:b:c"));
        assert_eq!(
            service_account_user("agents", "bot"),
            "system:serviceaccount:agents:bot"
        );
    }
}
