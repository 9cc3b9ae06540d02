//! `POST /v1/tenants/{id}/export`: an archive written by a node in the background and kept in
//! the object store for download, so any node can serve it. Under `exports/<tenant_id>/`:
//! `<export_id>.json`, the record (its status, then its size and sha256), and
//! `<export_id>.tar`, the archive once whole. Both go after [`KEEP`], swept by the purge job,
//! and with the tenant at its purge.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as BlobPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tenantd_core::ids::TenantId;
use tenantd_core::tenant::Tenant;
use tenantd_core::{Error, Result, time};

use super::Silent;
use super::export::{ExportOptions, export};
use crate::context::Caller;
use crate::state::AppState;

/// How long an export is kept for download.
pub const KEEP: chrono::Duration = chrono::Duration::hours(24);

/// How often a running export's node saves its record again (`alive_at`).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running export whose record has not been saved for this long lost its node (stopped,
/// killed): it is answered, and saved, `failed`.
const ABANDONED: chrono::Duration = chrono::Duration::seconds(60);

/// Where an export stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Being written.
    Running,
    /// Whole: it can be downloaded.
    Ready,
    /// It stopped; `error` says why.
    Failed,
}

/// An export's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    pub id: String,
    pub tenant_id: String,
    pub status: ExportStatus,
    /// Whether members' password hashes are in it.
    pub credentials: bool,
    pub started_at: String,
    /// When its node last said it is still writing it (while running).
    #[serde(default)]
    pub alive_at: Option<String>,
    pub finished_at: Option<String>,
    /// When it is removed.
    pub expires_at: String,
    /// The archive's size and sha256, once ready.
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// Why it failed (no internals: the node's log has the rest).
    pub error: Option<String>,
}

fn prefix(tenant: TenantId) -> String {
    format!("exports/{tenant}")
}

fn record_key(tenant: TenantId, id: &str) -> BlobPath {
    BlobPath::from(format!("{}/{id}.json", prefix(tenant)))
}

fn archive_key(tenant: TenantId, id: &str) -> BlobPath {
    BlobPath::from(format!("{}/{id}.tar", prefix(tenant)))
}

fn store_err(e: object_store::Error) -> Error {
    Error::Internal(format!("exports: {e}"))
}

async fn save(store: &dyn ObjectStore, rec: &ExportRecord) -> Result<()> {
    let tenant = rec
        .tenant_id
        .parse()
        .map(TenantId)
        .map_err(|_| Error::Internal("export record's tenant id".into()))?;
    let body = serde_json::to_vec(rec).map_err(|e| Error::Internal(e.to_string()))?;
    store
        .put(&record_key(tenant, &rec.id), PutPayload::from(body))
        .await
        .map_err(store_err)?;
    Ok(())
}

/// Starts exporting `tenant` on this node; its record, `running`.
pub async fn start(
    state: &AppState,
    op: &Caller,
    tenant: &Tenant,
    opts: ExportOptions,
) -> Result<ExportRecord> {
    let now = time::now();
    let rec = ExportRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.id.to_string(),
        status: ExportStatus::Running,
        credentials: opts.include_credentials,
        started_at: time::format(now),
        alive_at: Some(time::format(now)),
        finished_at: None,
        expires_at: time::format(now + KEEP),
        bytes: None,
        sha256: None,
        error: None,
    };
    save(state.blobs.as_ref(), &rec).await?;
    let (st, op, t, r) = (state.clone(), op.clone(), tenant.clone(), rec.clone());
    tokio::spawn(async move {
        let mut r = r;
        let id = r.id.clone();
        let written = write(&st, &op, &t, &id, &opts);
        tokio::pin!(written);
        let outcome = loop {
            tokio::select! {
                out = &mut written => break out,
                _ = tokio::time::sleep(HEARTBEAT) => {
                    r.alive_at = Some(time::format(time::now()));
                    if let Err(e) = save(st.blobs.as_ref(), &r).await {
                        tracing::warn!(export_id = %r.id, error = %e, "an export's record could not be saved");
                    }
                }
            }
        };
        match outcome {
            Ok((bytes, sha)) => {
                r.status = ExportStatus::Ready;
                r.bytes = Some(bytes);
                r.sha256 = Some(sha);
            }
            Err(e) => {
                tracing::error!(export_id = %r.id, tenant = %t.id, error = %e, "a tenant export failed");
                r.status = ExportStatus::Failed;
                r.error = Some(match e {
                    Error::Internal(_) => "the export stopped; the node's log says why".into(),
                    other => other.to_string(),
                });
            }
        }
        r.finished_at = Some(time::format(time::now()));
        if let Err(e) = save(st.blobs.as_ref(), &r).await {
            tracing::error!(export_id = %r.id, error = %e, "an export's record could not be saved");
        }
    });
    Ok(rec)
}

