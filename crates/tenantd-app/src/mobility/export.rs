//! `tenantd tenant export`: one tenant's archive, from one snapshot of its cell (and one of
//! the catalog), while it keeps serving. Parts are spooled to files beside the output while
//! their digests are taken, so the manifest can come first; the archive is written to
//! `<out>.partial` and renamed into place only once it is whole.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use object_store::ObjectStoreExt;
use object_store::path::Path as BlobPath;
use serde_json::json;
use tenantd_core::audit::Action;
use tenantd_core::ids::FileId;
use tenantd_core::resource::blob_key;
use tenantd_core::store::{CopySnapshot, Row, Table, Value};
use tenantd_core::tenant::{Tenant, TenantScope};
use tenantd_core::{Error, Result, time};

use super::Progress;
use super::archive::{self, Blobs, Head, MANIFEST, Manifest, Part, PartWriter, Place};
use crate::context::Caller;
use crate::state::AppState;

/// Rows between two progress reports.
const REPORT_EVERY: u64 = 1000;

/// What an export is asked for.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Members' password hashes too (`--include-credentials`).
    pub include_credentials: bool,
}

/// Writes `tenant`'s archive to `out`; its manifest.
pub async fn export(
    state: &AppState,
    op: &Caller,
    tenant: &Tenant,
    out: &Path,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let spool = spool_dir(out);
    let result = write(state, tenant, out, &spool, opts, progress).await;
    let _ = std::fs::remove_dir_all(&spool);
    let manifest = result?;
    let scope = TenantScope::unscoped_trusted(tenant.id, tenant.cell.clone());
    let ev = op.event(
        tenant.id,
        Action::TenantExported,
        "tenants",
        Some(tenant.id.to_string()),
        json!({"audit_seq": manifest.audit.seq, "parts": manifest.parts.len(),
               "blobs": manifest.blobs.count, "credentials": manifest.credentials}),
    );
    state.cell(&scope)?.append_audit(&scope, vec![ev]).await?;
    Ok(manifest)
}

fn spool_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".parts-{}", std::process::id()));
    out.with_file_name(name)
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!("archive: {e}"))
}

