//! [`CopyStore`] for the catalog and every cell, written once over [`Db`]: a tenant's rows
//! read page by page from one snapshot, inserted in batches, counted and removed. The tables,
//! and which rows of each are a tenant's, are listed in [`tables`].
//!
//! The statements are built from that list — constants of the code, never input — once per
//! shape, and kept for the life of the process (`sql.rs`).

mod sql;
pub mod tables;

use std::collections::BTreeMap;

use async_trait::async_trait;
use tenantd_core::store::{
    Accounts, CopySnapshot, CopyStore, Counts, Kind, MoveStore, Row, Table, Value,
};
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use crate::catalog::Catalog;
use crate::cell::Cell;
use crate::db::{Arg, Conn, Db, Int, Query, Tx};

/// A value bound as a column of `kind`; a value of another kind is refused.
fn arg(kind: Kind, v: Value) -> Result<Arg> {
    Ok(match (kind, v) {
        (Kind::Text, Value::Text(s)) => Arg::Text(Some(s)),
        (Kind::Text, Value::Null) => Arg::Text(None),
        (Kind::Int, Value::Int(n)) => Arg::Int(Some(n)),
        (Kind::Int, Value::Null) => Arg::Int(None),
        (Kind::Sealed, Value::Bytes(b)) => Arg::Blob(Some(b)),
        (Kind::Sealed, Value::Null) => Arg::Blob(None),
        (kind, _) => {
            return Err(Error::invalid(
                "row",
                format!("a value of the wrong type for a {kind:?} column"),
            ));
        }
    })
}

fn kind_of(table: &Table, column: &str) -> Result<Kind> {
    table
        .columns
        .iter()
        .find(|c| c.name == column)
        .map(|c| c.kind)
        .ok_or_else(|| Error::Internal(format!("{} has no column {column}", table.name)))
}

async fn page_on(
    tx: &mut impl Conn,
    table: &'static Table,
    scope: &TenantScope,
    after: Option<&Row>,
    limit: usize,
) -> Result<Vec<Row>> {
    let tenant = scope.tenant_id().to_string();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let q = match after {
        None => Query::new(sql::first_page(table)).bind(tenant),
        Some(after) => {
            let mut q = Query::new(sql::next_page(table)).bind(tenant);
            for a in key_args(table, after)? {
                q = q.bind(a);
            }
            q
        }
    };
    tx.fetch_table(q.bind(limit), table).await
}

/// The most bytes of values one insert statement carries. A statement bigger than one TCP
/// segment (64 KiB on loopback) waits out the server's delayed ACK under Nagle's algorithm —
/// about 40 ms a statement, measured: the client does not set `TCP_NODELAY` — so the batch
/// stays under it.
const STATEMENT_BYTES: usize = 7 * 1024;

fn size_of(row: &Row) -> usize {
    row.iter()
        .map(|v| match v {
            Value::Null => 4,
            Value::Int(_) => 12,
            Value::Text(t) => t.len() + 8,
            Value::Bytes(b) => b.len() + 8,
        })
        .sum()
}

async fn insert_on(tx: &mut impl Conn, table: &'static Table, rows: Vec<Row>) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    let mut rest: std::collections::VecDeque<Row> = std::collections::VecDeque::new();
    while rows.peek().is_some() || !rest.is_empty() {
        // The rows that fit in one statement's bytes (at least one).
        let (mut fit, mut bytes) = (0usize, 0usize);
        for r in rest.iter() {
            bytes += size_of(r);
            if fit > 0 && bytes > STATEMENT_BYTES {
                break;
            }
            fit += 1;
        }
        while bytes <= STATEMENT_BYTES
            && let Some(r) = rows.next()
        {
            bytes += size_of(&r);
            rest.push_back(r);
            if bytes <= STATEMENT_BYTES || fit == 0 {
                fit += 1;
            }
        }
        let n = sql::batch_sizes(table)
            .iter()
            .copied()
            .find(|&n| n <= fit.max(1))
            .unwrap_or(1);
        let mut q = Query::new(sql::insert(table, n));
        for row in rest.drain(..n) {
            if row.len() != table.columns.len() {
                return Err(Error::invalid(
                    "row",
                    format!("{} takes {} columns", table.name, table.columns.len()),
                ));
            }
            for (c, v) in table.columns.iter().zip(row) {
                q = q.bind(arg(c.kind, v)?);
            }
        }
        tx.execute(q).await?;
    }
    Ok(())
}

