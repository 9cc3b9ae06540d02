//! Health, readiness, the OpenAPI document, the docs page and the console.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Prometheus text: rate-limit refusals, fallbacks from Redis to in-process buckets, the
/// credential cache and its invalidation channel.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let (hits, misses, invalidations) = state.auth_cache.stats();
    let lines = [
        (
            "tenantd_rate_limited_total",
            "counter",
            "Requests refused by a rate limit.",
            state.limiter.refused(),
        ),
        (
            "tenantd_rate_limit_fallbacks_total",
            "counter",
            "Rate-limit checks answered by this node's own buckets because Redis did not answer.",
            state.limiter.fallbacks(),
        ),
        (
            "tenantd_rate_limits_degraded",
            "gauge",
            "1 while shared rate limits have fallen back to in-process buckets.",
            u64::from(state.limiter.degraded()),
        ),
        (
            "tenantd_auth_cache_hits_total",
            "counter",
            "Credentials resolved from this node's cache, without a catalog read.",
            hits,
        ),
        (
            "tenantd_auth_cache_misses_total",
            "counter",
            "Credentials resolved by reading the catalog.",
            misses,
        ),
        (
            "tenantd_auth_cache_invalidations_total",
            "counter",
            "Tenants (or everything) dropped from this node's credential cache after a change.",
            invalidations,
        ),
        (
            "tenantd_cache_invalidation_publish_failures_total",
            "counter",
            "Invalidations that could not be announced to other nodes through Redis.",
            state.announcer.as_ref().map_or(0, |a| a.failures()),
        ),
        (
            "tenantd_cache_invalidations_subscribed",
            "gauge",
            "1 while this node hears other nodes' invalidations through Redis.",
            u64::from(
                state
                    .invalidations_subscribed
                    .load(std::sync::atomic::Ordering::SeqCst),
            ),
        ),
    ];
    let mut body = String::new();
    for (name, kind, help, value) in lines {
        body.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the catalog and every cell answer.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Object), (status = 503, body = Object)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let catalog = state.catalog.ping().await.is_ok();
    let mut cells = serde_json::Map::new();
    let mut all = catalog;
    for (name, cell) in &state.cells {
        let ok = cell.ping().await.is_ok();
        all &= ok;
        cells.insert(name.clone(), json!(if ok { "ok" } else { "unreachable" }));
    }
    state.limiter.probe().await;
    let limits = match (state.limiter.is_shared(), state.limiter.degraded()) {
        (false, _) => "in-process",
        (true, false) => "redis",
        (true, true) => "degraded",
    };
    // Without the channel, other nodes' changes reach this one only as its cache expires.
    let invalidation = match (
        state.announcer.is_some(),
        state
            .invalidations_subscribed
            .load(std::sync::atomic::Ordering::SeqCst),
    ) {
        (false, _) => "local",
        (true, true) => "redis",
        (true, false) => "degraded",
    };
    let word = if !all {
        "unavailable"
    } else if limits == "degraded" || invalidation == "degraded" {
        "degraded"
    } else {
        "ready"
    };
    let body = json!({"status": word, "catalog": if catalog { "ok" } else { "unreachable" }, "cells": cells, "rate_limits": limits, "cache_invalidation": invalidation});
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Pages load only their own assets: no inline script, nothing from another origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(body: &'static str) -> Response {
    let mut r = Html(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn script(body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The docs page: renders `/openapi.json` with the page's own script, nothing from elsewhere.
pub async fn docs() -> Response {
    page(include_str!("../../assets/docs.html"))
}

/// The docs page's script.
pub async fn docs_js() -> Response {
    script(include_str!("../../assets/docs.js"))
}

/// The admin console: sign in, the tenant, its usage, resources, members, keys, audit, and
/// for platform admins every tenant.
pub async fn console() -> Response {
    page(include_str!("../../assets/console.html"))
}

/// The console's script.
pub async fn console_js() -> Response {
    script(include_str!("../../assets/console.js"))
}

/// The document, as JSON.
pub fn openapi_response(doc: &str) -> Response {
    let mut r = doc.to_owned().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
