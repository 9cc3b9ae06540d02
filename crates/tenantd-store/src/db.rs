//! The seam between the store and a database: a statement with its arguments ([`Query`]), a
//! row read by column name ([`Columns`], [`Record`]), something that runs statements
//! ([`Conn`]), and what each backend supplies ([`Db`]: how a transaction starts and how it is
//! bound to a tenant).
//!
//! The catalog and cell code (`catalog/`, `cell/`) is written once, generic over [`Db`]; the
//! SQL it runs is the same text on every backend (`sql/`). What truly differs lives in
//! `sqlite.rs` and `postgres/`: pools, `BEGIN IMMEDIATE` against `set_config('app.tenant_id')`,
//! migrations and grants.
//!
//! Why not sqlx's `FromRow` derive: it compiles a second host copy of sqlx, tokio, rustls and
//! SQLite for the proc macro (measured in `shared/CRATES.md`); [`Record`] is the same idea,
//! written by hand, and decodes every backend's rows through one object-safe trait.

use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, Executor, Row, Type};
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use crate::classify;

/// One argument of a statement. Every column is a portable type (see
/// `docs/storage.md`): text, 64-bit integer, boolean or bytes; `None` binds a typed NULL.
#[derive(Debug, Clone)]
pub enum Arg {
    /// TEXT (ids, timestamps, JSON, names).
    Text(Option<String>),
    /// BIGINT / INTEGER.
    Int(Option<i64>),
    /// BOOLEAN on PostgreSQL, 0/1 on SQLite.
    Bool(bool),
    /// BYTEA / BLOB.
    Bytes(Vec<u8>),
    /// A nullable BYTEA / BLOB.
    Blob(Option<Vec<u8>>),
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(v.to_vec())
    }
}
impl From<&Vec<u8>> for Arg {
    fn from(v: &Vec<u8>) -> Self {
        Arg::Bytes(v.clone())
    }
}

/// A statement from `sql/` and its arguments, `$1`, `$2`, … in order. The text is always a
/// constant: nothing from a request becomes SQL.
#[derive(Debug, Clone)]
pub struct Query {
    sql: &'static str,
    args: Vec<Arg>,
}

impl Query {
    /// The statement `sql`, with no arguments yet.
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql,
            args: Vec::new(),
        }
    }

    /// Adds the next argument.
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// Shorthand: `q(SQL).bind(a).bind(b)`.
pub fn q(sql: &'static str) -> Query {
    Query::new(sql)
}

/// A row, read by column name. Implemented for every backend's row type.
pub trait Columns {
    /// A non-null text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// A non-null integer column.
    fn int(&self, col: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// A non-null bytes column.
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
    /// A nullable bytes column.
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>>;
    /// The `i`th column as nullable text, its type not looked up (the copy reads its own
    /// tables' columns, in their order, by the kinds `tables.rs` gives them).
    fn text_at(&self, i: usize) -> Result<Option<String>>;
    /// The `i`th column as a nullable integer, likewise.
    fn int_at(&self, i: usize) -> Result<Option<i64>>;
    /// The `i`th column as nullable bytes, likewise.
    fn bytes_at(&self, i: usize) -> Result<Option<Vec<u8>>>;
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(classify)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(classify)
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(classify)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col).map_err(classify)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        self.try_get(col).map_err(classify)
    }
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>> {
        self.try_get(col).map_err(classify)
    }
    fn text_at(&self, i: usize) -> Result<Option<String>> {
        self.try_get_unchecked(i).map_err(classify)
    }
    fn int_at(&self, i: usize) -> Result<Option<i64>> {
        self.try_get_unchecked(i).map_err(classify)
    }
    fn bytes_at(&self, i: usize) -> Result<Option<Vec<u8>>> {
        self.try_get_unchecked(i).map_err(classify)
    }
}

/// A type a row decodes into: the row structs of `rows/` (sqlx's `FromRow`, by hand).
pub trait Record: Sized + Send {
    /// Reads the row's columns.
    fn read(row: &dyn Columns) -> Result<Self>;
}

