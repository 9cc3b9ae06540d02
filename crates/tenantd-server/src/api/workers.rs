//! `/v1/workers/lease` and the worker's calls on the run it holds (`heartbeat`, `usage`,
//! `complete`): a platform API key with the `worker` role, every call fenced by `lease_id`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tenantd_core::access::perm;
use tenantd_core::runs::Completion;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::runs::{RunResponse, run_id};
use crate::error::ApiResult;
use crate::http::{ApiJson, whole};
use crate::resolve::InTenant;
use crate::services::workers as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lease))
        .routes(routes!(heartbeat))
        .routes(routes!(usage))
        .routes(routes!(complete))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The models this worker serves (absent: any).
    #[schema(value_type = Option<Vec<ModelName>>, min_items = 1, max_items = 100)]
    pub models: Option<Vec<String>>,
    /// How long to wait for a run when none is queued, in milliseconds (default 0; at most
    /// `run_lease_max_wait_ms`, 30000 unless configured).
    #[schema(minimum = 0, maximum = 30000)]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub wait_ms: Option<u64>,
}

/// A model name (no comma).
#[derive(ToSchema)]
#[schema(pattern = "^[^,]{1,200}$")]
#[allow(dead_code)]
pub struct ModelName(String);

#[derive(Serialize, ToSchema)]
pub struct LeaseResponse {
    pub run: RunResponse,
    /// Send it with every call about this run; a call with an older one is 409 `LEASE_LOST`.
    pub lease_id: String,
    /// Renew with a heartbeat before this (`run_lease_ttl_ms` after the lease).
    pub lease_expires_at: String,
    /// What the run may still use: the rest of its hold plus what the tenant's budget has
    /// free (`null`: unlimited).
    pub tokens_remaining: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The `lease_id` the lease returned.
    #[schema(min_length = 1, max_length = 100)]
    pub lease_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    pub lease_expires_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRequest {
    /// The `lease_id` the lease returned.
    #[schema(min_length = 1, max_length = 100)]
    pub lease_id: String,
    /// The report's number: the same `seq` twice counts once.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "whole::i64")]
    pub seq: i64,
    /// Tokens spent since the previous report.
    #[schema(minimum = 0, maximum = 1099511627776_i64)]
    #[serde(deserialize_with = "whole::i64")]
    pub tokens: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UsageResponse {
    /// The run's tokens so far.
    pub tokens_used: i64,
    /// What it may still use (`null`: unlimited).
    pub tokens_remaining: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The `lease_id` the lease returned.
    #[schema(min_length = 1, max_length = 100)]
    pub lease_id: String,
    /// What the run produced (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Map<String, serde_json::Value>>,
    /// What went wrong (a JSON object); given, the run ends `failed`.
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Map<String, serde_json::Value>>,
    /// The run's final token total (absent: what it reported; below that: what it reported).
    #[schema(minimum = 0, maximum = 1099511627776_i64)]
    #[serde(default, deserialize_with = "whole::opt_i64")]
    pub tokens_total: Option<i64>,
}

/// Leases the next run, chosen fairly across tenants (least recently served first; a
/// tenant's share does not grow with its backlog or its number of agents), never past a
/// tenant's `concurrent_runs`, never for a tenant that is not active. 204 when none came
/// within `wait_ms`.
#[utoipa::path(post, path = "/v1/workers/lease", tag = "workers", request_body = LeaseRequest,
    responses((status = 200, body = LeaseResponse), (status = 204), (status = 403), (status = 422)),
    security(("bearer" = [])))]
async fn lease(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> ApiResult<Response> {
    let g = ctx.require::<perm::RunsWork>(&state).await?;
    let models = svc::models(req.models)?;
    match svc::lease(&state, &ctx, g, models, req.wait_ms).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(l) => Ok(Json(LeaseResponse {
            run: l.run.into(),
            lease_id: l.lease_id,
            lease_expires_at: l.lease_until.to_rfc3339(),
            tokens_remaining: l.tokens_remaining,
        })
        .into_response()),
    }
}

/// Renews the lease for another `run_lease_ttl_ms`.
#[utoipa::path(post, path = "/v1/runs/{id}/heartbeat", tag = "workers", request_body = HeartbeatRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = HeartbeatResponse), (status = 409, description = "LEASE_LOST or RUN_CANCELLED")),
    security(("bearer" = [])))]
async fn heartbeat(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let g = ctx.require::<perm::RunsWork>(&state).await?;
    let run = run_id(&id).map_err(|_| tenantd_core::Error::LeaseLost)?;
    let until = svc::heartbeat(&state, &ctx, g, run, req.lease_id).await?;
    Ok(Json(HeartbeatResponse {
        lease_expires_at: until.to_rfc3339(),
    }))
}

/// Reports tokens spent, counted into the run and the tenant's month in one transaction
/// (the next admission sees them). Past the hold the hold grows while the budget allows;
/// past the budget 409 `BUDGET_EXHAUSTED` and the run ends `budget_exceeded` (the tokens
/// still count).
#[utoipa::path(post, path = "/v1/runs/{id}/usage", tag = "workers", request_body = UsageRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = UsageResponse), (status = 409, description = "BUDGET_EXHAUSTED, LEASE_LOST or RUN_CANCELLED"), (status = 422)),
    security(("bearer" = [])))]
async fn usage(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UsageRequest>,
) -> ApiResult<Json<UsageResponse>> {
    let g = ctx.require::<perm::RunsWork>(&state).await?;
    let run = run_id(&id).map_err(|_| tenantd_core::Error::LeaseLost)?;
    let r = svc::usage(&state, &ctx, g, run, req.lease_id, req.seq, req.tokens).await?;
    Ok(Json(UsageResponse {
        tokens_used: r.tokens_used,
        tokens_remaining: r.tokens_remaining,
    }))
}

/// Ends the run `succeeded` (or `failed` with `error`): used = the final total, the rest of
/// the hold returns to the budget, the slot frees. The same completion again returns the
/// run as it ended.
#[utoipa::path(post, path = "/v1/runs/{id}/complete", tag = "workers", request_body = CompleteRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = RunResponse), (status = 409, description = "LEASE_LOST or RUN_CANCELLED"), (status = 422)),
    security(("bearer" = [])))]
async fn complete(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> ApiResult<Json<RunResponse>> {
    let g = ctx.require::<perm::RunsWork>(&state).await?;
    let run = run_id(&id).map_err(|_| tenantd_core::Error::LeaseLost)?;
    let done = Completion {
        output: req.output.map(serde_json::Value::Object),
        error: req.error.map(serde_json::Value::Object),
        tokens_total: req.tokens_total,
    };
    Ok(Json(
        svc::complete(&state, &ctx, g, run, req.lease_id, done)
            .await?
            .into(),
    ))
}
