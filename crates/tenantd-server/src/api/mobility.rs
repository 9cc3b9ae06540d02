//! `/v1/tenants/{id}/move` and `/v1/tenants/{id}/export`: a tenant's move between cells and
//! its archive, started and watched by a platform admin (`docs/design/mobility.md`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tenantd_core::tenant::CellName;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::http::ApiJson;
use crate::mobility::downloads::{self, ExportRecord};
use crate::mobility::export::ExportOptions;
use crate::mobility::{Silent, moving};
use crate::resolve::Authenticated;
use crate::services::tenants as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_move, get_move))
        .routes(routes!(start_export))
        .routes(routes!(get_export))
        .routes(routes!(download_export))
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
    /// What the freeze spent on its last catch-up and on its check, in ms (`by_table`), and
    /// the rows its last catch-up wrote (`rows_written`).
    #[schema(value_type = Option<Object>)]
    pub freeze_steps_ms: Option<serde_json::Value>,
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
            freeze_steps_ms: m.detail.get("freeze_steps_ms").cloned(),
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

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Members' password hashes too (default: without).
    #[serde(default)]
    pub include_credentials: bool,
}

/// An export and where it stands.
#[derive(Serialize, ToSchema)]
pub struct ExportResponse {
    pub export_id: String,
    pub tenant_id: String,
    /// `running`, `ready` or `failed`.
    pub status: String,
    pub include_credentials: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// When the archive is removed (24 hours after it started).
    pub expires_at: String,
    /// The archive's size in bytes and its sha256, once ready.
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Where to watch it.
    pub url: String,
    /// Where to download it once ready.
    pub download_url: String,
}

impl From<ExportRecord> for ExportResponse {
    fn from(r: ExportRecord) -> Self {
        let url = format!("/v1/tenants/{}/exports/{}", r.tenant_id, r.id);
        ExportResponse {
            download_url: format!("{url}/download"),
            url,
            export_id: r.id,
            tenant_id: r.tenant_id,
            status: serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            include_credentials: r.credentials,
            started_at: r.started_at,
            finished_at: r.finished_at,
            expires_at: r.expires_at,
            bytes: r.bytes,
            sha256: r.sha256,
            error: r.error,
        }
    }
}

/// Starts writing the tenant's archive (platform admins): 202 with `Location`, then the
/// archive is written on this node from one snapshot while the tenant keeps serving; watch it
/// with `GET` at `url` and fetch it from `download_url` once `ready`. It is kept 24 hours.
#[utoipa::path(post, path = "/v1/tenants/{id}/export", tag = "tenants", request_body = ExportRequest,
    responses((status = 202, body = ExportResponse), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn start_export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Response> {
    caller.require_platform_admin(&state).await?;
    let tenant = svc::visible(&state, &caller, &id).await?;
    let opts = ExportOptions {
        include_credentials: req.include_credentials,
    };
    let rec = downloads::start(&state, &caller, &tenant, opts).await?;
    let body = ExportResponse::from(rec);
    let location = HeaderValue::from_str(&body.url).ok();
    let mut r = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Some(l) = location {
        r.headers_mut().insert(header::LOCATION, l);
    }
    Ok(r)
}

/// An export of the tenant (platform admins); 404 for an unknown, expired or other tenant's id.
#[utoipa::path(get, path = "/v1/tenants/{id}/exports/{export_id}", tag = "tenants",
    responses((status = 200, body = ExportResponse), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn get_export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, export_id)): Path<(String, String)>,
) -> ApiResult<Json<ExportResponse>> {
    caller.require_platform_admin(&state).await?;
    let tenant = svc::visible(&state, &caller, &id).await?;
    let rec = downloads::get(&state, tenant.id, &export_id).await?;
    Ok(Json(rec.into()))
}

/// The archive (a tar file, manifest first; `docs/design/mobility.md`), streamed; 409
/// `CONFLICT` while it is running or if it failed.
#[utoipa::path(get, path = "/v1/tenants/{id}/exports/{export_id}/download", tag = "tenants",
    responses((status = 200, content_type = "application/x-tar"), (status = 403), (status = 404),
        (status = 409, description = "CONFLICT: the export is still running, or failed")),
    security(("bearer" = [])))]
async fn download_export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, export_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require_platform_admin(&state).await?;
    let tenant = svc::visible(&state, &caller, &id).await?;
    let (rec, stream) = downloads::open(&state, tenant.id, &export_id).await?;
    let mut r = Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Some(n) = rec.bytes {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let name = format!("attachment; filename=\"{}-{}.tar\"", tenant.slug, rec.id);
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(v) = rec
        .sha256
        .and_then(|s| HeaderValue::from_str(&format!("\"{s}\"")).ok())
    {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}
