//! `/v1/members`, `/v1/invitations`, `/v1/api-keys`.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use tenantd_core::Error;
use tenantd_core::access::{Role, perm};
use tenantd_core::ids::{ApiKeyId, InvitationId, UserId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::TokenResponse;
use crate::api::dto::{ApiKeyResponse, InvitationResponse, Items, MemberResponse};
use crate::error::ApiResult;
use crate::http::{ApiJson, RequestMeta};
use crate::resolve::InTenant;
use crate::services::identity as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(invite, list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
        .routes(routes!(set_password))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

/// An id in a path: one that does not parse names nothing, so it is a 404 like any other.
fn path_id<T>(
    s: &str,
    parse: impl Fn(&str, &str) -> Result<T, tenantd_core::FieldError>,
) -> Result<T, Error> {
    parse(s, "id").map_err(|_| Error::NotFound)
}

/// The tenant's members.
#[utoipa::path(get, path = "/v1/members", tag = "members", responses((status = 200, body = Items<MemberResponse>)), security(("bearer" = [])))]
async fn list_members(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
) -> ApiResult<Json<Items<MemberResponse>>> {
    let g = ctx.require::<perm::MembersRead>(&state).await?;
    let items = svc::list_members(&state, &ctx, g).await?;
    Ok(Json(Items {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleRequest {
    /// `owner`, `admin`, `member`, `viewer` or `auditor`.
    pub role: String,
}

/// Changes a member's role. The last owner cannot be demoted.
#[utoipa::path(patch, path = "/v1/members/{user_id}", tag = "members", request_body = RoleRequest,
    responses((status = 200, body = MemberResponse), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
async fn update_member(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<RoleRequest>,
) -> ApiResult<Json<MemberResponse>> {
    let g = ctx.require::<perm::MembersWrite>(&state).await?;
    let user = path_id(&user_id, UserId::parse)?;
    let role = Role::parse(&req.role, "role")?;
    Ok(Json(
        svc::update_member(&state, &ctx, g, user, role)
            .await?
            .into(),
    ))
}

/// Removes a member (or leaves). The last owner cannot be removed.
#[utoipa::path(delete, path = "/v1/members/{user_id}", tag = "members",
    responses((status = 204), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    // Anyone may leave; removing someone else needs members:write (checked by the service).
    let user = path_id(&user_id, UserId::parse)?;
    svc::remove_member(&state, &ctx, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct InviteRequest {
    pub email: String,
    pub role: String,
}

/// Invites someone; counts against the `users` quota until used, revoked or expired.
#[utoipa::path(post, path = "/v1/invitations", tag = "members", request_body = InviteRequest,
    responses((status = 201, body = InvitationResponse), (status = 403, description = "FORBIDDEN or QUOTA_EXCEEDED"), (status = 409)), security(("bearer" = [])))]
async fn invite(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiJson(req): ApiJson<InviteRequest>,
) -> ApiResult<impl IntoResponse> {
    let g = ctx.require::<perm::MembersWrite>(&state).await?;
    let (inv, token) = svc::invite(&state, &ctx, g, &req.email, &req.role).await?;
    let mut body = InvitationResponse::from(inv);
    body.token = Some(token);
    Ok((StatusCode::CREATED, Json(body)))
}

/// The tenant's invitations.
#[utoipa::path(get, path = "/v1/invitations", tag = "members", responses((status = 200, body = Items<InvitationResponse>)), security(("bearer" = [])))]
async fn list_invitations(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
) -> ApiResult<Json<Items<InvitationResponse>>> {
    let g = ctx.require::<perm::MembersWrite>(&state).await?;
    let items = svc::list_invitations(&state, &ctx, g).await?;
    Ok(Json(Items {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes a pending invitation.
#[utoipa::path(delete, path = "/v1/invitations/{id}", tag = "members", responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn revoke_invitation(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let g = ctx.require::<perm::MembersWrite>(&state).await?;
    svc::revoke_invitation(&state, &ctx, g, path_id(&id, InvitationId::parse)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct AcceptRequest {
    pub token: String,
    /// For a new account.
    pub name: Option<String>,
    /// A new account's password, or an existing account's to prove it.
    pub password: Option<String>,
}

/// Accepts an invitation (no authentication): tokens for the new membership. Used, revoked
/// or expired tokens answer 404.
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "members", request_body = AcceptRequest,
    responses((status = 201, body = TokenResponse), (status = 404), (status = 409)))]
async fn accept_invitation(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(req): ApiJson<AcceptRequest>,
) -> ApiResult<impl IntoResponse> {
    let (tenant, tokens) = svc::accept_invitation(
        &state,
        &meta,
        &req.token,
        req.name.as_deref(),
        req.password.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse::new(None, tenant.into(), tokens)),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct SetPasswordRequest {
    /// The one-time token `tenantd tenant import` (or `tenantd tenant password-links`) gave.
    pub token: String,
    pub password: String,
}

/// Sets the first password of an account that has none (a member an import created) through
/// its one-time link (no authentication); then sign in with `POST /v1/auth/login`. An
/// unknown, used or expired token, or an account with a password, answers 404.
#[utoipa::path(post, path = "/v1/auth/set-password", tag = "auth", request_body = SetPasswordRequest,
    responses((status = 204), (status = 404), (status = 422)))]
async fn set_password(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(req): ApiJson<SetPasswordRequest>,
) -> ApiResult<StatusCode> {
    crate::services::setups::set_password(&state, &meta, &req.token, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct CreateKeyRequest {
    pub name: String,
    /// The role the key acts with: at most the creator's.
    pub role: String,
    /// RFC 3339; omitted: no expiry.
    pub expires_at: Option<String>,
}

/// Creates an API key; the full key is in this response only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateKeyRequest,
    responses((status = 201, body = ApiKeyResponse), (status = 403), (status = 422)), security(("bearer" = [])))]
async fn create_key(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    let g = ctx.require::<perm::ApiKeysWrite>(&state).await?;
    let (key, secret) = svc::create_api_key(
        &state,
        &ctx,
        g,
        &req.name,
        &req.role,
        req.expires_at.as_deref(),
    )
    .await?;
    let mut body = ApiKeyResponse::from(key);
    body.key = Some(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// The tenant's API keys (prefixes only).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", responses((status = 200, body = Items<ApiKeyResponse>)), security(("bearer" = [])))]
async fn list_keys(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
) -> ApiResult<Json<Items<ApiKeyResponse>>> {
    let g = ctx.require::<perm::ApiKeysRead>(&state).await?;
    let items = svc::list_api_keys(&state, &ctx, g).await?;
    Ok(Json(Items {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn revoke_key(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let g = ctx.require::<perm::ApiKeysWrite>(&state).await?;
    svc::revoke_api_key(&state, &ctx, g, path_id(&id, ApiKeyId::parse)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
