//! A move's blobs, when the two cells keep their files in different object stores: copied
//! before the freeze, the ones added since copied inside it (and the ones deleted since
//! removed), and the source's removed with its rows. Between cells that share a store
//! nothing is copied or removed.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use object_store::path::Path as BlobPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tenantd_core::ids::TenantId;
use tenantd_core::tenant::CellName;
use tenantd_core::{Error, Result};

use super::Progress;
use super::downloads::remove_prefix;
use crate::state::AppState;

fn prefix(tenant: TenantId) -> String {
    format!("tenants/{tenant}")
}

fn err(e: object_store::Error) -> Error {
    Error::Internal(format!("blob store: {e}"))
}

/// The tenant's blobs in a store: size by key.
async fn list(store: &dyn ObjectStore, tenant: TenantId) -> Result<BTreeMap<BlobPath, u64>> {
    let metas: Vec<_> = store
        .list(Some(&BlobPath::from(prefix(tenant))))
        .try_collect()
        .await
        .map_err(err)?;
    Ok(metas.into_iter().map(|m| (m.location, m.size)).collect())
}

/// What [`sync`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Blobs copied to the target.
    pub copied: u64,
    /// The target's blobs the source no longer has, removed.
    pub removed: u64,
}

/// Brings the target cell's store up to the source's for the tenant: the blobs it lacks (or
/// holds at another size) are copied, and with `remove_extra` the ones the source no longer
/// has are removed. A blob is never changed in place (a file's contents are written once,
/// under its id), so its key and size tell whether the target has it.
pub async fn sync(
    state: &AppState,
    tenant: TenantId,
    from: &CellName,
    to: &CellName,
    remove_extra: bool,
    progress: &dyn Progress,
) -> Result<Synced> {
    if state.cell_blobs.shared(from, to) {
        return Ok(Synced::default());
    }
    let (source, target) = (state.cell_blobs.of(from), state.cell_blobs.of(to));
    let (theirs, ours) = (
        list(source.store.as_ref(), tenant).await?,
        list(target.store.as_ref(), tenant).await?,
    );
    let missing: Vec<&BlobPath> = theirs
        .iter()
        .filter(|(k, size)| ours.get(*k) != Some(size))
        .map(|(k, _)| k)
        .collect();
    progress.phase("blobs", Some(missing.len() as u64));
    let mut done = Synced::default();
    for key in missing {
        let bytes = match source.store.get(key).await {
            Ok(got) => got.bytes().await.map_err(err)?,
            // Deleted since it was listed: the files' catch-up removes its row too.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(err(e)),
        };
        target.store.put(key, bytes.into()).await.map_err(err)?;
        done.copied += 1;
        progress.advance(1);
    }
    if remove_extra {
        for key in ours.keys().filter(|k| !theirs.contains_key(*k)) {
            match target.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => done.removed += 1,
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(done)
}

/// Removes the tenant's blobs from `cell`'s store, unless `other` shares it (the copy there
/// is the only one); how many.
pub async fn remove(
    state: &AppState,
    tenant: TenantId,
    cell: &CellName,
    other: &CellName,
) -> Result<u64> {
    if state.cell_blobs.shared(cell, other) {
        return Ok(0);
    }
    remove_prefix(state.cell_blobs.of(cell).store.as_ref(), &prefix(tenant)).await
}
