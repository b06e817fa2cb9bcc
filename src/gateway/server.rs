//! The gateway's HTTP routes: MCP routes at `--path` (behind the `Host`/`Origin` check of
//! [`origin`](super::origin)), `/livez`, `/readyz` and `/metrics` on the same port (no
//! token and no `Host` check for those three), and the health-only router that serves
//! connections beyond the connection cap. Connections are served by
//! [`connections`](super::connections).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;

use super::connections::ConnectionStats;
use super::origin::{AllowedFromFlags, OriginGuard};
use super::proxy;
use super::refusal::json_response;
use super::state::Gateway;
use crate::mcp_http::jsonrpc::{self, code};

/// What the routes share.
#[derive(Clone)]
struct Shared {
    gw: Arc<Gateway>,
    stats: Arc<ConnectionStats>,
}

/// All routes.
pub fn router(
    gw: Arc<Gateway>,
    path: &str,
    allowed: AllowedFromFlags,
    stats: Arc<ConnectionStats>,
) -> Router {
    let guard = OriginGuard {
        gw: gw.clone(),
        flags: Arc::new(allowed),
    };
    let mcp = Router::new()
        .route(
            path,
            axum::routing::post(proxy::post)
                .get(proxy::get)
                .delete(proxy::delete),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            super::origin::check,
        ))
        .with_state(gw.clone());
    mcp.merge(health_router(gw, stats))
}

/// `/livez`, `/readyz` and `/metrics` only; anything else gets 503 (the connection cap is
/// reached).
pub fn health_router(gw: Arc<Gateway>, stats: Arc<ConnectionStats>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Shared { gw, stats })
}

/// The router for connections in the health reserve.
pub fn reserve_router(gw: Arc<Gateway>, stats: Arc<ConnectionStats>) -> Router {
    health_router(gw, stats).fallback(|| async {
        let mut resp = json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &jsonrpc::error_response(
                Value::Null,
                code::OVERLOADED,
                "the gateway is at its connection limit; retry shortly",
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    })
}

/// 200 once a configuration is loaded and the upstream accepts connections.
async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    if s.gw.config.current().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid configuration loaded",
        );
    }
    if !s.gw.upstream.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream not reachable");
    }
    (StatusCode::OK, "ok")
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let mut text = s.gw.metrics.render();
    s.gw.sessions.render(&mut text);
    s.stats.render(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
