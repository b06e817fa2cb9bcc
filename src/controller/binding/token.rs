//! The binding's bearer token and its rotation, pure: issuing a token, deciding when it
//! rotates and when the previous one stops being valid, and the Secret annotations that
//! record it. Only the current token is kept (Secret key `token`); of the previous token
//! only its SHA-256 and expiry survive, in annotations, so gateways can still accept it
//! during the grace period.
//!
//! Times are kept in whole seconds: annotations and `status.tokenRotatedAt` (a metav1.Time)
//! have one-second precision, and status must not change when nothing happened.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::jiff::Timestamp;

use crate::{api::binding::TokenRotation, gateway::config::token_sha256};

/// When the current token was issued (RFC 3339, seconds).
pub const ROTATED_AT_ANNOTATION: &str = "mcp-operator.dev/token-rotated-at";
/// SHA-256 (hex) of the previous token, present during the grace period only.
pub const PREVIOUS_SHA256_ANNOTATION: &str = "mcp-operator.dev/previous-token-sha256";
/// When the previous token stops being accepted (RFC 3339, seconds).
pub const PREVIOUS_EXPIRES_ANNOTATION: &str = "mcp-operator.dev/previous-token-expires-at";

/// Shortest rotation period the controller honours; shorter ones (only `0` passes
/// admission) would rotate on every reconcile.
const MIN_PERIOD: Duration = Duration::from_secs(1);

/// A fresh token: 48 bytes from three v4 UUIDs (366 bits from the operating system's
/// CSPRNG through `getrandom`; the 6 fixed version/variant bits of each UUID are kept),
/// hex-encoded: 96 URL-safe characters.
pub fn fresh_token() -> String {
    let bytes: Vec<u8> = (0..3)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    hex::encode(bytes)
}

/// Whether `token` could be one the controller issued (anything else is replaced).
pub fn is_valid_token(token: &str) -> bool {
    token.len() >= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The previous token, known only by its hash, and when it stops being accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousToken {
    /// Lowercase hex SHA-256 of the previous token.
    pub sha256: String,
    /// End of the grace period.
    pub expires_at: Timestamp,
}

/// The token a binding's Secret holds and its rotation bookkeeping.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenState {
    /// The current bearer token (a secret: never logged; `Debug` shows its hash).
    pub token: String,
    /// When it was issued.
    pub rotated_at: Timestamp,
    /// The previous token, during its grace period.
    pub previous: Option<PreviousToken>,
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenState")
            .field("token_sha256", &token_sha256(&self.token))
            .field("rotated_at", &self.rotated_at)
            .field("previous", &self.previous)
            .finish()
    }
}

/// What [`advance`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenChange {
    /// There was no (valid) token: one was issued.
    Issued,
    /// The period elapsed: a new token, the old one valid for the grace period.
    Rotated,
    /// The previous token's grace period ended: it is forgotten.
    GraceEnded,
    /// Nothing to do.
    Unchanged,
}

/// Period and grace period in whole seconds (period at least `MIN_PERIOD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// How often a new token is issued.
    pub period: Duration,
    /// How long the previous token stays valid.
    pub grace: Duration,
}

impl Rotation {
    /// From the spec (`None`: the API defaults, 720h and 1h). Unparseable durations
    /// (admission rejects them) fall back to the defaults; a grace period of `0` means
    /// the previous token is revoked at once.
    pub fn from_spec(spec: Option<&TokenRotation>) -> Self {
        let defaults = TokenRotation::default();
        let spec = spec.unwrap_or(&defaults);
        let parse = |d: &crate::api::common::GoDuration,
                     fallback: &crate::api::common::GoDuration| {
            // "0" passes admission (Go's spelling of zero) but has no unit to parse.
            if d.0 == "0" {
                return Duration::ZERO;
            }
            d.parse().or_else(|_| fallback.parse()).unwrap_or_default()
        };
        let period = ceil_secs(parse(&spec.period, &defaults.period)).max(MIN_PERIOD);
        let grace = ceil_secs(parse(&spec.grace_period, &defaults.grace_period));
        Self { period, grace }
    }
}

