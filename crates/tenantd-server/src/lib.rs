//! tenantd-server: the HTTP server.
//!
//! `http` holds the plumbing (request context, problem+json, extractors), `context` the
//! request path from credentials to a tenant-bound `Ctx`, `services` the use cases, `api`
//! the handlers with their OpenAPI descriptions. State holds the stores as trait objects.
//!
//! Entry points: [`AppState::build`] (stores, keys, bootstrap), [`router`], and [`run`].
#![forbid(unsafe_code)]

/// HTTP handlers and their OpenAPI paths.
pub mod api;
/// Credentials.
pub mod auth;
/// Configuration.
pub mod config;
/// From credentials to a tenant-bound request context.
pub mod context;
/// The HTTP error type.
pub mod error;
/// Request plumbing.
pub mod http;
/// Rate limits.
pub mod limits;
/// The audit outbox relay.
pub mod relay;
/// Use cases.
pub mod services;
/// Application state and bootstrap.
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
pub use state::AppState;
use tenantd_core::Error;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

/// The whole application as a router (tests call it in process).
pub fn router(state: AppState) -> Router {
    let (api, doc) = api::routes();
    let doc: Arc<str> = serde_json::to_string(&doc)
        .unwrap_or_else(|_| "{}".into())
        .into();
    let limit = state.config.body_limit_bytes;
    api.route(
        "/openapi.json",
        get(move || {
            let d = doc.clone();
            async move { api::ops::openapi_response(&d) }
        }),
    )
    .route("/docs", get(api::ops::docs))
    .route("/console", get(api::ops::console))
    .fallback(|| async { error::problem_for_status(axum::http::StatusCode::NOT_FOUND) })
    .with_state(state)
    // Layers run bottom-up on the way in: the request context is outermost, so every
    // response — including a panic's 500 and a too-large body's 413 — leaves through it
    // and is problem+json with the request id.
    .layer(DefaultBodyLimit::max(limit))
    .layer(RequestBodyLimitLayer::new(limit))
    .layer(CatchPanicLayer::new())
    .layer(axum::middleware::from_fn(http::request_context))
}

/// Serves until `shutdown` resolves; starts the audit relay.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    relay::spawn(state.clone());
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Internal(format!("server: {e}")))
}
