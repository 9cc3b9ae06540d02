//! Copying one tenant's rows as they are stored — the ground of export, import, purge,
//! restore and the move between cells (`docs/design/mobility.md`).
//!
//! Every column is a portable type (`docs/storage.md`), so a row is a list of [`Value`]s
//! that reads and writes the same on every backend: a copy from SQLite to PostgreSQL is byte
//! for byte, and the audit chain verifies afterwards.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::tenant::TenantScope;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// BIGINT / INTEGER.
    Int(i64),
    /// TEXT.
    Text(String),
    /// BYTEA / BLOB: only the sealed columns ([`Kind::Sealed`]), which a move between cells of
    /// one deployment carries and an archive never holds.
    Bytes(Vec<u8>),
}

/// A row: its table's [`Table::columns`], in order.
pub type Row = Vec<Value>;

/// A column's stored type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TEXT.
    Text,
    /// BIGINT / INTEGER.
    Int,
    /// BYTEA / BLOB holding a secret sealed under the deployment's master key.
    Sealed,
}

/// A column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
}

/// A table holding a tenant's rows.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// The columns copied, in order (derived columns a trigger fills are left out).
    pub columns: &'static [Column],
    /// The primary key, the order rows are read in.
    pub key: &'static [&'static str],
    /// Which rows are the tenant's: a condition on `$1`, the tenant id.
    pub filter: &'static str,
}

impl Table {
    /// The column that names the row's tenant, when the filter is one column equal to it.
    pub fn tenant_column(&self) -> Option<&'static str> {
        self.filter.strip_suffix(" = $1")
    }

    /// The position of a column.
    pub fn index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == column)
    }

    /// The values of the key columns of `row`.
    pub fn key_of(&self, row: &Row) -> Row {
        self.key
            .iter()
            .filter_map(|k| self.index(k).and_then(|i| row.get(i).cloned()))
            .collect()
    }

    /// Whether the table has a sealed column.
    pub fn has_sealed(&self) -> bool {
        self.columns.iter().any(|c| c.kind == Kind::Sealed)
    }
}

/// What a catalog removal does with the accounts of the tenant's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    /// Those that belong to no other tenant go, with their sessions (purge).
    Drop,
    /// All stay, passwords included (restore links them again).
    Keep,
}

/// Rows of one tenant per table.
pub type Counts = BTreeMap<String, u64>;

/// One tenant's rows in one database (the catalog or a cell), table by table.
#[async_trait]
pub trait CopyStore: Send + Sync {
    /// The tables holding a tenant's rows here, parents first (the order they are written
    /// in; removal goes the other way).
    fn copy_tables(&self) -> &'static [Table];
    /// One consistent snapshot of the tenant's rows, read page by page while the tenant
    /// keeps serving.
    async fn copy_snapshot(&self, scope: &TenantScope) -> Result<Box<dyn CopySnapshot>>;
    /// Inserts rows of the tenant, table by table in the order given, in one transaction
    /// bound to the tenant. A row that is already there is `Conflict`.
    async fn copy_insert(
        &self,
        scope: &TenantScope,
        parts: Vec<(&'static Table, Vec<Row>)>,
    ) -> Result<()>;
    /// The tenant's rows per table.
    async fn copy_counts(&self, scope: &TenantScope) -> Result<Counts>;
    /// Removes every row of the tenant here, in one transaction (on PostgreSQL the only scope
    /// in which row-level security lets its audit chain go); what was removed, per table. In
    /// the catalog, `accounts` says what becomes of the members' accounts.
    async fn copy_remove(&self, scope: &TenantScope, accounts: Accounts) -> Result<Counts>;
}

/// A read snapshot of one tenant's rows.
#[async_trait]
pub trait CopySnapshot: Send {
    /// Up to `limit` rows of `table` after the key `after` (from the start when `None`), in
    /// key order.
    async fn page(
        &mut self,
        table: &'static Table,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>>;
    /// Ends the snapshot.
    async fn close(self: Box<Self>) -> Result<()>;
}
