//! tenantd-server: the HTTP server over `tenantd-app`.
//!
//! `http` holds the plumbing (the request-context middleware, the JSON and query extractors),
//! `resolve` the tenant resolution from a request to a `Caller` or a tenant-bound `Ctx`,
//! `error` the one mapping to problem+json, `api` the handlers with their OpenAPI
//! descriptions. The application itself — state, services, jobs — is `tenantd-app`.
//!
//! Entry points: [`build_state`] (file store, databases, keys, bootstrap), [`router`], and
//! [`run`].
#![forbid(unsafe_code)]

/// HTTP handlers and their OpenAPI paths.
pub mod api;
/// The object store for file contents (local directory or S3-compatible bucket).
pub mod blobs;
/// The HTTP error type.
pub mod error;
/// Request plumbing.
pub mod http;
/// Tenant resolution: from the request to a `Caller` or a tenant-bound `Ctx`.
pub mod resolve;
/// The HTTP client webhook deliveries go out through.
pub mod sender;

// The application, re-exported under the paths the handlers, the CLI and the tests use.
pub use tenantd_app::{
    AppState, auth, cache, config, context, jobs, limits, mobility, relay, run_stats, runs,
    services, state, webhooks,
};

/// Makes rustls (under reqwest, for the S3 client) use ring; call before any HTTP client is
/// built. The tree has no aws-lc (see CRATES.md), so without this a client panics. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The application's state for this configuration: opens the file store at the edge, then
/// the databases, keys and bootstrap (`AppState::build`).
pub async fn build_state(
    config: config::Config,
) -> Result<(AppState, Option<state::Bootstrap>), Error> {
    build_state_with(config, Arc::new(sender::HttpSender::new())).await
}

/// [`build_state`] with another network for webhook deliveries (tests give one whose name
/// resolution they steer).
pub async fn build_state_with(
    config: config::Config,
    sender: Arc<dyn tenantd_app::webhooks::Sender>,
) -> Result<(AppState, Option<state::Bootstrap>), Error> {
    install_tls_provider();
    let blobs = blobs::open_blobs(&config).await?;
    AppState::build(config, blobs, sender).await
}

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tenantd_core::Error;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The whole application as a router (tests call it in process).
pub fn router(state: AppState) -> Router {
    let (api, doc) = api::routes(state.config.file_limit_bytes);
    let plans: Vec<String> = state.plans.all().map(|p| p.id.to_string()).collect();
    let self_serve: Vec<String> = state
        .plans
        .all()
        .filter(|p| p.self_serve)
        .map(|p| p.id.to_string())
        .collect();
    let mut regions: Vec<String> = state
        .config
        .cells
        .iter()
        .filter_map(|c| c.region.clone())
        .collect();
    regions.sort();
    regions.dedup();
    let cells: Vec<String> = state
        .config
        .cells
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    let deployment = api::openapi::Deployment {
        plans: &plans,
        self_serve: &self_serve,
        regions: &regions,
        cells: &cells,
    };
    let doc: Arc<str> = serde_json::to_string(&api::openapi::finish(&doc, &deployment))
        .unwrap_or_else(|_| "{}".into())
        .into();
    let limit = state.config.body_limit_bytes;
    let request_timeout_secs = state.config.request_timeout_secs;
    let file_limit = state.config.file_limit_bytes;
    api.route(
        "/openapi.json",
        get(move || {
            let d = doc.clone();
            async move { api::ops::openapi_response(&d) }
        }),
    )
    .route("/docs", get(api::ops::docs))
    .route("/docs/app.js", get(api::ops::docs_js))
    .route("/console", get(api::ops::console))
    .route("/console/app.js", get(api::ops::console_js))
    .fallback(|| async { error::problem_for_status(axum::http::StatusCode::NOT_FOUND) })
    .with_state(state)
    // Layers run bottom-up on the way in: the request context is outermost, so every
    // response — including a panic's 500 and a too-large body's 413 — leaves through it
    // and is problem+json with the request id.
    .layer(DefaultBodyLimit::max(limit))
    // The hard cap is the larger of the JSON and file limits; each route's extractor enforces
    // its own (DefaultBodyLimit) and answers 413 either way.
    .layer(RequestBodyLimitLayer::new(limit.max(file_limit)))
    .layer(CatchPanicLayer::new())
    .layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(request_timeout_secs),
    ))
    .layer(axum::middleware::from_fn(http::request_context))
}

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then lets requests in flight finish (up to 10 s) and
/// stops the background jobs (up to 5 s); starts them first. Connections that dawdle over
/// their headers are closed.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let jobs = tenantd_app::bootstrap::start_serving(&state);
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let svc = hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(addr));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    // The jobs stop after the requests they serve have drained.
    jobs.stop(Duration::from_secs(5)).await;
    Ok(())
}
