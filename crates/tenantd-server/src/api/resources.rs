//! `/v1/{kind}` and `/v1/{kind}/{id}` for the seven resource kinds.

use axum::Json;
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tenantd_core::Error;
use tenantd_core::access::perm;
use tenantd_core::error::Validator;
use tenantd_core::ids::ResourceId;
use tenantd_core::resource::{
    ListQuery, Resource, ResourceChanges, ResourceDraft, ResourceKind, ResourceName, SharedFilter,
    SharingDraft, Spec,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::cursor;
use crate::api::dto::{Page, ResourceResponse};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiQuery};
use crate::resolve::InTenant;
use crate::services::resources as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}

/// The kind (and id) a path names. An unknown kind is a route that does not exist and a
/// malformed id an item that does not exist: both 404, answered before authentication like
/// any other unknown route.
struct Target {
    kind: ResourceKind,
    id: Option<ResourceId>,
}

impl Target {
    fn id(&self) -> Result<ResourceId, Error> {
        self.id.ok_or(Error::NotFound)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        let mut kind = None;
        let mut id = None;
        for (name, value) in &params {
            match name {
                "kind" => {
                    kind = Some(ResourceKind::parse(value, "kind").map_err(|_| Error::NotFound)?)
                }
                "id" => id = Some(ResourceId::parse(value, "id").map_err(|_| Error::NotFound)?),
                _ => {}
            }
        }
        Ok(Target {
            kind: kind.ok_or(Error::NotFound)?,
            id,
        })
    }
}

fn with_etag(status: StatusCode, r: Resource) -> Response {
    let etag = HeaderValue::from_str(&r.etag()).ok();
    let mut resp = (status, Json(ResourceResponse::from(r))).into_response();
    if let Some(e) = etag {
        resp.headers_mut().insert(header::ETAG, e);
    }
    resp
}

