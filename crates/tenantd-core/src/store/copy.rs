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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// How a move brings a copy of it up to date.
    pub sync: Catchup,
}

/// How a move brings a table's copy up to date while the tenant keeps writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    /// Rows are only appended, in key order (one integer key): the rows after the copy's
    /// last, and none before the source's first (retention prunes the oldest).
    Append,
    /// Every change sets this column to the time of the change: the rows changed since the
    /// last pass, and the keys gone from the source.
    Stamped(&'static str),
    /// Small, or changed in place without a stamp: replaced whole.
    Whole,
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

    /// The key columns, as a table of their own (what [`CopySnapshot::keys`] returns).
    pub fn key_columns(&self) -> Vec<Column> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| c.name == *k).copied())
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

/// What a move does to a cell on top of the copy: bring a copy up to date, and fence the
/// tenant's writes in the cell it leaves.
#[async_trait]
pub trait MoveStore: CopyStore {
    /// The largest key of the tenant's rows in `table`.
    async fn copy_max_key(&self, scope: &TenantScope, table: &'static Table)
    -> Result<Option<Row>>;
    /// Replaces the tenant's rows of `table` with `rows`, in one transaction.
    async fn copy_replace(
        &self,
        scope: &TenantScope,
        table: &'static Table,
        rows: Vec<Row>,
    ) -> Result<()>;
    /// Writes `rows` over the rows with the same keys (or as new ones), and removes the rows
    /// with the keys `gone`, in one transaction.
    async fn copy_upsert(
        &self,
        scope: &TenantScope,
        table: &'static Table,
        rows: Vec<Row>,
        gone: Vec<Row>,
    ) -> Result<()>;
    /// The tenant's move fence here: `Some(false)` makes it (writes still pass), `Some(true)`
    /// freezes the tenant's writes (waiting for those in flight), `None` removes it.
    async fn copy_fence(
        &self,
        scope: &TenantScope,
        move_id: &str,
        frozen: Option<bool>,
    ) -> Result<()>;
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
    /// Every row of `table` in key order, handed to `sink` as the database sends them: one
    /// query, nothing held but the driver's buffer; how many. An error from `sink` stops it.
    async fn each(
        &mut self,
        table: &'static Table,
        sink: &mut (dyn FnMut(Row) -> Result<()> + Send),
    ) -> Result<u64>;
    /// Up to `limit` rows of `table` whose `column` is at least `since`, after the key
    /// `after`, in key order.
    async fn page_since(
        &mut self,
        table: &'static Table,
        column: &'static str,
        since: &str,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>>;
    /// Up to `limit` rows of `table` whose `column` is at least `since` and before `until`,
    /// after the key `after`, in key order: a window that rows written from now on (stamped
    /// later) do not enter, so paging it ends however fast the tenant writes.
    async fn page_between(
        &mut self,
        table: &'static Table,
        column: &'static str,
        since: &str,
        until: &str,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>>;
    /// Up to `limit` keys of `table` after `after`, in key order (each a row of the key
    /// columns).
    async fn keys(
        &mut self,
        table: &'static Table,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>>;
    /// Ends the snapshot.
    async fn close(self: Box<Self>) -> Result<()>;
}

/// A tenant's move between cells, as the catalog records it at every step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MoveRecord {
    /// The move.
    pub id: String,
    /// The tenant.
    pub tenant_id: crate::ids::TenantId,
    /// From.
    pub source_cell: crate::tenant::CellName,
    /// To.
    pub target_cell: crate::tenant::CellName,
    /// `copying`, `frozen`, `switched`, then `done` or `aborted`.
    pub phase: String,
    /// The tenant's status before the move (it is `migrating` while frozen).
    pub prior_status: String,
    /// What the phases noted (pass times, the scheduler's flag, counts).
    pub detail: serde_json::Value,
    /// When it started.
    pub started_at: String,
    /// When its phase last changed.
    pub updated_at: String,
}

/// The catalog's record of moves.
#[async_trait]
pub trait MoveRecordStore: Send + Sync {
    /// Records a new move; `Conflict` while the tenant has one that is not done or aborted.
    async fn insert_move(&self, m: &MoveRecord) -> Result<()>;
    /// The tenant's latest move.
    async fn latest_move(&self, tenant: crate::ids::TenantId) -> Result<Option<MoveRecord>>;
    /// Writes the move's phase and detail.
    async fn update_move(&self, m: &MoveRecord) -> Result<()>;
    /// Takes or renews `runner`'s lease on the open move `id` until `until`: `false` when
    /// another runner holds a lease that runs past `now`, or the move is done or aborted.
    async fn lease_move(&self, id: &str, runner: &str, until: &str, now: &str) -> Result<bool>;
    /// Gives `runner`'s lease on move `id` up (its runner stopped).
    async fn release_move(&self, id: &str, runner: &str) -> Result<()>;
    /// The open moves (neither done nor aborted), oldest first, each with until when it is
    /// leased (`None`: never, or given up).
    async fn open_moves(&self) -> Result<Vec<(MoveRecord, Option<String>)>>;
    /// Sets the tenant's status (`migrating` at the freeze, back after an abort) and the
    /// move's phase together.
    async fn move_status(&self, m: &MoveRecord, status: crate::tenant::TenantStatus) -> Result<()>;
    /// Claims the dedicated cell `cell` for `tenant` (a move into it); `Conflict` when
    /// another tenant holds it or is placed in it. Claiming one's own claim again is fine.
    async fn claim_cell(
        &self,
        cell: &crate::tenant::CellName,
        tenant: crate::ids::TenantId,
    ) -> Result<()>;
    /// Gives up `tenant`'s claim on `cell`, if it holds one (a move into it aborted).
    async fn release_cell(
        &self,
        cell: &crate::tenant::CellName,
        tenant: crate::ids::TenantId,
    ) -> Result<()>;
    /// The switch, in one transaction: the tenant's cell (and region) become the target's,
    /// its status the one before the move, its claim on the source cell (if dedicated) is
    /// given up, the move `switched`, and `outbox` (its `tenant.moved`) queued for its
    /// chain.
    async fn switch_move(
        &self,
        m: &MoveRecord,
        region: Option<&str>,
        outbox: Vec<crate::audit::AuditDraft>,
    ) -> Result<()>;
}
