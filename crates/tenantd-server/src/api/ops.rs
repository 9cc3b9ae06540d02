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

/// The agent-run series: aggregated over tenants (100,000 tenants are not 100,000 series;
/// per-tenant figures are in `GET /v1/tenants/{id}/usage`).
fn run_metrics(state: &AppState, body: &mut String) {
    let r = &state.run_stats;
    let mut family = |name: &str, kind: &str, help: &str, series: Vec<(String, u64)>| {
        body.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in series {
            body.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    family(
        "tenantd_runs_admitted_total",
        "counter",
        "Agent runs admitted on this node.",
        vec![(String::new(), r.admitted_total())],
    );
    family(
        "tenantd_runs_rejected_total",
        "counter",
        "Agent-run admissions refused on this node, by reason.",
        r.rejected_total()
            .into_iter()
            .map(|(reason, v)| (format!("{{reason=\"{reason}\"}}"), v))
            .collect(),
    );
    family(
        "tenantd_runs_ended_total",
        "counter",
        "Agent runs that ended through this node, by final state.",
        r.ended_total()
            .into_iter()
            .map(|(status, v)| (format!("{{status=\"{status}\"}}"), v))
            .collect(),
    );
    family(
        "tenantd_run_lease_expiries_total",
        "counter",
        "Leases nobody renewed, settled by this node's expiry job (requeued or expired).",
        vec![(String::new(), r.expiries_total())],
    );
    family(
        "tenantd_run_tokens_reported_total",
        "counter",
        "Tokens workers reported through this node.",
        vec![(String::new(), r.tokens_total())],
    );
    family(
        "tenantd_run_discrepancies",
        "gauge",
        "Tenants whose tokens_held counter disagreed with their open runs at the last reconciliation (must be 0).",
        vec![(String::new(), r.discrepancies())],
    );
    let (count, buckets, sum) = r.lease_latency();
    body.push_str("# HELP tenantd_run_lease_seconds Time to hand out a lease (one cell transaction), on this node.\n# TYPE tenantd_run_lease_seconds histogram\n");
    for (bound, n) in tenantd_app::run_stats::LEASE_BUCKETS.iter().zip(buckets) {
        body.push_str(&format!(
            "tenantd_run_lease_seconds_bucket{{le=\"{bound}\"}} {n}\n"
        ));
    }
    body.push_str(&format!(
        "tenantd_run_lease_seconds_bucket{{le=\"+Inf\"}} {count}\ntenantd_run_lease_seconds_sum {sum}\ntenantd_run_lease_seconds_count {count}\n"
    ));
}

/// Prometheus text: rate-limit refusals, fallbacks from Redis to in-process buckets, the
/// credential cache and its invalidation channel.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let (hits, misses, invalidations) = state.auth_cache.stats();
    let mut backlog = 0u64;
    for cell in state.cells.values() {
        backlog += cell.unscoped_delivery_backlog().await.unwrap_or(0).max(0) as u64;
    }
    let lines = [
        (
            "tenantd_webhook_attempts_succeeded_total",
            "counter",
            "Webhook delivery attempts a receiver answered 2xx, on this node.",
            state.webhook_stats.succeeded(),
        ),
        (
            "tenantd_webhook_attempts_failed_total",
            "counter",
            "Webhook delivery attempts that failed (a status, a timeout, a refused address), on this node.",
            state.webhook_stats.failed(),
        ),
        (
            "tenantd_webhook_backlog",
            "gauge",
            "Webhook deliveries waiting for an attempt, in every cell.",
            backlog,
        ),
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
    run_metrics(&state, &mut body);
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

/// How long `/readyz` waits for any one database: it answers within about this long, also
/// with a database frozen.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// A database's state for `/readyz`: `ok`, `unreachable` (it refused, or is known down) or
/// `timeout` (no answer within [`READY_TIMEOUT`]).
async fn db_state(
    ping: impl std::future::Future<Output = tenantd_core::Result<()>>,
) -> &'static str {
    match tokio::time::timeout(READY_TIMEOUT, ping).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unreachable",
        Err(_) => "timeout",
    }
}

/// The file stores' state for `/readyz` (the first not `ok` of the deployment's and the
/// cells' own, asked at once): a HEAD of a key that need not exist (not found is an answer).
/// Files are not needed by every request, so a file store down makes the node `degraded`,
/// not unready.
async fn blob_state(state: &AppState) -> &'static str {
    use object_store::ObjectStoreExt;
    let probe = object_store::path::Path::from(".tenantd-probe");
    let stores = state.cell_blobs.all();
    let states = futures_util::future::join_all(stores.iter().map(|b| async {
        match tokio::time::timeout(READY_TIMEOUT, b.store.head(&probe)).await {
            Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => "ok",
            Ok(Err(_)) => "unreachable",
            Err(_) => "timeout",
        }
    }))
    .await;
    states.into_iter().find(|s| *s != "ok").unwrap_or("ok")
}

/// Ready: the catalog and every cell answer. Every dependency is named with its state; the
/// databases are asked at once, each for at most 800 ms, and Redis is reported as the
/// background probe last saw it, so the answer comes within a second whatever is down. Not
/// ready is a 503 problem (`UNAVAILABLE`, `Retry-After`) carrying the same fields.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Object), (status = 503, content_type = "application/problem+json", body = Object)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let names: Vec<&tenantd_core::tenant::CellName> = state.cells.keys().collect();
    let (catalog, cell_states, files) = tokio::join!(
        db_state(state.catalog.ping()),
        futures_util::future::join_all(names.iter().map(|n| db_state(state.cells[*n].ping()))),
        blob_state(&state)
    );
    let mut all = catalog == "ok";
    let mut cells = serde_json::Map::new();
    for (name, st) in names.into_iter().zip(cell_states) {
        all &= st == "ok";
        cells.insert(name.to_string(), json!(st));
    }
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
    } else if limits == "degraded" || invalidation == "degraded" || files != "ok" {
        "degraded"
    } else {
        "ready"
    };
    let mut body = json!({"catalog": catalog, "cells": cells, "files": files, "rate_limits": limits, "cache_invalidation": invalidation});
    if all {
        body["status"] = json!(word);
        return (StatusCode::OK, Json(body)).into_response();
    }
    // In the problem, `status` is the HTTP status (RFC 9457); the word goes in `readiness`.
    body["readiness"] = json!(word);
    let mut r = crate::error::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "a database this node needs does not answer",
        body,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(2));
    r
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
