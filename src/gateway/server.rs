//! The gateway's HTTP server: MCP routes at `--path`, `/livez`, `/readyz` and `/metrics`
//! on the same port (no token needed for those three), TCP_NODELAY on every accepted
//! socket, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use super::proxy::{self, Gateway};

/// All routes.
pub fn router(gw: Arc<Gateway>, path: &str) -> Router {
    Router::new()
        .route(
            path,
            axum::routing::post(proxy::post)
                .get(proxy::get)
                .delete(proxy::delete),
        )
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gw)
}

/// 200 once a configuration is loaded and the upstream accepts connections.
async fn readyz(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    if gw.config.current().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid configuration loaded",
        );
    }
    if !gw.upstream.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream not reachable");
    }
    (StatusCode::OK, "ok")
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gw.metrics.render(),
    )
}

/// Serves until `shutdown` completes, then finishes open requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
