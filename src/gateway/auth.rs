//! Bearer-token authentication: the token's SHA-256 is looked up among the configured
//! hashes (the gateway never holds a token itself) and names a [`Principal`]. Probe
//! tokens are read-only; with `auth: None`, callers without a known token are anonymous.
//! [`authenticate_any`] adds ServiceAccount tokens: an unknown token, when some binding
//! lists `serviceAccounts` and the gateway has API access, is checked by
//! [`TokenReviewer`] and names the binding of its ServiceAccount.

use axum::http::{HeaderMap, header};

use super::config::token_sha256;
use super::live::LiveConfig;
use super::principal::Principal;
use super::refusal::{Refusal, Rule};
use super::token_review::TokenReviewer;
use crate::api::server::GatewayAuth;

/// Methods a probe token may send (requests and notifications): the handshake or
/// discovery of either era, ping and the list methods.
pub const PROBE_METHODS: &[&str] = &[
    "initialize",
    "server/discover",
    "notifications/initialized",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];

/// Finds the principal for a request's `Authorization` header.
pub fn authenticate(headers: &HeaderMap, config: &LiveConfig) -> Result<Principal, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let known = token.and_then(|t| config.tokens.get(&token_sha256(t)).cloned());
    match (known, config.file.auth) {
        (Some(p), _) => Ok(p),
        (None, GatewayAuth::None) => Ok(Principal::Anonymous),
        (None, GatewayAuth::Required) => Err(Refusal::new(
            Rule::Unauthorized,
            if token.is_some() {
                "unauthorized: the bearer token is not valid for this server"
            } else {
                "unauthorized: send Authorization: Bearer <token> (from your McpBinding Secret)"
            },
        )),
    }
}

/// [`authenticate`], then, for an unknown bearer token, a TokenReview when some binding
/// lists ServiceAccounts (nothing more happens without a reviewer or such a binding, so
/// the hash lookup stays the whole cost of the common path).
pub async fn authenticate_any(
    headers: &HeaderMap,
    config: &LiveConfig,
    reviewer: Option<&TokenReviewer>,
) -> Result<Principal, Refusal> {
    let first = authenticate(headers, config);
    if matches!(first, Ok(Principal::Binding(_) | Principal::Probe)) {
        return first;
    }
    let Some(reviewer) = reviewer.filter(|_| !config.service_accounts.is_empty()) else {
        return first;
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
    else {
        return first;
    };
    match reviewer.review(token).await {
        Some(user) => match config.service_accounts.get(&*user) {
            Some(p) => Ok(p.clone()),
            None => first,
        },
        None => first,
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::config::{BindingConfig, GatewayConfig};

    fn config(auth: GatewayAuth) -> LiveConfig {
        let file = GatewayConfig {
            auth,
            probe_token_sha256: vec![token_sha256("probe-tok")],
            bindings: vec![BindingConfig {
                name: "agent".into(),
                token_sha256: vec![token_sha256("agent-tok")],
                access: Default::default(),
                service_accounts: vec![],
            }],
            ..Default::default()
        };
        LiveConfig::compile(file, None)
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn tokens_name_principals() {
        let c = config(GatewayAuth::Required);
        assert!(matches!(
            authenticate(&headers("Bearer agent-tok"), &c),
            Ok(Principal::Binding(b)) if b.name == "agent"
        ));
        assert!(matches!(
            authenticate(&headers("bearer probe-tok"), &c),
            Ok(Principal::Probe)
        ));
        let e = authenticate(&headers("Bearer nope"), &c).unwrap_err();
        assert_eq!(e.rule, Rule::Unauthorized);
        assert!(!e.message.contains("nope"));
        assert!(authenticate(&HeaderMap::new(), &c).is_err());
        assert!(authenticate(&headers("Basic agent-tok"), &c).is_err());
        let open = config(GatewayAuth::None);
        assert!(matches!(
            authenticate(&HeaderMap::new(), &open),
            Ok(Principal::Anonymous)
        ));
    }
}