/// A single integer column named `n` (`SELECT COUNT(*) AS n`, `RETURNING size AS n`).
pub struct Int(pub i64);

impl Record for Int {
    fn read(row: &dyn Columns) -> Result<Self> {
        row.int("n").map(Int)
    }
}

/// A single text column named `n`.
pub struct Text(pub String);

impl Record for Text {
    fn read(row: &dyn Columns) -> Result<Self> {
        row.text("n").map(Text)
    }
}

/// Something statements run on: a transaction, or a pool for one-statement reads and writes.
#[async_trait]
pub trait Conn: Send {
    /// Runs a statement; the number of rows it changed.
    async fn execute(&mut self, q: Query) -> Result<u64>;
    /// Every row.
    async fn fetch_all<R: Record>(&mut self, q: Query) -> Result<Vec<R>>;
    /// The first row, if any.
    async fn fetch_optional<R: Record>(&mut self, q: Query) -> Result<Option<R>>;
    /// Every row, as `table`'s columns (a tenant's copy, by the copy module).
    async fn fetch_table(
        &mut self,
        q: Query,
        table: &'static tenantd_core::store::Table,
    ) -> Result<Vec<tenantd_core::store::Row>>;
    /// Every row, as `table`'s columns, handed to `sink` one by one as the database sends
    /// them (one query, no page held); how many.
    async fn each_table_row(
        &mut self,
        q: Query,
        table: &'static tenantd_core::store::Table,
        sink: &mut (dyn FnMut(tenantd_core::store::Row) -> Result<()> + Send),
    ) -> Result<u64>;
    /// The first row; none is `NotFound`.
    async fn fetch_one<R: Record>(&mut self, q: Query) -> Result<R> {
        self.fetch_optional(q).await?.ok_or(Error::NotFound)
    }
}

/// A transaction: dropped without [`Tx::commit`], it rolls back.
#[async_trait]
pub trait Tx: Conn {
    /// Commits.
    async fn commit(self) -> Result<()>;
}

/// What a backend supplies: pools and how transactions start.
#[async_trait]
pub trait Db: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Its transactions.
    type Tx: Tx;
    /// Its pools (cheap to clone).
    type Pool: Conn;
    /// Whether rows can be locked one by one (`FOR UPDATE SKIP LOCKED`): PostgreSQL. SQLite
    /// has one writer, which serialises every write transaction instead.
    const ROW_LOCKS: bool;
    /// The PostgreSQL statement where rows lock one by one, else the SQLite one.
    fn pick(postgres: &'static str, sqlite: &'static str) -> &'static str {
        if Self::ROW_LOCKS { postgres } else { sqlite }
    }
    /// The pool for one-statement reads; `Unavailable` at once while the database is down.
    fn reader(&self) -> Result<Self::Pool>;
    /// The pool for one-statement writes.
    fn writer(&self) -> Result<Self::Pool>;
    /// A write transaction on the catalog (or on several tenants' rows in a cell).
    async fn begin(&self) -> Result<Self::Tx>;
    /// A write transaction on one tenant's rows: on PostgreSQL, row-level security sees its
    /// tenant; on SQLite the statements' own `tenant_id` binding is the whole scope.
    async fn begin_scoped(&self, scope: &TenantScope) -> Result<Self::Tx>;
    /// A read transaction (one snapshot) on one tenant's rows.
    async fn read_scoped(&self, scope: &TenantScope) -> Result<Self::Tx>;
    /// Binds a transaction begun with [`Db::begin`] to one tenant from here on (the run
    /// scheduler learns the tenant from its first, cross-tenant statement): on PostgreSQL,
    /// row-level security sees that tenant for the rest of the transaction.
    async fn enter_scope(tx: &mut Self::Tx, scope: &TenantScope) -> Result<()>;
    /// A transaction of the retention job, which may delete events that occurred before
    /// `before` in every log and nothing else (on PostgreSQL, its own row-level-security
    /// marker scope).
    async fn begin_retention(&self, before: &str) -> Result<Self::Tx>;
    /// A read-only transaction that sees one snapshot for all its statements (on
    /// PostgreSQL `REPEATABLE READ`), bound to one tenant.
    async fn snapshot_scoped(&self, scope: &TenantScope) -> Result<Self::Tx>;
    /// A write transaction that may remove every row of one tenant, its audit chain
    /// included (on PostgreSQL the only scope whose policies let audit rows be deleted).
    async fn begin_removal(&self, scope: &TenantScope) -> Result<Self::Tx>;
}

