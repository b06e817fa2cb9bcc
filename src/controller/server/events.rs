//! Recording an McpServer's Events (reason from [`EventReason`]); nothing is recorded by
//! a replica that may not write.

use kube::Resource;

use crate::{
    api::McpServer,
    controller::{context::Context, reasons::EventReason},
};

/// Records one Event about `server` (Warning or Normal as `reason` says).
pub async fn record(ctx: &Context, server: &McpServer, reason: EventReason, note: String) {
    if ctx.may_write().is_err() {
        return;
    }
    ctx.events
        .publish(
            &server.object_ref(&()),
            reason.is_warning(),
            reason.as_str(),
            "Reconcile",
            note,
        )
        .await;
}