fn ceil_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// `t` truncated to whole seconds.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| t.as_second().checked_add(s))
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The token state after `now`: issues, rotates or forgets the previous token as due.
/// `fresh` makes a new token (tests pass a deterministic one).
pub fn advance(
    current: Option<TokenState>,
    rotation: Rotation,
    now: Timestamp,
    fresh: impl FnOnce() -> String,
) -> (TokenState, TokenChange) {
    let now = whole_seconds(now);
    let Some(mut state) = current else {
        let state = TokenState {
            token: fresh(),
            rotated_at: now,
            previous: None,
        };
        return (state, TokenChange::Issued);
    };
    if now >= plus(state.rotated_at, rotation.period) {
        let previous = (!rotation.grace.is_zero()).then(|| PreviousToken {
            sha256: token_sha256(&state.token),
            expires_at: plus(now, rotation.grace),
        });
        let state = TokenState {
            token: fresh(),
            rotated_at: now,
            previous,
        };
        return (state, TokenChange::Rotated);
    }
    if state.previous.as_ref().is_some_and(|p| p.expires_at <= now) {
        state.previous = None;
        return (state, TokenChange::GraceEnded);
    }
    (state, TokenChange::Unchanged)
}

/// How long until the next rotation or the end of the grace period, whichever is first.
pub fn next_change(state: &TokenState, rotation: Rotation, now: Timestamp) -> Duration {
    let mut at = plus(state.rotated_at, rotation.period);
    if let Some(p) = &state.previous {
        at = at.min(p.expires_at);
    }
    let wait = at.as_second().saturating_sub(now.as_second());
    // Never zero: a requeue of 0 would spin if the clock lags the stored times.
    Duration::from_secs(u64::try_from(wait).unwrap_or(0)).max(Duration::from_millis(200))
}

/// Reads the state from an existing Secret's `token` key and annotations. None when the
/// token is missing or not one the controller could have issued. A missing or broken
/// rotation time counts as `now` (the token is kept and rotates one period later).
pub fn from_secret(
    token: Option<&[u8]>,
    annotations: &BTreeMap<String, String>,
    now: Timestamp,
) -> Option<TokenState> {
    let token = std::str::from_utf8(token?).ok()?;
    if !is_valid_token(token) {
        return None;
    }
    let parse = |key: &str| {
        annotations
            .get(key)
            .and_then(|v| v.parse::<Timestamp>().ok())
            .map(whole_seconds)
    };
    let rotated_at = parse(ROTATED_AT_ANNOTATION).unwrap_or_else(|| whole_seconds(now));
    let previous = previous_from_annotations(annotations);
    Some(TokenState {
        token: token.to_owned(),
        rotated_at,
        previous,
    })
}

/// The previous token's hash and expiry from a Secret's annotations (whether or not it
/// expired), when both are present and well-formed.
pub fn previous_from_annotations(annotations: &BTreeMap<String, String>) -> Option<PreviousToken> {
    let sha256 = annotations.get(PREVIOUS_SHA256_ANNOTATION)?;
    let expires_at = annotations
        .get(PREVIOUS_EXPIRES_ANNOTATION)?
        .parse::<Timestamp>()
        .ok()?;
    let is_hash = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    is_hash.then(|| PreviousToken {
        sha256: sha256.to_ascii_lowercase(),
        expires_at: whole_seconds(expires_at),
    })
}

/// The annotations recording `state` (never the token itself).
pub fn annotations(state: &TokenState) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(
        ROTATED_AT_ANNOTATION.to_owned(),
        format_time(state.rotated_at),
    )]);
    if let Some(p) = &state.previous {
        out.insert(PREVIOUS_SHA256_ANNOTATION.to_owned(), p.sha256.clone());
        out.insert(
            PREVIOUS_EXPIRES_ANNOTATION.to_owned(),
            format_time(p.expires_at),
        );
    }
    out
}