/// Writes the archive to a local file, then into the object store; its size and sha256.
async fn write(
    state: &AppState,
    op: &Caller,
    tenant: &Tenant,
    id: &str,
    opts: &ExportOptions,
) -> Result<(u64, String)> {
    let dir = state.config.data_dir.join("exports");
    std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(format!("exports: {e}")))?;
    let local = dir.join(format!("{id}.tar"));
    let result = async {
        export(state, op, tenant, &local, opts, &Silent).await?;
        upload(state.blobs.clone(), &local, archive_key(tenant.id, id)).await
    }
    .await;
    let _ = std::fs::remove_file(&local);
    result
}

async fn upload(
    store: Arc<dyn ObjectStore>,
    local: &std::path::Path,
    to: BlobPath,
) -> Result<(u64, String)> {
    use sha2::Digest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |e: std::io::Error| Error::Internal(format!("exports: {e}"));
    let mut file = tokio::fs::File::open(local).await.map_err(io)?;
    let mut out = object_store::buffered::BufWriter::new(store, to);
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        out.write_all(&buf[..n]).await.map_err(io)?;
        total += n as u64;
    }
    out.shutdown().await.map_err(io)?;
    Ok((total, hex::encode(sha.finalize())))
}

/// An export's record; `NotFound` for another tenant's id, an unknown one or one removed.
pub async fn get(state: &AppState, tenant: TenantId, id: &str) -> Result<ExportRecord> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(Error::NotFound);
    }
    let got = match state.blobs.get(&record_key(tenant, id)).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
        Err(e) => return Err(store_err(e)),
    };
    let body = got.bytes().await.map_err(store_err)?;
    let rec: ExportRecord = serde_json::from_slice(&body)
        .map_err(|e| Error::Internal(format!("export record: {e}")))?;
    if rec.tenant_id != tenant.to_string() {
        return Err(Error::NotFound);
    }
    Ok(abandoned(state, rec).await)
}

/// A running export whose node stopped saving its record is failed, and saved so.
async fn abandoned(state: &AppState, mut rec: ExportRecord) -> ExportRecord {
    let alive = rec.alive_at.as_deref().unwrap_or(&rec.started_at);
    let stale = time::format(time::now() - ABANDONED);
    if rec.status == ExportStatus::Running && alive < stale.as_str() {
        rec.status = ExportStatus::Failed;
        rec.error = Some(
            "the export stopped: its node went away before it was written; start another".into(),
        );
        rec.finished_at = Some(time::format(time::now()));
        if let Err(e) = save(state.blobs.as_ref(), &rec).await {
            tracing::warn!(export_id = %rec.id, error = %e, "an export's record could not be saved");
        }
    }
    rec
}

/// A ready export's bytes, streamed from the object store; `Conflict` while it is not ready.
pub async fn open(
    state: &AppState,
    tenant: TenantId,
    id: &str,
) -> Result<(ExportRecord, BoxStream<'static, Result<Bytes>>)> {
    let rec = get(state, tenant, id).await?;
    if rec.status != ExportStatus::Ready {
        return Err(Error::Conflict {
            field: "status".into(),
            message: match rec.status {
                ExportStatus::Running => "the export is still running".into(),
                _ => "the export failed; start another".into(),
            },
        });
    }
    let got = match state.blobs.get(&archive_key(tenant, id)).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
        Err(e) => return Err(store_err(e)),
    };
    Ok((rec, got.into_stream().map_err(store_err).boxed()))
}

/// Removes every object under `prefix`; how many.
pub(crate) async fn remove_prefix(store: &dyn ObjectStore, prefix: &str) -> Result<u64> {
    let metas: Vec<_> = store
        .list(Some(&BlobPath::from(prefix)))
        .try_collect()
        .await
        .map_err(store_err)?;
    let mut n = 0;
    for m in metas {
        match store.delete(&m.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => n += 1,
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(n)
}

/// Removes a tenant's exports (at its purge); how many objects.
pub(crate) async fn remove_all(state: &AppState, tenant: TenantId) -> Result<u64> {
    remove_prefix(state.blobs.as_ref(), &prefix(tenant)).await
}

/// Removes the exports past their `expires_at`; how many.
pub async fn sweep(state: &AppState) -> Result<u64> {
    let metas: Vec<_> = state
        .blobs
        .list(Some(&BlobPath::from("exports")))
        .try_collect()
        .await
        .map_err(store_err)?;
    let now = time::now();
    let mut n = 0;
    for m in metas {
        let Some(stem) = m.location.as_ref().strip_suffix(".json") else {
            continue;
        };
        let body = match state.blobs.get(&m.location).await {
            Ok(g) => g.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(store_err(e)),
        };
        let expired = serde_json::from_slice::<ExportRecord>(&body)
            .ok()
            .and_then(|r| time::parse(&r.expires_at))
            .is_none_or(|at| at <= now);
        if expired {
            for key in [BlobPath::from(format!("{stem}.tar")), m.location.clone()] {
                match state.blobs.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(store_err(e)),
                }
            }
            n += 1;
        }
    }
    Ok(n)
}