async fn write(
    state: &AppState,
    tenant: &Tenant,
    out: &Path,
    spool: &Path,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    std::fs::create_dir_all(spool).map_err(io)?;
    let scope = TenantScope::unscoped_trusted(tenant.id, tenant.cell.clone());
    let cell = state.cell(&scope)?.clone();
    // The cell's snapshot first: the catalog's changes reach the chain through the outbox,
    // so a catalog read after it is never behind the chain it is archived with.
    let mut cell_snap = cell.copy_snapshot(&scope).await?;
    let mut cat_snap = state.catalog.copy_snapshot(&scope).await?;
    let mut parts = Vec::new();
    let mut head = Head {
        seq: 0,
        hash: String::new(),
    };
    let mut stored = Vec::new();
    let redact = |table: &Table, mut row: Row| {
        if table.name == "users"
            && !opts.include_credentials
            && let Some(i) = table.index("password_hash")
        {
            row[i] = Value::Null;
        }
        row
    };
    let sources: [(Place, &'static [Table], &mut Box<dyn CopySnapshot>); 2] = [
        (Place::Catalog, state.catalog.copy_tables(), &mut cat_snap),
        (Place::Cell, cell.copy_tables(), &mut cell_snap),
    ];
    for (place, tables, snap) in sources {
        for table in tables {
            let name = archive::part_name(place, table);
            progress.phase(&name, None);
            let file = File::create(spool.join(parts.len().to_string())).map_err(io)?;
            let mut w =
                PartWriter::new(BufWriter::with_capacity(1 << 20, file), table).map_err(io)?;
            // One query per table, its rows written as they arrive: the database produces
            // the next ones while this writes, digests and spools these.
            let mut since_report = 0u64;
            snap.each(table, &mut |row| {
                let row = redact(table, row);
                note(place, table, &row, &mut head, &mut stored);
                w.row(&row).map_err(io)?;
                since_report += 1;
                if since_report == REPORT_EVERY {
                    progress.advance(since_report);
                    since_report = 0;
                }
                Ok(())
            })
            .await?;
            progress.advance(since_report);
            parts.push(w.finish(name).map_err(io)?);
        }
    }
    cell_snap.close().await?;
    cat_snap.close().await?;

    let mut manifest = Manifest {
        format: archive::FORMAT.to_owned(),
        version: archive::VERSION,
        tenant: archive::ArchivedTenant {
            id: tenant.id.to_string(),
            slug: tenant.slug.to_string(),
        },
        created_at: time::format(time::now()),
        source: archive::Source {
            deployment: state.keys.issuer().to_owned(),
            cell: tenant.cell.to_string(),
        },
        credentials: opts.include_credentials,
        audit: head,
        blobs: Blobs {
            count: stored.len() as u64,
            bytes: stored.iter().map(|(_, size, _)| *size).sum(),
        },
        parts,
        signature: None,
    };
    let sig = state
        .keys
        .sign_detached(state.catalog.as_ref(), &manifest.signed_bytes())
        .await?;
    manifest.signature = Some(sig);

    let partial = out.with_extension("partial");
    let result = assemble(state, tenant, &manifest, spool, &partial, &stored, progress).await;
    match result {
        Ok(()) => std::fs::rename(&partial, out).map_err(io)?,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    }
    Ok(manifest)
}

/// What the manifest needs from the rows as they go by: the chain head, the stored files.
fn note(
    place: Place,
    table: &Table,
    row: &Row,
    head: &mut Head,
    stored: &mut Vec<(String, u64, String)>,
) {
    let col = |c: &str| table.index(c).and_then(|i| row.get(i));
    match (place, table.name) {
        (Place::Cell, "audit_events") => {
            if let (Some(Value::Int(seq)), Some(Value::Text(hash))) = (col("seq"), col("hash")) {
                *head = Head {
                    seq: *seq,
                    hash: hash.clone(),
                };
            }
        }
        (Place::Cell, "files") => {
            if let (
                Some(Value::Text(id)),
                Some(Value::Int(size)),
                Some(Value::Text(sha)),
                Some(Value::Text(st)),
            ) = (col("id"), col("size"), col("sha256"), col("state"))
                && st == "stored"
            {
                stored.push((id.clone(), u64::try_from(*size).unwrap_or(0), sha.clone()));
            }
        }
        _ => {}
    }
}

fn header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

async fn assemble(
    state: &AppState,
    tenant: &Tenant,
    manifest: &Manifest,
    spool: &Path,
    partial: &Path,
    stored: &[(String, u64, String)],
    progress: &dyn Progress,
) -> Result<()> {
    let mtime = u64::try_from(time::now().timestamp()).unwrap_or(0);
    let file = File::create(partial).map_err(io)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Internal(e.to_string()))?;
    tar.append_data(
        &mut header(body.len() as u64, mtime),
        MANIFEST,
        body.as_slice(),
    )
    .map_err(io)?;
    for (i, Part { name, bytes, .. }) in manifest.parts.iter().enumerate() {
        let f = File::open(spool.join(i.to_string())).map_err(io)?;
        tar.append_data(&mut header(*bytes, mtime), name, f)
            .map_err(io)?;
    }
    progress.phase("blobs", Some(stored.len() as u64));
    for (id, size, sha) in stored {
        let file_id: FileId = id
            .parse()
            .map(FileId)
            .map_err(|_| Error::Internal(format!("file id {id}")))?;
        let key = BlobPath::from(blob_key(tenant.id, file_id));
        let bytes = state
            .cell_blobs
            .of(&tenant.cell)
            .store
            .get(&key)
            .await
            .map_err(|e| Error::Internal(format!("blob {id}: {e}")))?
            .bytes()
            .await
            .map_err(|e| Error::Internal(format!("blob {id}: {e}")))?;
        use sha2::Digest;
        if bytes.len() as u64 != *size || hex::encode(sha2::Sha256::digest(&bytes)) != *sha {
            return Err(Error::Internal(format!(
                "blob {id} does not match its file's sha256: the object store holds other bytes"
            )));
        }
        tar.append_data(
            &mut header(*size, mtime),
            format!("blobs/{id}"),
            bytes.as_ref(),
        )
        .map_err(io)?;
        progress.advance(1);
    }
    let inner = tar.into_inner().map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}
