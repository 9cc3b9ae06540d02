use bytes::Bytes;
use chrono::Duration;
use object_store::path::Path as BlobPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;
use sha2::{Digest, Sha256};
use tenantd_core::access::Granted;
use tenantd_core::ids::FileId;
use tenantd_core::resource::{FileMeta, NewFile, ResourceName, blob_key};
use tenantd_core::{Error, Result, time};

use crate::context::Ctx;
use crate::state::AppState;

/// A pending upload older than this was left by a crash and is released.
const STALE_UPLOAD_MINUTES: i64 = 15;

fn blob_path(ctx: &Ctx, id: FileId) -> BlobPath {
    BlobPath::from(blob_key(ctx.tenant.id, id))
}

fn content_type(v: Option<&str>) -> Result<String> {
    let ct = v.unwrap_or("application/octet-stream").trim();
    if ct.is_empty() || ct.len() > 255 || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Error::invalid(
            "content-type",
            "a media type of printable ASCII, at most 255 characters",
        ));
    }
    Ok(ct.to_owned())
}

/// Stores a file: its bytes are reserved against `storage_bytes` first (in the same
/// transaction as a pending record), then written under the tenant's prefix, then the record
/// is marked stored with its audit event. A failed write releases the reservation, so
/// nothing is counted that is not stored.
pub async fn upload(
    state: &AppState,
    ctx: &Ctx,
    _: Granted,
    name: Option<&str>,
    ct: Option<&str>,
    body: Bytes,
) -> Result<FileMeta> {
    let name = ResourceName::parse(name.unwrap_or("upload"))?;
    let content_type = content_type(ct)?;
    let new = NewFile {
        id: FileId::new(),
        name,
        size: body.len() as i64,
        sha256: hex::encode(Sha256::digest(&body)),
        content_type,
        created_by: ctx.caller.actor.audit_name(),
    };
    let cell = state.cell(&ctx.scope)?;
    let stale_before = time::now() - Duration::minutes(STALE_UPLOAD_MINUTES);
    for stale in cell
        .reserve_file(
            &ctx.scope,
            &new,
            ctx.plan.limit("storage_bytes"),
            stale_before,
        )
        .await?
    {
        let _ = state.blobs.delete(&blob_path(ctx, stale)).await;
    }
    if let Err(e) = state
        .blobs
        .put(&blob_path(ctx, new.id), PutPayload::from_bytes(body))
        .await
    {
        tracing::error!(error = %e, "blob write failed; releasing the reservation");
        cell.abort_file(&ctx.scope, new.id).await?;
        return Err(Error::Unavailable);
    }
    let ev = ctx.event(
        "files.create",
        "files",
        Some(new.id.to_string()),
        json!({"name": new.name.as_str(), "size": new.size, "sha256": new.sha256}),
    );
    match cell.complete_file(&ctx.scope, new.id, ev).await {
        Ok(meta) => Ok(meta),
        Err(e) => {
            let _ = state.blobs.delete(&blob_path(ctx, new.id)).await;
            let _ = cell.abort_file(&ctx.scope, new.id).await;
            Err(e)
        }
    }
}

/// Refuses an upload of `declared` bytes that cannot fit the tenant's remaining storage,
/// before its body is read (the reservation still decides, exactly, under concurrency).
pub async fn precheck(state: &AppState, ctx: &Ctx, declared: u64) -> Result<()> {
    let Some(limit) = ctx.plan.limit("storage_bytes") else {
        return Ok(());
    };
    let used = state
        .cell(&ctx.scope)?
        .counters(&ctx.scope)
        .await?
        .get("storage_bytes")
        .copied()
        .unwrap_or(0);
    tenantd_core::plans::check_quota(
        "storage_bytes",
        used,
        Some(limit),
        declared.min(i64::MAX as u64) as i64,
    )
}

/// A file's metadata.
pub async fn get(state: &AppState, ctx: &Ctx, _: Granted, id: FileId) -> Result<FileMeta> {
    state.cell(&ctx.scope)?.get_file(&ctx.scope, id).await
}

/// A file's metadata and bytes.
pub async fn content(
    state: &AppState,
    ctx: &Ctx,
    _: Granted,
    id: FileId,
) -> Result<(FileMeta, Bytes)> {
    let meta = state.cell(&ctx.scope)?.get_file(&ctx.scope, id).await?;
    let got = state
        .blobs
        .get(&blob_path(ctx, id))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound,
            other => Error::Internal(format!("blob read: {other}")),
        })?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| Error::Internal(format!("blob read: {e}")))?;
    Ok((meta, bytes))
}

/// A page of the tenant's files.
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    _: Granted,
    after: Option<FileId>,
    limit: u32,
) -> Result<Vec<FileMeta>> {
    state
        .cell(&ctx.scope)?
        .list_files(&ctx.scope, after, limit)
        .await
}

/// Deletes a file: the record and its count go in one transaction, then the blob.
pub async fn delete(state: &AppState, ctx: &Ctx, _: Granted, id: FileId) -> Result<()> {
    let ev = ctx.event("files.delete", "files", Some(id.to_string()), json!({}));
    state
        .cell(&ctx.scope)?
        .delete_file(&ctx.scope, id, ev)
        .await?;
    if let Err(e) = state.blobs.delete(&blob_path(ctx, id)).await {
        tracing::warn!(error = %e, "blob delete failed; the blob is orphaned (not counted)");
    }
    Ok(())
}