async fn counts_on(
    tx: &mut impl Conn,
    tables: &'static [Table],
    scope: &TenantScope,
) -> Result<Counts> {
    let mut out = BTreeMap::new();
    for table in tables {
        let Int(n) = tx
            .fetch_one(Query::new(sql::count(table)).bind(scope.tenant_id().to_string()))
            .await?;
        out.insert(table.name.to_owned(), u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// A snapshot: one read transaction.
struct Snapshot<T> {
    tx: T,
    scope: TenantScope,
}

#[async_trait]
impl<T: Tx + 'static> CopySnapshot for Snapshot<T> {
    async fn page(
        &mut self,
        table: &'static Table,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        page_on(&mut self.tx, table, &self.scope, after, limit).await
    }

    async fn each(
        &mut self,
        table: &'static Table,
        sink: &mut (dyn FnMut(Row) -> Result<()> + Send),
    ) -> Result<u64> {
        let q = Query::new(sql::all_rows(table)).bind(self.scope.tenant_id().to_string());
        self.tx.each_table_row(q, table, sink).await
    }

    async fn page_since(
        &mut self,
        table: &'static Table,
        column: &'static str,
        since: &str,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let tenant = self.scope.tenant_id().to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let q = match after {
            None => Query::new(sql::since_first(table, column))
                .bind(tenant)
                .bind(since),
            Some(after) => {
                let mut q = Query::new(sql::since_next(table, column))
                    .bind(tenant)
                    .bind(since);
                for a in key_args(table, after)? {
                    q = q.bind(a);
                }
                q
            }
        };
        self.tx.fetch_table(q.bind(limit), table).await
    }

    async fn page_between(
        &mut self,
        table: &'static Table,
        column: &'static str,
        since: &str,
        until: &str,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let tenant = self.scope.tenant_id().to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let q = match after {
            None => Query::new(sql::between_first(table, column))
                .bind(tenant)
                .bind(since)
                .bind(until),
            Some(after) => {
                let mut q = Query::new(sql::between_next(table, column))
                    .bind(tenant)
                    .bind(since)
                    .bind(until);
                for a in key_args(table, after)? {
                    q = q.bind(a);
                }
                q
            }
        };
        self.tx.fetch_table(q.bind(limit), table).await
    }

    async fn keys(
        &mut self,
        table: &'static Table,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let tenant = self.scope.tenant_id().to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let q = match after {
            None => Query::new(sql::keys_first(table)).bind(tenant),
            Some(after) => {
                let mut q = Query::new(sql::keys_next(table)).bind(tenant);
                for a in key_args(table, after)? {
                    q = q.bind(a);
                }
                q
            }
        };
        let rows = self.tx.fetch_table(q.bind(limit), key_table(table)).await?;
        Ok(rows)
    }

    async fn close(self: Box<Self>) -> Result<()> {
        self.tx.commit().await
    }
}

/// The key columns of `table` as a table of their own, to read keys with (built once).
fn key_table(table: &'static Table) -> &'static Table {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static KEYS: LazyLock<Mutex<HashMap<&'static str, &'static Table>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut map = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(table.name).or_insert_with(|| {
        Box::leak(Box::new(Table {
            name: table.name,
            columns: Box::leak(table.key_columns().into_boxed_slice()),
            key: table.key,
            filter: table.filter,
            sync: table.sync,
        }))
    })
}

fn key_args(table: &Table, after: &Row) -> Result<Vec<Arg>> {
    if after.len() != table.key.len() {
        return Err(Error::Internal("a copy key of another width".into()));
    }
    table
        .key
        .iter()
        .zip(after.iter().cloned())
        .map(|(k, v)| arg(kind_of(table, k)?, v))
        .collect()
}

/// What the catalog and a cell share: the copy over one database.
async fn snapshot<D: Db>(db: &D, scope: &TenantScope) -> Result<Box<dyn CopySnapshot>> {
    let tx = db.snapshot_scoped(scope).await?;
    Ok(Box::new(Snapshot {
        tx,
        scope: scope.clone(),
    }))
}

async fn insert<D: Db>(
    db: &D,
    scope: Option<&TenantScope>,
    parts: Vec<(&'static Table, Vec<Row>)>,
) -> Result<()> {
    // A cell's insert is bound to the tenant (row-level security checks every row); the
    // catalog has no tenant scope.
    let mut tx = match scope {
        Some(scope) => db.begin_scoped(scope).await?,
        None => db.begin().await?,
    };
    for (table, rows) in parts {
        insert_on(&mut tx, table, rows).await?;
    }
    tx.commit().await
}

async fn counts<D: Db>(db: &D, tables: &'static [Table], scope: &TenantScope) -> Result<Counts> {
    let mut tx = db.snapshot_scoped(scope).await?;
    let out = counts_on(&mut tx, tables, scope).await?;
    tx.commit().await?;
    Ok(out)
}

#[async_trait]
impl<D: Db> CopyStore for Cell<D> {
    fn copy_tables(&self) -> &'static [Table] {
        tables::CELL
    }

    async fn copy_snapshot(&self, scope: &TenantScope) -> Result<Box<dyn CopySnapshot>> {
        snapshot(self.db(), scope).await
    }

    async fn copy_insert(
        &self,
        scope: &TenantScope,
        parts: Vec<(&'static Table, Vec<Row>)>,
    ) -> Result<()> {
        insert(self.db(), Some(scope), parts).await
    }

    async fn copy_counts(&self, scope: &TenantScope) -> Result<Counts> {
        counts(self.db(), tables::CELL, scope).await
    }

    async fn copy_remove(&self, scope: &TenantScope, _accounts: Accounts) -> Result<Counts> {
        let t = scope.tenant_id().to_string();
        let mut tx = self.db().begin_removal(scope).await?;
        let mut out = BTreeMap::new();
        // The shares other tenants gave this one go too.
        let given = tx
            .execute(Query::new(sql::REMOVE_SHARES_TO).bind(&t))
            .await?;
        for table in tables::CELL.iter().rev() {
            let n = tx.execute(Query::new(sql::remove(table)).bind(&t)).await?;
            out.insert(table.name.to_owned(), n);
        }
        *out.entry("resource_shares".to_owned()).or_default() += given;
        let fence = tx.execute(Query::new(sql::FENCE_REMOVE).bind(&t)).await?;
        out.insert("tenant_fences".to_owned(), fence);
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait]
impl<D: Db> MoveStore for Cell<D> {
    async fn copy_max_key(
        &self,
        scope: &TenantScope,
        table: &'static Table,
    ) -> Result<Option<Row>> {
        let mut tx = self.db().read_scoped(scope).await?;
        let rows = tx
            .fetch_table(
                Query::new(sql::max_key(table)).bind(scope.tenant_id().to_string()),
                key_table(table),
            )
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().next())
    }

    async fn copy_replace(
        &self,
        scope: &TenantScope,
        table: &'static Table,
        rows: Vec<Row>,
    ) -> Result<()> {
        let mut tx = self.db().begin_removal(scope).await?;
        tx.execute(Query::new(sql::remove(table)).bind(scope.tenant_id().to_string()))
            .await?;
        insert_on(&mut tx, table, rows).await?;
        tx.commit().await
    }

    async fn copy_upsert(
        &self,
        scope: &TenantScope,
        table: &'static Table,
        rows: Vec<Row>,
        gone: Vec<Row>,
    ) -> Result<()> {
        let t = scope.tenant_id().to_string();
        let mut tx = self.db().begin_removal(scope).await?;
        // The rows' old versions and the keys gone, removed a batch of keys at a time (one
        // statement a key made the last catch-up of a move a round trip per changed row).
        let keys: Vec<Row> = rows.iter().map(|r| table.key_of(r)).chain(gone).collect();
        let mut rest = keys.as_slice();
        while !rest.is_empty() {
            let n = sql::KEY_BATCHES
                .iter()
                .copied()
                .find(|&n| n <= rest.len())
                .unwrap_or(1);
            let (batch, tail) = rest.split_at(n);
            let mut q = Query::new(sql::remove_keys(table, n)).bind(&t);
            for key in batch {
                for a in key_args(table, key)? {
                    q = q.bind(a);
                }
            }
            tx.execute(q).await?;
            rest = tail;
        }
        insert_on(&mut tx, table, rows).await?;
        tx.commit().await
    }

    async fn copy_fence(
        &self,
        scope: &TenantScope,
        move_id: &str,
        frozen: Option<bool>,
    ) -> Result<()> {
        let t = scope.tenant_id().to_string();
        let q = match frozen {
            Some(false) => Query::new(sql::FENCE_MAKE).bind(&t).bind(move_id),
            Some(true) => Query::new(sql::FENCE_FREEZE).bind(&t).bind(move_id),
            None => Query::new(sql::FENCE_REMOVE).bind(&t),
        };
        let mut tx = self.db().begin().await?;
        tx.execute(q).await?;
        tx.commit().await
    }
}

#[async_trait]
impl<D: Db> CopyStore for Catalog<D> {
    fn copy_tables(&self) -> &'static [Table] {
        tables::CATALOG
    }

    async fn copy_snapshot(&self, scope: &TenantScope) -> Result<Box<dyn CopySnapshot>> {
        snapshot(self.db(), scope).await
    }

    async fn copy_insert(
        &self,
        scope: &TenantScope,
        parts: Vec<(&'static Table, Vec<Row>)>,
    ) -> Result<()> {
        let _ = scope;
        insert(self.db(), None, parts).await
    }

    async fn copy_counts(&self, scope: &TenantScope) -> Result<Counts> {
        counts(self.db(), tables::CATALOG, scope).await
    }

    /// Everything of the tenant, the accounts left with no membership included, in one
    /// transaction.
    async fn copy_remove(&self, scope: &TenantScope, accounts: Accounts) -> Result<Counts> {
        let t = scope.tenant_id().to_string();
        let mut tx = self.db().begin_removal(scope).await?;
        let members: Vec<crate::db::Text> = match accounts {
            Accounts::Drop => tx.fetch_all(Query::new(sql::MEMBER_IDS).bind(&t)).await?,
            Accounts::Keep => Vec::new(),
        };
        let mut out = BTreeMap::new();
        for (name, stmt) in sql::CATALOG_REMOVALS {
            let n = tx.execute(Query::new(stmt).bind(&t)).await?;
            *out.entry((*name).to_owned()).or_default() += n;
        }
        let mut users = 0;
        for crate::db::Text(user) in members {
            tx.execute(Query::new(sql::REMOVE_ORPHAN_USER_TOKENS).bind(&user))
                .await?;
            tx.execute(Query::new(sql::REMOVE_ORPHAN_USER_SESSIONS).bind(&user))
                .await?;
            users += tx
                .execute(Query::new(sql::REMOVE_ORPHAN_USER).bind(&user))
                .await?;
        }
        out.insert("users".to_owned(), users);
        let n = tx.execute(Query::new(sql::REMOVE_TENANT).bind(&t)).await?;
        out.insert("tenants".to_owned(), n);
        tx.commit().await?;
        Ok(out)
    }
}
