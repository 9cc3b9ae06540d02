//! `/v1/tenants*` and `/v1/tenant`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantd_core::Error;
use tenantd_core::access::perm;
use tenantd_core::drafts::TenantDraft;
use tenantd_core::ids::TenantId;
use tenantd_core::tenant::TenantPatch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::cursor;
use crate::api::dto::{Page, TenantResponse};
use crate::error::ApiResult;
use crate::http::{ApiJson, ApiQuery};
use crate::resolve::{Authenticated, InTenant};
use crate::services::tenants as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(suspend))
        .routes(routes!(reactivate))
        .routes(routes!(set_plan))
        .routes(routes!(usage))
        .routes(routes!(health))
        .routes(routes!(current))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateTenantRequest {
    pub name: String,
    pub slug: String,
    pub plan: String,
    /// `client` (default), `solution` or `industry`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `us`, `eu` or `ap`: placed on a cell of that region.
    pub region: Option<String>,
    /// Initial settings (a JSON object); `data_residency` (`us`, `eu`, `ap`) chooses the
    /// region when `region` is absent, and must agree with it when both are given.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    pub owner_email: String,
}

#[derive(Serialize, ToSchema)]
pub struct OwnerInvitation {
    pub id: String,
    /// Shown once: the owner accepts it at `POST /v1/invitations/accept`.
    pub token: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTenantResponse {
    #[serde(flatten)]
    pub tenant: TenantResponse,
    /// When the owner had no account: their invitation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_invitation: Option<OwnerInvitation>,
}

impl TryFrom<CreateTenantRequest> for TenantDraft {
    type Error = Error;

    /// Every field error at once.
    fn try_from(r: CreateTenantRequest) -> Result<Self, Error> {
        TenantDraft::parse(
            &r.name,
            &r.slug,
            &r.plan,
            r.kind.as_deref(),
            r.region.as_deref(),
            r.settings,
            &r.owner_email,
        )
    }
}

impl TryFrom<PatchTenantRequest> for TenantPatch {
    type Error = Error;

