//! Tenant mobility: a tenant's archive written ([`export`]) and read back ([`import`],
//! restore), and a deleted tenant purged after its retention ([`purge`]). The format and the
//! guarantees are in `docs/design/mobility.md`; the rows are copied through the stores'
//! [`tenantd_core::store::CopyStore`].

pub mod archive;
pub mod blobs;
mod copying;
pub mod downloads;
pub mod export;
pub mod import;
pub mod isolation;
mod keys;
pub mod lease;
pub mod manifest;
pub mod moving;
pub mod purge;

/// How a long operation reports what it is doing: the CLI draws a bar on a terminal and
/// prints lines otherwise.
pub trait Progress: Send + Sync {
    /// A new phase (a part, the blobs), with its total when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more rows or blobs done in the current phase.
    fn advance(&self, _n: u64) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