/// Refuses a write transaction of a tenant frozen by a move out of this database
/// (`TenantMigrating`). SQLite's one writer orders it against the freeze; PostgreSQL reads the
/// fence in its scoping statement instead (`postgres/mod.rs`).
pub(crate) async fn fenced(tx: &mut impl Conn, scope: &TenantScope) -> Result<()> {
    let frozen: Option<Int> = tx
        .fetch_optional(
            q("SELECT frozen AS n FROM tenant_fences WHERE tenant_id = $1")
                .bind(scope.tenant_id().to_string()),
        )
        .await?;
    if frozen.is_some_and(|Int(n)| n == 1) {
        return Err(Error::TenantMigrating);
    }
    Ok(())
}

/// The sqlx databases the store runs on, and what sqlx does not name generically.
pub trait Backend: Database<Arguments: sqlx::IntoArguments<Self>> {
    /// The sqlx statement for `q`, its arguments bound.
    fn prepare(q: Query) -> sqlx::query::Query<'static, Self, Self::Arguments>;
    /// Rows changed by a statement.
    fn affected(r: &Self::QueryResult) -> u64;
    /// A row, read by column name.
    fn columns(r: &Self::Row) -> &dyn Columns;
}

/// Binds `q`'s arguments in order, on any database that encodes the portable types.
fn bind_all<DB>(q: Query) -> sqlx::query::Query<'static, DB, DB::Arguments>
where
    DB: Database,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Type<DB>,
{
    let mut stmt = sqlx::query::<DB>(q.sql);
    for a in q.args {
        stmt = match a {
            Arg::Text(v) => stmt.bind(v),
            Arg::Int(v) => stmt.bind(v),
            Arg::Bool(v) => stmt.bind(v),
            Arg::Bytes(v) => stmt.bind(v),
            Arg::Blob(v) => stmt.bind(v),
        };
    }
    stmt
}

impl Backend for sqlx::Sqlite {
    fn prepare(q: Query) -> sqlx::query::Query<'static, Self, Self::Arguments> {
        bind_all(q)
    }
    fn affected(r: &Self::QueryResult) -> u64 {
        r.rows_affected()
    }
    fn columns(r: &Self::Row) -> &dyn Columns {
        r
    }
}

impl Backend for sqlx::Postgres {
    fn prepare(q: Query) -> sqlx::query::Query<'static, Self, Self::Arguments> {
        bind_all(q)
    }
    fn affected(r: &Self::QueryResult) -> u64 {
        r.rows_affected()
    }
    fn columns(r: &Self::Row) -> &dyn Columns {
        r
    }
}

async fn execute_on<'e, DB: Backend, E: Executor<'e, Database = DB>>(
    e: E,
    q: Query,
) -> Result<u64> {
    let done = DB::prepare(q).execute(e).await.map_err(classify)?;
    Ok(DB::affected(&done))
}

async fn all_on<'e, DB: Backend, E: Executor<'e, Database = DB>, R: Record>(
    e: E,
    q: Query,
) -> Result<Vec<R>> {
    let rows = DB::prepare(q).fetch_all(e).await.map_err(classify)?;
    rows.iter().map(|r| R::read(DB::columns(r))).collect()
}

/// A row of a copied table, read by its columns' kinds, in the table's column order (every
/// copy statement selects them so).
pub(crate) fn read_row(
    table: &tenantd_core::store::Table,
    row: &dyn Columns,
) -> Result<tenantd_core::store::Row> {
    use tenantd_core::store::{Kind, Value};
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                Kind::Text => row.text_at(i)?.map_or(Value::Null, Value::Text),
                Kind::Int => row.int_at(i)?.map_or(Value::Null, Value::Int),
                Kind::Sealed => row.bytes_at(i)?.map_or(Value::Null, Value::Bytes),
            })
        })
        .collect()
}