#[derive(Deserialize, ToSchema)]
pub struct SharingRequest {
    /// `private` (default), `global` (platform tenant only) or `selective`.
    pub mode: String,
    /// Tenant ids, for `selective`.
    pub tenants: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateResourceRequest {
    /// Required (a missing or null name is a 422 naming it).
    #[schema(value_type = String, required = true)]
    pub name: Option<String>,
    /// A JSON object of at most 256 KiB and 32 levels; omitted: `{}`.
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Value>,
    pub sharing: Option<SharingRequest>,
}

/// Creates a resource of `kind`; counts against the plan's quota for that kind.
#[utoipa::path(post, path = "/v1/{kind}", tag = "resources", request_body = CreateResourceRequest,
    params(("kind" = String, Path, description = "agents, tools, prompts, workflows, knowledge-sources, projects or memories")),
    responses((status = 201, body = ResourceResponse, headers(("ETag" = String))), (status = 403, description = "QUOTA_EXCEEDED or FORBIDDEN"), (status = 409), (status = 422)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    t: Target,
    InTenant(ctx): InTenant,
    ApiJson(req): ApiJson<CreateResourceRequest>,
) -> ApiResult<Response> {
    let kind = t.kind;
    let g = ctx.require::<perm::ResourcesWrite>(&state).await?;
    let draft = ResourceDraft::try_from(req)?;
    Ok(with_etag(
        StatusCode::CREATED,
        svc::create(&state, &ctx, g, kind, draft).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Exact name.
    pub name: Option<String>,
    /// `include` (default), `exclude` or `only` items shared with the tenant.
    pub shared: Option<String>,
}

/// The tenant's items of `kind`, plus those shared with it.
#[utoipa::path(get, path = "/v1/{kind}", tag = "resources", params(("kind" = String, Path), ListParams),
    responses((status = 200, body = Page<ResourceResponse>)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    t: Target,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<ResourceResponse>>> {
    let kind = t.kind;
    let g = ctx.require::<perm::ResourcesRead>(&state).await?;
    let limit = cursor::limit(q.limit)?;
    let shared = match q.shared.as_deref() {
        None => SharedFilter::Include,
        Some(s) => SharedFilter::parse(s, "shared")?,
    };
    let after = cursor::decode_id(q.cursor.as_deref(), "r")?.map(ResourceId);
    let items = svc::list(
        &state,
        &ctx,
        g,
        kind,
        ListQuery {
            limit: limit + 1,
            after,
            name: q.name,
            shared,
        },
    )
    .await?;
    let (items, next) = cursor::page(items, limit, |r| cursor::encode("r", &r.id.to_string()));
    Ok(Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

/// One item (owned or shared with the tenant); another tenant's id is a 404.
#[utoipa::path(get, path = "/v1/{kind}/{id}", tag = "resources", params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ResourceResponse, headers(("ETag" = String))), (status = 404)), security(("bearer" = [])))]
async fn get(
    State(state): State<AppState>,
    t: Target,
    InTenant(ctx): InTenant,
) -> ApiResult<Response> {
    let (kind, id) = (t.kind, t.id()?);
    let g = ctx.require::<perm::ResourcesRead>(&state).await?;
    Ok(with_etag(
        StatusCode::OK,
        svc::get(&state, &ctx, g, kind, id).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct PatchResourceRequest {
    pub name: Option<String>,
    /// Replaces the spec (at most 256 KiB and 32 levels).
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Value>,
    pub sharing: Option<SharingRequest>,
}

impl SharingRequest {
    fn parse(&self, v: &mut Validator) -> Option<SharingDraft> {
        SharingDraft::parse(&self.mode, self.tenants.as_deref(), v)
    }
}

impl TryFrom<CreateResourceRequest> for ResourceDraft {
    type Error = Error;

    /// Every field error at once (422 naming each).
    fn try_from(req: CreateResourceRequest) -> Result<Self, Error> {
        let mut v = Validator::default();
        let name = match &req.name {
            Some(n) => v.check(ResourceName::parse(n)),
            None => {
                v.push(tenantd_core::FieldError::new("name", "is required"));
                None
            }
        };
        let spec = v.check(Spec::parse(
            req.spec.unwrap_or_else(|| serde_json::json!({})),
        ));
        let sharing = req.sharing.as_ref().map(|s| s.parse(&mut v));
        v.finish()?;
        match (name, spec, sharing) {
            (Some(name), Some(spec), None) => Ok(Self {
                name,
                spec,
                sharing: None,
            }),
            (Some(name), Some(spec), Some(Some(s))) => Ok(Self {
                name,
                spec,
                sharing: Some(s),
            }),
            _ => Err(Error::Internal("validator passed an unparsed field".into())),
        }
    }
}

impl TryFrom<PatchResourceRequest> for ResourceChanges {
    type Error = Error;

    /// Every field error at once; `if_version` comes from the `If-Match` header.
    fn try_from(req: PatchResourceRequest) -> Result<Self, Error> {
        let mut v = Validator::default();
        let name = req.name.as_deref().map(|n| v.check(ResourceName::parse(n)));
        let spec = req.spec.map(|s| v.check(Spec::parse(s)));
        let sharing = req.sharing.as_ref().map(|s| s.parse(&mut v));
        v.finish()?;
        Ok(Self {
            name: name.flatten(),
            spec: spec.flatten(),
            sharing: sharing.flatten(),
            if_version: None,
        })
    }
}

/// Changes an item the tenant owns; honours `If-Match`. Shared items are read-only (403).
#[utoipa::path(patch, path = "/v1/{kind}/{id}", tag = "resources", request_body = PatchResourceRequest,
    params(("kind" = String, Path), ("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ResourceResponse), (status = 403), (status = 404), (status = 412)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    t: Target,
    InTenant(ctx): InTenant,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PatchResourceRequest>,
) -> ApiResult<Response> {
    let (kind, id) = (t.kind, t.id()?);
    let g = ctx.require::<perm::ResourcesWrite>(&state).await?;
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\"invalid\""));
    // A precondition tenantd never issued fails before the body is looked at.
    let if_version = ResourceChanges::if_version(if_match)?;
    let changes = ResourceChanges {
        if_version,
        ..ResourceChanges::try_from(req)?
    };
    Ok(with_etag(
        StatusCode::OK,
        svc::update(&state, &ctx, g, kind, id, changes).await?,
    ))
}

/// Deletes an item the tenant owns.
#[utoipa::path(delete, path = "/v1/{kind}/{id}", tag = "resources", params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    t: Target,
    InTenant(ctx): InTenant,
) -> ApiResult<StatusCode> {
    let (kind, id) = (t.kind, t.id()?);
    let g = ctx.require::<perm::ResourcesWrite>(&state).await?;
    svc::delete(&state, &ctx, g, kind, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
