//! `/v1/files*`: raw uploads counted against `storage_bytes`.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tenantd_core::Error;
use tenantd_core::access::perm;
use tenantd_core::ids::FileId;
use tenantd_core::resource::FileMeta;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::cursor;
use crate::api::dto::Page;
use crate::error::ApiResult;
use crate::http::ApiQuery;
use crate::resolve::InTenant;
use crate::services::files as svc;
use crate::state::AppState;

/// The routes, with uploads allowed up to `file_limit` bytes.
pub fn routes(file_limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, list))
        .routes(routes!(get, delete))
        .routes(routes!(content))
        .layer(DefaultBodyLimit::max(file_limit))
}

/// A stored file.
#[derive(Serialize, ToSchema)]
pub struct FileResponse {
    pub id: String,
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// sha256 of the bytes, hex.
    pub sha256: String,
    pub content_type: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<FileMeta> for FileResponse {
    fn from(f: FileMeta) -> Self {
        Self {
            id: f.id.to_string(),
            name: f.name,
            size: f.size,
            sha256: f.sha256,
            content_type: f.content_type,
            created_at: f.created_at.to_rfc3339(),
            created_by: f.created_by,
        }
    }
}

fn id(s: &str) -> Result<FileId, Error> {
    FileId::parse(s, "id").map_err(|_| Error::NotFound)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name (default `upload`).
    pub name: Option<String>,
}

/// Uploads a file: the raw body, with its `Content-Type`. Counts against `storage_bytes`;
/// a body over the configured limit is a 413.
#[utoipa::path(post, path = "/v1/files", tag = "files", params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = FileResponse), (status = 403, description = "QUOTA_EXCEEDED"), (status = 413)), security(("bearer" = [])))]
async fn upload(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let g = ctx.require::<perm::ResourcesWrite>(&state).await?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::invalid("content-type", "not ASCII"))
        })
        .transpose()?;
    // Refuse what cannot fit before reading a byte: a declared length over the limit or over
    // the tenant's remaining storage. Then read at most the limit, a few uploads at a time.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.file_limit_bytes as u64) {
        return Ok(crate::error::problem_for_status(
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    if let Some(n) = declared {
        svc::precheck(&state, &ctx, n).await?;
    }
    let _permit = state
        .uploads
        .acquire()
        .await
        .map_err(|_| Error::Unavailable)?;
    let bytes = match axum::body::to_bytes(body, state.config.file_limit_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return Ok(crate::error::problem_for_status(
                StatusCode::PAYLOAD_TOO_LARGE,
            ));
        }
    };
    let meta = svc::upload(&state, &ctx, g, q.name.as_deref(), ct, bytes).await?;
    Ok((StatusCode::CREATED, Json(FileResponse::from(meta))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The tenant's files.
#[utoipa::path(get, path = "/v1/files", tag = "files", params(ListParams), responses((status = 200, body = Page<FileResponse>)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<FileResponse>>> {
    let g = ctx.require::<perm::ResourcesRead>(&state).await?;
    let limit = cursor::limit(q.limit)?;
    let after = cursor::decode_id(q.cursor.as_deref(), "f")?.map(FileId);
    let items = svc::list(&state, &ctx, g, after, limit + 1).await?;
    let (items, next) = cursor::page(items, limit, |f| cursor::encode("f", &f.id.to_string()));
    Ok(Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

/// A file's metadata; another tenant's id is a 404.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", responses((status = 200, body = FileResponse), (status = 404)), security(("bearer" = [])))]
async fn get(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(i): Path<String>,
) -> ApiResult<Json<FileResponse>> {
    let g = ctx.require::<perm::ResourcesRead>(&state).await?;
    Ok(Json(svc::get(&state, &ctx, g, id(&i)?).await?.into()))
}

/// A file's bytes, always as an attachment (never rendered in the API's origin).
#[utoipa::path(get, path = "/v1/files/{id}/content", tag = "files", responses((status = 200, content_type = "application/octet-stream"), (status = 404)), security(("bearer" = [])))]
async fn content(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(i): Path<String>,
) -> ApiResult<Response> {
    let g = ctx.require::<perm::ResourcesRead>(&state).await?;
    let (meta, bytes) = svc::content(&state, &ctx, g, id(&i)?).await?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.sha256)) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

/// Deletes a file and releases its bytes.
#[utoipa::path(delete, path = "/v1/files/{id}", tag = "files", responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(i): Path<String>,
) -> ApiResult<StatusCode> {
    let g = ctx.require::<perm::ResourcesWrite>(&state).await?;
    svc::delete(&state, &ctx, g, id(&i)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
