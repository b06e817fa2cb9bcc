//! The state every handler and layer shares: [`ApiServerOptions`] and [`State`] (the
//! store behind its lock, fault rules, token stores). A leaf of the module graph: it
//! imports the types it holds (`ops`, `faults`, `credentials`), never the handlers, layers
//! or the handle that use it.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;

use super::{
    credentials::{IssuedTokens, Tokens},
    faults::{FaultRule, Faults},
    ops::Inner,
};

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ApiServerOptions {
    /// How many changes watches can resume from (older revisions get 410 Gone).
    pub history_limit: usize,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Longest watch when the client gives no `timeoutSeconds`.
    pub max_watch: Duration,
    /// Fault rules in force from the start (more can be set through
    /// [`ApiServerHandle::faults`](super::server::ApiServerHandle::faults)).
    pub faults: Vec<FaultRule>,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(1),
            max_watch: Duration::from_secs(1800),
            faults: Vec::new(),
        }
    }
}

/// Shared state of the running server.
pub struct State {
    inner: Mutex<Inner>,
    /// The options it runs with.
    pub options: ApiServerOptions,
    /// Fault rules, shared with the handle.
    pub faults: Arc<Faults>,
    /// The ServiceAccount tokens the handle minted.
    pub tokens: Tokens,
    /// The ServiceAccount tokens TokenRequest issued (and TokenReview checks).
    pub issued: IssuedTokens,
}

impl State {
    /// An empty store with `options`, sharing `faults` with the handle.
    pub fn new(options: ApiServerOptions, faults: Arc<Faults>) -> Self {
        Self {
            inner: Mutex::new(Inner::new(options.history_limit)),
            options,
            faults,
            tokens: Tokens::default(),
            issued: IssuedTokens::default(),
        }
    }

    /// The store, registry and admission, locked. A panic while holding the lock leaves
    /// the data consistent enough for a test server, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The uid of ServiceAccount `namespace/name`, if it exists.
    pub fn service_account_uid(&self, namespace: &str, name: &str) -> Option<String> {
        let inner = self.lock();
        let rt = inner.registry.find("", "v1", "serviceaccounts")?.clone();
        let sa = inner.get(&rt, namespace, name).ok()?;
        sa.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}
