use bytes::Bytes;
use chrono::Duration;
use object_store::path::Path as BlobPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::json;
use sha2::{Digest, Sha256};
use tenantd_core::access::Granted;
use tenantd_core::access::perm::{ResourcesRead, ResourcesWrite};
use tenantd_core::audit::Action;
use tenantd_core::ids::FileId;
use tenantd_core::resource::{FileMeta, NewFile, ResourceName, blob_key};
use tenantd_core::{Error, Result, time};

use crate::context::Ctx;
use crate::state::AppState;

/// How long after its reservation an upload may still be storing its blob: the request
/// timeout (which drops a request's future, and so its write) plus a margin. A reservation
/// past it was left by a process that died or a request that was cut off, and is released.
pub fn upload_deadline(state: &AppState) -> Duration {
    Duration::seconds(state.config.request_timeout_secs as i64 + 5)
}

/// Releases every reservation past its deadline in every cell — its `storage_bytes`, its
/// pending row and its blob, if one was written — and returns how many. Idempotent, and safe
/// on several nodes at once (a release of what another node released is a no-op).
pub async fn release_expired_uploads(state: &AppState) -> Result<usize> {
    let mut released = 0;
    for (name, cell) in &state.cells {
        loop {
            let batch = cell.unscoped_expired_uploads(time::now(), 200).await?;
            if batch.is_empty() {
                break;
            }
            let blobs = state.cell_blobs.of(name);
            for (tenant, file) in &batch {
                // The blob first: if the release then fails, the next sweep finds it again.
                match blobs
                    .store
                    .delete(&BlobPath::from(blob_key(*tenant, *file)))
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(Error::Internal(format!("blob delete: {e}"))),
                }
                if let crate::config::BlobLocation::Dir(dir) = &blobs.location {
                    remove_local_staging(dir, &blob_key(*tenant, *file));
                }
                let scope =
                    tenantd_core::tenant::TenantScope::unscoped_trusted(*tenant, name.clone());
                cell.abort_file(&scope, *file).await?;
                released += 1;
            }
        }
    }
    if released > 0 {
        tracing::info!(released, "released the reservations of unanswered uploads");
    }
    Ok(released)
}

fn blob_path(ctx: &Ctx, id: FileId) -> BlobPath {
    BlobPath::from(blob_key(ctx.tenant.id, id))
}

/// The store of the request's tenant's cell.
fn store<'a>(state: &'a AppState, ctx: &Ctx) -> &'a dyn object_store::ObjectStore {
    state.cell_blobs.of(ctx.scope.cell()).store.as_ref()
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

/// Whether an object-store error comes from a full disk (ENOSPC somewhere in its causes).
fn out_of_space(e: &object_store::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28))
        {
            return true;
        }
        cause = c.source();
    }
    e.to_string().contains("No space left on device")
}

/// Removes what a write to the local object store leaves when the process dies mid-write:
/// object_store's `LocalFileSystem` writes `<key>#<n>` and renames it to `<key>` when done, so
/// a killed upload can leave the staging file behind, invisible to its `list` and `delete`.
fn remove_local_staging(dir: &std::path::Path, key: &str) {
    let path = dir.join(key);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}#", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Stores a file: its bytes are reserved against `storage_bytes` first (in the same
/// transaction as a pending record), then written under the tenant's prefix, then the record
/// is marked stored with its audit event. A failed write releases the reservation, so
/// nothing is counted that is not stored.
pub async fn upload(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesWrite>,
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
    let deadline = time::now() + upload_deadline(state);
    cell.reserve_file(&ctx.scope, &new, ctx.plan.limit("storage_bytes"), deadline)
        .await?;
    if let Err(e) = store(state, ctx)
        .put(&blob_path(ctx, new.id), PutPayload::from_bytes(body))
        .await
    {
        tracing::error!(error = %e, "blob write failed; releasing the reservation");
        cell.abort_file(&ctx.scope, new.id).await?;
        return Err(if out_of_space(&e) {
            Error::StorageFull
        } else {
            Error::Unavailable
        });
    }
    let ev = ctx.event(
        Action::FileCreate,
        "files",
        Some(new.id.to_string()),
        json!({"name": new.name.as_str(), "size": new.size, "sha256": new.sha256}),
    );
    match cell.complete_file(&ctx.scope, new.id, ev).await {
        Ok(meta) => Ok(meta),
        Err(e) => {
            let _ = store(state, ctx).delete(&blob_path(ctx, new.id)).await;
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
pub async fn get(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesRead>,
    id: FileId,
) -> Result<FileMeta> {
    state.cell(&ctx.scope)?.get_file(&ctx.scope, id).await
}

/// A file's metadata and bytes.
pub async fn content(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesRead>,
    id: FileId,
) -> Result<(FileMeta, Bytes)> {
    let meta = state.cell(&ctx.scope)?.get_file(&ctx.scope, id).await?;
    let got = store(state, ctx)
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
    _: Granted<ResourcesRead>,
    after: Option<FileId>,
    limit: u32,
) -> Result<Vec<FileMeta>> {
    state
        .cell(&ctx.scope)?
        .list_files(&ctx.scope, after, limit)
        .await
}

/// Deletes a file: the record and its count go in one transaction, then the blob.
pub async fn delete(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesWrite>,
    id: FileId,
) -> Result<()> {
    let ev = ctx.event(Action::FileDelete, "files", Some(id.to_string()), json!({}));
    state
        .cell(&ctx.scope)?
        .delete_file(&ctx.scope, id, ev)
        .await?;
    if let Err(e) = store(state, ctx).delete(&blob_path(ctx, id)).await {
        tracing::warn!(error = %e, "blob delete failed; the blob is orphaned (not counted)");
    }
    Ok(())
}