/// RFC 3339 with second precision, as metav1.Time is written.
pub fn format_time(t: Timestamp) -> String {
    whole_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn rotation(period: u64, grace: u64) -> Rotation {
        Rotation {
            period: Duration::from_secs(period),
            grace: Duration::from_secs(grace),
        }
    }

    #[test]
    fn fresh_tokens_are_long_url_safe_and_different() {
        let a = fresh_token();
        let b = fresh_token();
        assert_eq!(a.len(), 96);
        assert!(is_valid_token(&a));
        assert_ne!(a, b);
        assert!(!is_valid_token("short"));
        assert!(!is_valid_token(&format!("{a} ")));
    }

    #[test]
    fn issues_then_rotates_then_forgets_the_previous_token() {
        let r = rotation(100, 10);
        let (s0, c) = advance(None, r, at(0), || "t0".into());
        assert_eq!(c, TokenChange::Issued);
        assert_eq!((s0.token.as_str(), s0.rotated_at), ("t0", at(0)));
        assert_eq!(next_change(&s0, r, at(30)), Duration::from_secs(70));

        let (same, c) = advance(Some(s0.clone()), r, at(99), || unreachable!());
        assert_eq!((c, &same), (TokenChange::Unchanged, &s0));

        let (s1, c) = advance(Some(s0), r, at(100), || "t1".into());
        assert_eq!(c, TokenChange::Rotated);
        assert_eq!(s1.token, "t1");
        assert_eq!(s1.rotated_at, at(100));
        let prev = s1.previous.clone().unwrap();
        assert_eq!(prev.sha256, token_sha256("t0"));
        assert_eq!(prev.expires_at, at(110));
        assert_eq!(next_change(&s1, r, at(100)), Duration::from_secs(10));

        let (s2, c) = advance(Some(s1.clone()), r, at(109), || unreachable!());
        assert_eq!((c, s2.previous.is_some()), (TokenChange::Unchanged, true));
        let (s3, c) = advance(Some(s1), r, at(110), || unreachable!());
        assert_eq!(c, TokenChange::GraceEnded);
        assert_eq!(s3.previous, None);
        assert_eq!(s3.token, "t1");
        assert_eq!(next_change(&s3, r, at(110)), Duration::from_secs(90));
    }

    #[test]
    fn zero_grace_keeps_no_previous_token() {
        let r = rotation(5, 0);
        let s = TokenState {
            token: "t0".into(),
            rotated_at: at(0),
            previous: None,
        };
        let (s, c) = advance(Some(s), r, at(7), || "t1".into());
        assert_eq!((c, s.previous), (TokenChange::Rotated, None));
    }

    #[test]
    fn spec_durations_round_up_to_seconds_and_period_is_never_zero() {
        let spec = |p: &str, g: &str| TokenRotation {
            period: crate::api::common::GoDuration(p.into()),
            grace_period: crate::api::common::GoDuration(g.into()),
        };
        assert_eq!(Rotation::from_spec(None), rotation(720 * 3600, 3600));
        assert_eq!(
            Rotation::from_spec(Some(&spec("3s", "1500ms"))),
            rotation(3, 2)
        );
        assert_eq!(Rotation::from_spec(Some(&spec("0", "0"))), rotation(1, 0));
    }

    #[test]
    fn annotations_round_trip_without_the_token() {
        let state = TokenState {
            token: fresh_token(),
            rotated_at: at(5),
            previous: Some(PreviousToken {
                sha256: token_sha256("old"),
                expires_at: at(65),
            }),
        };
        let ann = annotations(&state);
        assert!(ann.values().all(|v| !v.contains(&state.token)));
        assert_eq!(ann[ROTATED_AT_ANNOTATION], format_time(at(5)));
        let back = from_secret(Some(state.token.as_bytes()), &ann, at(1000)).unwrap();
        assert_eq!(back, state);
        assert!(
            !format!("{back:?}").contains(&state.token),
            "Debug hides the token"
        );
        // A token the controller could not have issued is replaced.
        assert_eq!(from_secret(Some(b"abc"), &ann, at(0)), None);
        assert_eq!(from_secret(None, &ann, at(0)), None);
        // No rotation time: counts as now.
        let back = from_secret(Some(state.token.as_bytes()), &BTreeMap::new(), at(9)).unwrap();
        assert_eq!((back.rotated_at, back.previous), (at(9), None));
    }
}
