//! `/v1/auth/*` and the JWKS.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantd_core::drafts::SignupDraft;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::dto::{TenantResponse, UserResponse};
use crate::error::ApiResult;
use crate::http::{ApiJson, RequestMeta};
use crate::resolve::Authenticated;
use crate::services::auth as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(switch))
        .routes(routes!(change_password))
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
}

#[derive(Deserialize, ToSchema)]
pub struct SignupTenant {
    pub name: String,
    pub slug: String,
    pub plan: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    pub name: String,
    pub tenant: SignupTenant,
}

impl TryFrom<SignupRequest> for SignupDraft {
    type Error = tenantd_core::Error;

    /// Every field error at once.
    fn try_from(r: SignupRequest) -> Result<Self, Self::Error> {
        SignupDraft::parse(
            &r.email,
            &r.password,
            &r.name,
            &r.tenant.name,
            &r.tenant.slug,
            r.tenant.plan.as_deref(),
        )
    }
}

/// Tokens, with the user and tenant they act for.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserResponse>,
    pub tenant: TenantResponse,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access-token lifetime, seconds.
    pub expires_in: i64,
}

impl TokenResponse {
    pub fn new(user: Option<UserResponse>, tenant: TenantResponse, t: svc::Tokens) -> Self {
        Self {
            user,
            tenant,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: t.token_type.into(),
            expires_in: t.expires_in,
        }
    }
}

/// Self-serve signup: creates the user, a tenant they own, and a session.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = TokenResponse), (status = 409, description = "slug or email taken"), (status = 422, description = "invalid input")))]
async fn signup(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<impl IntoResponse> {
    let out = svc::signup(&state, &meta, SignupDraft::try_from(req)).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse::new(
            Some(out.user.into()),
            out.tenant.into(),
            out.tokens,
        )),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Tenant id or slug; omitted: the last used (or only) membership.
    pub tenant: Option<String>,
}

/// Password login.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "bad credentials"), (status = 403, description = "tenant suspended")))]
async fn login(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let (user, tenant, tokens) = svc::login(
        &state,
        &meta,
        &req.email,
        &req.password,
        req.tenant.as_deref(),
    )
    .await?;
    Ok(Json(TokenResponse::new(
        Some(user.into()),
        tenant.into(),
        tokens,
    )))
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Rotates a refresh token; presenting a spent one revokes its whole family.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Object), (status = 401, description = "invalid, spent or revoked")))]
async fn refresh(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<svc::Tokens>> {
    Ok(Json(svc::refresh(&state, &meta, &req.refresh_token).await?))
}

/// Ends the session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", responses((status = 204), (status = 422, description = "an API key has no session: delete the key instead")), security(("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<StatusCode> {
    svc::logout(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct SwitchRequest {
    /// Tenant id or slug of another membership.
    pub tenant: String,
}

/// Tokens for another of the caller's memberships.
#[utoipa::path(post, path = "/v1/auth/switch", tag = "auth", request_body = SwitchRequest,
    responses((status = 200, body = TokenResponse), (status = 404, description = "not a member")), security(("bearer" = [])))]
async fn switch(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(req): ApiJson<SwitchRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let (tenant, tokens) = svc::switch(&state, &caller, &req.tenant).await?;
    Ok(Json(TokenResponse::new(None, tenant.into(), tokens)))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Changes the signed-in user's password; their other sessions end (refresh tokens stop
/// working). Throttled like sign-in.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = PasswordChangeRequest,
    responses((status = 204, description = "changed; other sessions ended"), (status = 422, description = "wrong current password, or a new one that is too short"), (status = 429, description = "too many attempts")), security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(req): ApiJson<PasswordChangeRequest>,
) -> ApiResult<StatusCode> {
    svc::change_password(&state, &caller, &req.current_password, &req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, body = Object)))]
async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.keys.jwks())
}

/// OpenID discovery: the issuer every access token names (`public_url`) and where its keys
/// are, so a product service verifies tenantd's tokens with any standard JWT library.
/// tenantd issues access tokens through its own sign-in API, not OAuth flows: the document
/// names no authorization endpoint.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "auth", responses((status = 200, body = Object)))]
async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.keys.issuer();
    Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
        "claims_supported": ["sub", "tid", "role", "sid", "iss", "aud", "exp", "iat", "jti"],
    }))
}