    /// Every field error at once.
    fn try_from(r: PatchTenantRequest) -> Result<Self, Error> {
        TenantPatch::parse(r.name.as_deref(), r.settings, r.branding)
    }
}

/// Creates a tenant (platform admins).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenantRequest,
    responses((status = 201, body = CreatedTenantResponse), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(req): ApiJson<CreateTenantRequest>,
) -> ApiResult<impl IntoResponse> {
    let g = caller.require_platform_admin(&state).await?;
    let draft = TenantDraft::try_from(req)?;
    let out = svc::create(&state, &caller, g, draft).await?;
    let owner_invitation = out
        .owner_invitation
        .map(|(id, token, exp)| OwnerInvitation {
            id: id.to_string(),
            token,
            expires_at: exp.to_rfc3339(),
        });
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenantResponse {
            tenant: out.tenant.into(),
            owner_invitation,
        }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Lists tenants (platform admins).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses((status = 200, body = Page<TenantResponse>), (status = 403)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<TenantResponse>>> {
    let limit = cursor::limit(q.limit)?;
    let after = cursor::decode_id(q.cursor.as_deref(), "t")?.map(TenantId);
    let items = svc::list(&state, &caller, after, limit + 1).await?;
    let (items, next) = cursor::page(items, limit, |t| cursor::encode("t", &t.id.to_string()));
    Ok(Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

/// A tenant by id or slug (platform admins, or its members).
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = String, Path, description = "id or slug")),
    responses((status = 200, body = TenantResponse), (status = 404)), security(("bearer" = [])))]
async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantResponse>> {
    Ok(Json(svc::visible(&state, &caller, &id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct PatchTenantRequest {
    pub name: Option<String>,
    /// Merged key by key; a `null` value removes a key.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Merged key by key; a `null` value removes a key.
    #[schema(value_type = Option<Object>)]
    pub branding: Option<Value>,
}

/// Changes name, settings or branding (tenant owners and admins, platform admins).
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants", request_body = PatchTenantRequest,
    responses((status = 200, body = TenantResponse), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchTenantRequest>,
) -> ApiResult<Json<TenantResponse>> {
    let t = svc::update(&state, &caller, &id, TenantPatch::try_from(req)).await?;
    Ok(Json(t.into()))
}

/// Soft-deletes a tenant (its owner or a platform admin): 202, purged after retention.
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "tenants",
    responses((status = 202, body = TenantResponse), (status = 403), (status = 404)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let t = svc::delete(&state, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(TenantResponse::from(t))))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct SuspendRequest {
    pub reason: Option<String>,
}

/// Suspends a tenant (platform admins): its credentials stop working, its data is kept.
#[utoipa::path(post, path = "/v1/tenants/{id}/suspend", tag = "tenants", request_body = SuspendRequest,
    responses((status = 200, body = TenantResponse), (status = 403), (status = 404)), security(("bearer" = [])))]
async fn suspend(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SuspendRequest>,
) -> ApiResult<Json<TenantResponse>> {
    Ok(Json(
        svc::suspend(&state, &caller, &id, req.reason).await?.into(),
    ))
}

/// Reactivates a suspended tenant (platform admins).
#[utoipa::path(post, path = "/v1/tenants/{id}/reactivate", tag = "tenants",
    responses((status = 200, body = TenantResponse), (status = 403), (status = 404)), security(("bearer" = [])))]
async fn reactivate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantResponse>> {
    Ok(Json(svc::reactivate(&state, &caller, &id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct PlanRequest {
    pub plan: String,
    /// Apply a downgrade even where usage is over the new limits.
    #[serde(default)]
    pub force: bool,
}

/// Changes the plan (platform admins); a downgrade below usage needs `force`. A plan with
/// `isolation: dedicated` for a tenant in a pooled cell also starts its move to a free
/// dedicated cell of its region, on this node (watch it at `GET /v1/tenants/{id}/move`).
#[utoipa::path(put, path = "/v1/tenants/{id}/plan", tag = "tenants", request_body = PlanRequest,
    responses((status = 200, body = TenantResponse), (status = 403, description = "QUOTA_EXCEEDED or FORBIDDEN"), (status = 404)), security(("bearer" = [])))]
async fn set_plan(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PlanRequest>,
) -> ApiResult<Json<TenantResponse>> {
    let t = svc::set_plan(&state, &caller, &id, &req.plan, req.force).await?;
    if let Some(m) = crate::mobility::isolation::plan_isolation(&state, &t).await? {
        let (st, op) = (state.clone(), caller.clone());
        tokio::spawn(async move {
            let id = m.id.clone();
            if let Err(e) =
                crate::mobility::moving::run(&st, &op, m, &crate::mobility::Silent).await
            {
                tracing::error!(move_id = %id, error = %e, "a tenant move stopped; resume it with `tenantd tenant move --resume`");
            }
        });
    }
    Ok(Json(t.into()))
}

/// Usage against the plan's quotas.
#[utoipa::path(get, path = "/v1/tenants/{id}/usage", tag = "tenants",
    responses((status = 200, body = svc::Usage), (status = 404)), security(("bearer" = [])))]
async fn usage(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<svc::Usage>> {
    Ok(Json(svc::usage(&state, &caller, &id).await?))
}

/// The tenant's cell reachability, quota pressure and status.
#[utoipa::path(get, path = "/v1/tenants/{id}/health", tag = "tenants",
    responses((status = 200, body = Object), (status = 404)), security(("bearer" = [])))]
async fn health(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(svc::health(&state, &caller, &id).await?))
}

/// The tenant this request acts in.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenants", responses((status = 200, body = TenantResponse)), security(("bearer" = [])))]
async fn current(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
) -> ApiResult<Json<TenantResponse>> {
    ctx.require::<perm::TenantRead>(&state).await?;
    Ok(Json(ctx.tenant.into()))
}
