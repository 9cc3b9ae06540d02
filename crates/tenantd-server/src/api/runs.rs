//! `/v1/agents/{id}/runs`, `/v1/runs*`: a tenant's agent runs — admission, reads,
//! cancellation. The workers' side is `api/workers.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tenantd_core::Error;
use tenantd_core::access::perm;
use tenantd_core::ids::{ResourceId, RunId};
use tenantd_core::runs::Run;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::http::{ApiJson, ApiQuery, whole};
use crate::resolve::InTenant;
use crate::services::runs as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(cancel))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunRequest {
    /// What the worker gets (a JSON object; absent: `{}`).
    #[schema(value_type = Option<Object>)]
    pub input: Option<serde_json::Map<String, serde_json::Value>>,
    /// The model; absent: the tenant's `settings.default_model`, else the plan's first (with
    /// neither, and a plan that allows any model, the request must name one: 422).
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
    /// The most tokens the run may use, held from the month's budget at admission (absent:
    /// the plan's `run_token_hold`).
    #[schema(minimum = 1, maximum = 1099511627776_i64)]
    #[serde(default, deserialize_with = "whole::opt_i64")]
    pub max_tokens: Option<i64>,
}

/// A run.
#[derive(Serialize, ToSchema)]
pub struct RunResponse {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: String,
    /// `queued`, `leased`, `succeeded`, `failed`, `cancelled`, `budget_exceeded` or `expired`.
    pub status: String,
    pub model: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    pub max_tokens: Option<i64>,
    /// Tokens reserved for it from the month's budget (grows while its usage passes it and
    /// the budget allows).
    pub token_hold: i64,
    pub tokens_used: i64,
    /// What it still holds and has not used (0 once it ended).
    pub tokens_held: i64,
    /// Leases it has had.
    pub attempt: i64,
    /// Queued runs of the tenant ahead of it (while queued).
    pub queue_position: Option<i64>,
    pub created_at: String,
    pub leased_at: Option<String>,
    pub lease_expires_at: Option<String>,
    pub ended_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

impl From<Run> for RunResponse {
    fn from(r: Run) -> Self {
        Self {
            id: r.id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            agent_id: r.agent_id.to_string(),
            status: r.status.as_str().into(),
            tokens_held: r.held(),
            model: r.model,
            input: r.input,
            max_tokens: r.max_tokens,
            token_hold: r.token_hold,
            tokens_used: r.tokens_used,
            attempt: r.attempt,
            queue_position: r.queue_position,
            created_at: r.created_at.to_rfc3339(),
            leased_at: r.leased_at.map(|t| t.to_rfc3339()),
            lease_expires_at: r.lease_until.map(|t| t.to_rfc3339()),
            ended_at: r.ended_at.map(|t| t.to_rfc3339()),
            output: r.output,
            error: r.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunResponse>,
    /// Pass as `cursor` for the next (older) page; `null` at the end.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Only runs in this state.
    pub status: Option<String>,
    /// Only runs of this agent.
    pub agent_id: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

pub(crate) fn run_id(s: &str) -> Result<RunId, Error> {
    RunId::parse(s, "id").map_err(|_| Error::NotFound)
}

/// Starts a run of an agent: admitted in this order, nothing taken on a refusal — the plan's
/// `basic_orchestration` (403 `FEATURE_NOT_IN_PLAN`), the model (403 `MODEL_NOT_ALLOWED`),
/// then in one transaction a queue place and the token hold (403 `QUOTA_EXCEEDED`,
/// `queued_runs` or `tokens`) and the `agent_spawns` rate (429). The same `Idempotency-Key`
/// within 24 h returns the first run (`Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/agents/{id}/runs", tag = "runs", request_body = CreateRunRequest,
    params(("id" = String, Path, description = "the agent"), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = RunResponse), (status = 403), (status = 404), (status = 422), (status = 429)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateRunRequest>,
) -> ApiResult<Response> {
    let g = ctx.require::<perm::RunsWrite>(&state).await?;
    let agent = ResourceId::parse(&id, "id").map_err(|_| Error::NotFound)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::invalid("Idempotency-Key", "printable ASCII"))?
                .to_owned(),
        ),
    };
    let request = svc::RunRequest {
        input: req.input.map(serde_json::Value::Object),
        model: req.model,
        max_tokens: req.max_tokens,
        idempotency_key: key,
    };
    let (run, made) = svc::create(&state, &ctx, g, agent, request).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(RunResponse::from(run))).into_response();
    if !made {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The tenant's runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunParams),
    responses((status = 200, body = RunPage), (status = 403), (status = 422)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<RunParams>,
) -> ApiResult<Json<RunPage>> {
    let g = ctx.require::<perm::RunsRead>(&state).await?;
    let f = svc::filter(
        q.status.as_deref(),
        q.agent_id.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )?;
    let (runs, next_cursor) = svc::list(&state, &ctx, g, &f).await?;
    Ok(Json(RunPage {
        items: runs.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One run: tokens used and held, attempts, times, its place in the queue while queued.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = RunResponse), (status = 404)), security(("bearer" = [])))]
async fn get(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<Json<RunResponse>> {
    let g = ctx.require::<perm::RunsRead>(&state).await?;
    Ok(Json(svc::get(&state, &ctx, g, run_id(&id)?).await?.into()))
}

/// Cancels a run: it ends `cancelled` at once, its hold (and a leased run's slot) back; a
/// worker holding it gets 409 `RUN_CANCELLED` at its next call. An ended run is returned as
/// it is.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = RunResponse), (status = 404)), security(("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<Json<RunResponse>> {
    let g = ctx.require::<perm::RunsWrite>(&state).await?;
    Ok(Json(
        svc::cancel(&state, &ctx, g, run_id(&id)?).await?.into(),
    ))
}
