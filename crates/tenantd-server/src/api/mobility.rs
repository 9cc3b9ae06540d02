//! `/v1/tenants/{id}/move`: a tenant's move between cells, started and watched by a platform
//! admin (`docs/design/mobility.md`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantd_core::tenant::CellName;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::http::ApiJson;
use crate::mobility::{Silent, moving};
use crate::resolve::Authenticated;
use crate::services::tenants as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_move, get_move))
}

#[derive(Deserialize, ToSchema)]
pub struct MoveRequest {
    /// The cell to move the tenant to.
    pub cell: String,
}

/// A move and where it stands.
#[derive(Serialize, ToSchema)]
pub struct MoveResponse {
    pub move_id: String,
    /// `copying`, `frozen`, `switched`, `done` or `aborted`.
    pub phase: String,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub started_at: String,
    pub updated_at: String,
    /// How long writes were frozen, once the move has switched.
    pub freeze_ms: Option<u64>,
}

impl From<&tenantd_core::store::MoveRecord> for MoveResponse {
    fn from(m: &tenantd_core::store::MoveRecord) -> Self {
        MoveResponse {
            move_id: m.id.clone(),
            phase: m.phase.clone(),
            tenant_id: m.tenant_id.to_string(),
            from: m.source_cell.to_string(),
            to: m.target_cell.to_string(),
            started_at: m.started_at.clone(),
            updated_at: m.updated_at.clone(),
            freeze_ms: m.detail.get("freeze_ms").and_then(|v| v.as_u64()),
        }
    }
}

/// Starts moving a tenant to another cell (platform admins): 202, then the move runs on this
/// node while the tenant keeps serving; watch it with `GET`. If the node stops midway,
/// `tenantd tenant move <slug> --resume` (or `--abort`) carries it on.
#[utoipa::path(post, path = "/v1/tenants/{id}/move", tag = "tenants", request_body = MoveRequest,
    responses((status = 202, body = MoveResponse), (status = 403), (status = 404),
        (status = 409, description = "CONFLICT: the tenant is already in that cell, being moved, the platform tenant, or not movable in its status"),
        (status = 410, description = "TENANT_DELETED"),
        (status = 422, description = "no such cell")),
    security(("bearer" = [])))]
async fn start_move(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MoveRequest>,
) -> ApiResult<(StatusCode, Json<MoveResponse>)> {
    caller.require_platform_admin(&state).await?;
    let tenant = svc::visible(&state, &caller, &id).await?;
    let rec = moving::plan(&state, &tenant, &CellName::new(req.cell)).await?;
    let body = MoveResponse::from(&rec);
    let st = state.clone();
    tokio::spawn(async move {
        let id = rec.id.clone();
        if let Err(e) = moving::run(&st, &caller, rec, &Silent).await {
            tracing::error!(move_id = %id, error = %e, "a tenant move stopped; resume it with `tenantd tenant move --resume`");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The tenant's latest move (platform admins).
#[utoipa::path(get, path = "/v1/tenants/{id}/move", tag = "tenants",
    responses((status = 200, body = MoveResponse), (status = 403), (status = 404, description = "no such tenant, or it was never moved")),
    security(("bearer" = [])))]
async fn get_move(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<MoveResponse>> {
    caller.require_platform_admin(&state).await?;
    let tenant = svc::visible(&state, &caller, &id).await?;
    let m = state
        .catalog
        .latest_move(tenant.id)
        .await?
        .ok_or(tenantd_core::Error::NotFound)?;
    Ok(Json(MoveResponse::from(&m)))
}
