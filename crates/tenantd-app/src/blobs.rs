//! The object stores for file contents: the deployment's, and a cell's own where its
//! `[[cells]]` entry names one (`blob_dir` or `blob_store`). A file's blob lives in the
//! store of its tenant's cell, under `tenants/<tenant_id>/`; a move between cells with
//! different stores carries the blobs (`mobility/blobs.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tenantd_core::tenant::CellName;

use crate::config::BlobLocation;

/// One object store and where it is.
pub struct BlobStore {
    /// The store.
    pub store: Arc<dyn object_store::ObjectStore>,
    /// Where it is (a local directory has upload staging files to clean).
    pub location: BlobLocation,
}

/// The store of every cell.
#[derive(Clone)]
pub struct CellBlobs {
    deployment: Arc<BlobStore>,
    cells: BTreeMap<CellName, Arc<BlobStore>>,
}

impl CellBlobs {
    /// Every cell in the deployment's store.
    pub fn new(deployment: BlobStore) -> Self {
        Self {
            deployment: Arc::new(deployment),
            cells: BTreeMap::new(),
        }
    }

    /// `cell` in a store of its own.
    pub fn with_cell(mut self, cell: CellName, store: Arc<BlobStore>) -> Self {
        self.cells.insert(cell, store);
        self
    }

    /// The deployment's store (exports' downloads, and every cell without one of its own).
    pub fn deployment(&self) -> &Arc<BlobStore> {
        &self.deployment
    }

    /// The store of `cell`'s files.
    pub fn of(&self, cell: &CellName) -> &Arc<BlobStore> {
        self.cells.get(cell).unwrap_or(&self.deployment)
    }

    /// Whether two cells keep their files in one store (a move between them copies none).
    pub fn shared(&self, a: &CellName, b: &CellName) -> bool {
        self.of(a).location == self.of(b).location
    }

    /// Every store once.
    pub fn all(&self) -> Vec<&Arc<BlobStore>> {
        let mut out: Vec<&Arc<BlobStore>> = vec![&self.deployment];
        for s in self.cells.values() {
            if !out.iter().any(|o| o.location == s.location) {
                out.push(s);
            }
        }
        out
    }
}
