//! The McpBinding controller: a consumer's credentials Secret (`mcp.json`, `token`,
//! `<server>.url`), token rotation with a grace period, and status; plus the server side
//! of bindings (what each targeted server's gateway gets: token hashes, narrowing, grants,
//! ServiceAccounts).
//!
//! Pure modules: [`token`] (issue/rotate/expire, annotations), [`targets`] (which servers
//! a binding reaches), [`secret`] (the desired Secret, ownership), [`status`] (status and
//! `exposedTools`), [`triggers`] (watch mappers). I/O: [`reconcile`] (the binding
//! reconcile), [`gateway::for_server`] (used by the McpServer reconcile) and [`controller`]
//! (the kube-runtime wiring, started per scope by `controller::run`).

pub mod gateway;
pub mod reconcile;
pub mod secret;
pub mod status;
pub mod targets;
pub mod token;
pub mod triggers;

use std::{future::Future, sync::Arc};

use super::{context::Context, shared::scoped};
use crate::api::{McpBinding, McpPolicy, McpServer};
use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Client, ResourceExt,
    runtime::{Controller, watcher},
};

/// Runs the McpBinding controller `controller` (created by the caller, who may share its
/// store) for `ns` (None: every namespace) until `stop` completes.
pub fn controller(
    controller: Controller<McpBinding>,
    client: &Client,
    ns: Option<&str>,
    ctx: Arc<Context>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) -> BoxFuture<'static, ()> {
    let cfg = watcher::Config::default();
    let store = controller.store();
    let (by_server, by_secret, by_policy) = (store.clone(), store.clone(), store);
    controller
        // A server's URL, readiness, labels (selectors) and tools feed status and the Secret.
        .watches(scoped::<McpServer>(client, ns), cfg.clone(), move |s| {
            triggers::bindings_of_server(&s, &by_server.state())
        })
        // The binding's own Secret, or a foreign one of that name appearing or going away.
        .watches(scoped::<Secret>(client, ns), cfg.clone(), move |s| {
            triggers::bindings_of_secret(&s, &by_secret.state())
        })
        // Policies decide exposedTools.
        .watches(scoped::<McpPolicy>(client, ns), cfg, move |p| {
            triggers::bindings_in(p.namespace(), &by_policy.state())
        })
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "binding controller event");
            }
        })
        .boxed()
}