async fn table_on<'e, DB: Backend, E: Executor<'e, Database = DB>>(
    e: E,
    q: Query,
    table: &'static tenantd_core::store::Table,
) -> Result<Vec<tenantd_core::store::Row>> {
    let rows = DB::prepare(q).fetch_all(e).await.map_err(classify)?;
    rows.iter()
        .map(|r| read_row(table, DB::columns(r)))
        .collect()
}

async fn each_on<'e, DB: Backend, E: Executor<'e, Database = DB>>(
    e: E,
    q: Query,
    table: &'static tenantd_core::store::Table,
    sink: &mut (dyn FnMut(tenantd_core::store::Row) -> Result<()> + Send),
) -> Result<u64> {
    use futures_util::TryStreamExt;
    let mut rows = DB::prepare(q).fetch(e);
    let mut n = 0;
    while let Some(r) = rows.try_next().await.map_err(classify)? {
        sink(read_row(table, DB::columns(&r))?)?;
        n += 1;
    }
    Ok(n)
}

async fn optional_on<'e, DB: Backend, E: Executor<'e, Database = DB>, R: Record>(
    e: E,
    q: Query,
) -> Result<Option<R>> {
    let row = DB::prepare(q).fetch_optional(e).await.map_err(classify)?;
    row.as_ref().map(|r| R::read(DB::columns(r))).transpose()
}

#[async_trait]
impl<DB: Backend> Conn for sqlx::Transaction<'static, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn execute(&mut self, q: Query) -> Result<u64> {
        execute_on(&mut **self, q).await
    }
    async fn fetch_all<R: Record>(&mut self, q: Query) -> Result<Vec<R>> {
        all_on(&mut **self, q).await
    }
    async fn fetch_optional<R: Record>(&mut self, q: Query) -> Result<Option<R>> {
        optional_on(&mut **self, q).await
    }
    async fn fetch_table(
        &mut self,
        q: Query,
        table: &'static tenantd_core::store::Table,
    ) -> Result<Vec<tenantd_core::store::Row>> {
        table_on(&mut **self, q, table).await
    }
    async fn each_table_row(
        &mut self,
        q: Query,
        table: &'static tenantd_core::store::Table,
        sink: &mut (dyn FnMut(tenantd_core::store::Row) -> Result<()> + Send),
    ) -> Result<u64> {
        each_on(&mut **self, q, table, sink).await
    }
}

#[async_trait]
impl<DB: Backend> Tx for sqlx::Transaction<'static, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn commit(self) -> Result<()> {
        sqlx::Transaction::commit(self).await.map_err(classify)
    }
}

#[async_trait]
impl<DB: Backend> Conn for sqlx::Pool<DB>
where
    for<'c> &'c sqlx::Pool<DB>: Executor<'c, Database = DB>,
{
    async fn execute(&mut self, q: Query) -> Result<u64> {
        execute_on(&*self, q).await
    }
    async fn fetch_all<R: Record>(&mut self, q: Query) -> Result<Vec<R>> {
        all_on(&*self, q).await
    }
    async fn fetch_optional<R: Record>(&mut self, q: Query) -> Result<Option<R>> {
        optional_on(&*self, q).await
    }
    async fn fetch_table(
        &mut self,
        q: Query,
        table: &'static tenantd_core::store::Table,
    ) -> Result<Vec<tenantd_core::store::Row>> {
        table_on(&*self, q, table).await
    }
    async fn each_table_row(
        &mut self,
        q: Query,
        table: &'static tenantd_core::store::Table,
        sink: &mut (dyn FnMut(tenantd_core::store::Row) -> Result<()> + Send),
    ) -> Result<u64> {
        each_on(&*self, q, table, sink).await
    }
}
