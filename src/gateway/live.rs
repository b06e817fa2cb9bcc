//! The configuration the gateway runs with: the file compiled for fast lookups (token
//! hash → principal, limits with defaults filled in, the call semaphore) and the handle
//! that swaps it atomically on reload. Requests take an `Arc` snapshot, so a request in
//! flight finishes under the config it started with; sessions are upstream's and survive.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;

use super::config::GatewayConfig;
use super::principal::Principal;
use super::{
    DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
};

/// Limits with the gateway defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
    pub call_timeout: Duration,
    pub max_concurrent_calls: u32,
}

/// One loaded configuration.
pub struct LiveConfig {
    pub file: GatewayConfig,
    /// Lowercase hex SHA-256 of a token → who presents it.
    pub tokens: HashMap<String, Principal>,
    /// `system:serviceaccount:<ns>:<name>` → the binding listing that ServiceAccount
    /// (the first by name when several do). Empty: no TokenReview is ever made.
    pub service_accounts: HashMap<String, Principal>,
    pub limits: Limits,
    /// Permits for `tools/call`s in flight.
    pub calls: Arc<Semaphore>,
    /// `redactKeys`, normalised ([`normalise_key`]); the built-in keys
    /// are always redacted besides.
    pub redact_keys: Vec<String>,
    /// Headers added to every upstream request (values from the environment).
    pub upstream_headers: HeaderMap,
}

impl LiveConfig {
    /// Compiles a file. `previous` lends its call semaphore when the limit is unchanged,
    /// so calls in flight keep counting across a reload.
    pub fn compile(file: GatewayConfig, previous: Option<&LiveConfig>) -> LiveConfig {
        let mut tokens = HashMap::new();
        for hash in &file.probe_token_sha256 {
            tokens.insert(hash.to_ascii_lowercase(), Principal::Probe);
        }
        for binding in &file.bindings {
            let principal = Principal::Binding(Arc::new(binding.clone()));
            for hash in &binding.token_sha256 {
                tokens.insert(hash.to_ascii_lowercase(), principal.clone());
            }
        }
        let mut service_accounts = HashMap::new();
        let mut by_name: Vec<&super::config::BindingConfig> = file.bindings.iter().collect();
        by_name.sort_by(|a, b| a.name.cmp(&b.name));
        for binding in by_name {
            if binding.service_accounts.is_empty() {
                continue;
            }
            let principal = Principal::Binding(Arc::new(binding.clone()));
            for sa in &binding.service_accounts {
                let user = super::token_review::service_account_user(&sa.namespace, &sa.name);
                if let Some(Principal::Binding(first)) = service_accounts.get(&user) {
                    tracing::warn!(service_account = %user, binding = %binding.name, used = %first.name, "ServiceAccount listed by several bindings: the first by name applies");
                    continue;
                }
                service_accounts.insert(user, principal.clone());
            }
        }
        let l = &file.policy.limits;
        let limits = Limits {
            max_request_bytes: l.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
            max_response_bytes: l.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            call_timeout: Duration::from_millis(
                l.call_timeout_ms.unwrap_or(DEFAULT_CALL_TIMEOUT_MS),
            ),
            max_concurrent_calls: l
                .max_concurrent_calls
                .unwrap_or(DEFAULT_MAX_CONCURRENT_CALLS)
                .max(1),
        };
        let calls = match previous {
            Some(p) if p.limits.max_concurrent_calls == limits.max_concurrent_calls => {
                p.calls.clone()
            }
            _ => Arc::new(Semaphore::new(limits.max_concurrent_calls as usize)),
        };
        let redact_keys = file
            .policy
            .audit
            .redact_keys
            .iter()
            .map(|k| normalise_key(k))
            .collect();
        let upstream_headers = upstream_headers(&file);
        LiveConfig {
            file,
            tokens,
            service_accounts,
            limits,
            calls,
            redact_keys,
            upstream_headers,
        }
    }
}

/// `upstream.headers`, values read from the environment. A missing variable or a value
/// that cannot be a header is logged (by name only) and the header skipped.
fn upstream_headers(file: &GatewayConfig) -> HeaderMap {
    let mut map = HeaderMap::new();
    for h in &file.upstream.headers {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            continue;
        };
        let Ok(value) = std::env::var(&h.value_from_env) else {
            tracing::warn!(header = %name, variable = %h.value_from_env, "upstream header skipped: the environment variable is not set");
            continue;
        };
        match HeaderValue::from_str(&format!("{}{value}", h.prefix)) {
            Ok(mut v) => {
                v.set_sensitive(true);
                map.append(name, v);
            }
            Err(_) => {
                tracing::warn!(header = %name, variable = %h.value_from_env, "upstream header skipped: the value is not a valid header value");
            }
        }
    }
    map
}

/// The current configuration, swapped whole on reload. `None` until a file loads.
#[derive(Default)]
pub struct ConfigHandle {
    current: RwLock<Option<Arc<LiveConfig>>>,
}

impl ConfigHandle {
    /// A snapshot for one request.
    pub fn current(&self) -> Option<Arc<LiveConfig>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Compiles and installs a new file.
    pub fn install(&self, file: GatewayConfig) {
        let previous = self.current();
        let next = Arc::new(LiveConfig::compile(file, previous.as_deref()));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(next);
    }
}

/// A key as audit redaction compares it ([`audit::is_redacted`](super::audit::is_redacted)): lowercase, without `-`, `_`, `.` and spaces
/// (`X-Api-Key`, `x_api_key` and `xApiKey` are all `xapikey`).
pub fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}
