//! SQLite: the embedded default. One file for the catalog, one per cell.
//!
//! Writes go through a one-connection pool and `BEGIN IMMEDIATE`, so writers queue fairly
//! in process and never fail a read-to-write lock upgrade; reads use their own pool (WAL
//! lets them run beside the writer).
//! A checkpointer of its own copies the write-ahead log into the file, so the writer never stalls on it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tenantd_core::{Error, Result};

use crate::catalog::Catalog;
use crate::cell::Cell;
use crate::{Migration, classify};

/// The catalog on SQLite.
pub type SqliteCatalog = Catalog<Db>;
/// A cell on SQLite.
pub type SqliteCell = Cell<Db>;

const CATALOG_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/sqlite/catalog/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "dedicated_cells",
        sql: include_str!("../migrations/sqlite/catalog/0002_dedicated_cells.sql"),
    },
    Migration {
        version: 3,
        name: "quota_alerts",
        sql: include_str!("../migrations/sqlite/catalog/0003_quota_alerts.sql"),
    },
    Migration {
        version: 4,
        name: "tenant_moves",
        sql: include_str!("../migrations/sqlite/catalog/0004_tenant_moves.sql"),
    },
    Migration {
        version: 5,
        name: "password_setups",
        sql: include_str!("../migrations/sqlite/catalog/0005_password_setups.sql"),
    },
    Migration {
        version: 6,
        name: "move_leases",
        sql: include_str!("../migrations/sqlite/catalog/0006_move_leases.sql"),
    },
];

const CELL_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/sqlite/cell/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "files",
        sql: include_str!("../migrations/sqlite/cell/0002_files.sql"),
    },
    Migration {
        version: 3,
        name: "upload_reservations",
        sql: include_str!("../migrations/sqlite/cell/0003_upload_reservations.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sql: include_str!("../migrations/sqlite/cell/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "webhooks",
        sql: include_str!("../migrations/sqlite/cell/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        name: "event_log_lighter",
        sql: include_str!("../migrations/sqlite/cell/0006_event_log_lighter.sql"),
    },
    Migration {
        version: 7,
        name: "runs",
        sql: include_str!("../migrations/sqlite/cell/0007_runs.sql"),
    },
    Migration {
        version: 8,
        name: "run_leasing",
        sql: include_str!("../migrations/sqlite/cell/0008_run_leasing.sql"),
    },
    Migration {
        version: 9,
        name: "run_fifo",
        sql: include_str!("../migrations/sqlite/cell/0009_run_fifo.sql"),
    },
    Migration {
        version: 10,
        name: "tenant_fences",
        sql: include_str!("../migrations/sqlite/cell/0010_tenant_fences.sql"),
    },
];

/// Whether a pooled connection may be handed out: never one still inside a transaction.
///
/// When a disk fills, SQLite rolls a transaction back by itself; sqlx's own ROLLBACK then
/// fails ("no transaction is active") and its transaction depth stays at 1, so every later
/// `BEGIN` on that connection failed until a restart. The ping waits for the rollback that a
/// dropped transaction queued on the connection's worker; a connection still counted inside a
/// transaction after it is closed, and the pool opens a fresh one.
async fn out_of_transaction(
    conn: &mut sqlx::SqliteConnection,
) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::Connection;
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("discarding a SQLite connection left inside a failed transaction");
        return Ok(false);
    }
    Ok(true)
}

/// A SQLite database: a writer pool of one connection, a reader pool, and the checkpointer.
#[derive(Clone, Debug)]
pub struct Db {
    write: SqlitePool,
    read: SqlitePool,
    _checkpoints: Option<Arc<Checkpointer>>,
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the write-ahead log from a connection of its own, so the writer never does.
///
/// SQLite's automatic checkpoint runs inside the `COMMIT` that crosses 1,000 pages of log: on
/// the one writer connection, a 20–40 ms copy and `fsync` that every write behind it waited
/// for (a gap of that length between leases every few seconds under load). A passive
/// checkpoint here blocks no writer and no reader. Stops when the last clone of the `Db` goes.
#[derive(Debug)]
struct Checkpointer(tokio::task::AbortHandle);

impl Checkpointer {
    fn start(pool: SqlitePool) -> Self {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; trying again");
                }
            }
        });
        Self(task.abort_handle())
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Db {
    async fn open(path: &Path, migrations: &[Migration]) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(classify)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a committed transaction survives a killed process; only a power
            // loss may drop the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .before_acquire(|conn, _| Box::pin(async move { out_of_transaction(conn).await }))
            .connect_with(opts.clone().pragma("wal_autocheckpoint", "0"))
            .await
            .map_err(classify)?;
        let db = Self {
            write,
            read: SqlitePool::connect_lazy_with(opts.clone()),
            _checkpoints: None,
        };
        db.migrate(migrations).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone().read_only(true))
            .await
            .map_err(classify)?;
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(opts);
        Ok(Self {
            read,
            _checkpoints: Some(Arc::new(Checkpointer::start(checkpoints))),
            ..db
        })
    }

    async fn migrate(&self, migrations: &[Migration]) -> Result<()> {
        let mut tx = crate::db::Db::begin(self).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _tenantd_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM _tenantd_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(classify)?;
        for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query(
                "INSERT INTO _tenantd_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(tenantd_core::time::format(tenantd_core::time::now()))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        tx.commit().await.map_err(classify)
    }
}

#[async_trait]
impl crate::db::Db for Db {
    type Tx = Transaction<'static, Sqlite>;
    type Pool = SqlitePool;
    const ROW_LOCKS: bool = false;

    fn reader(&self) -> Result<SqlitePool> {
        Ok(self.read.clone())
    }

    fn writer(&self) -> Result<SqlitePool> {
        Ok(self.write.clone())
    }

    /// A write transaction that holds the write lock from its first statement.
    async fn begin(&self) -> Result<Self::Tx> {
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)
    }

    /// SQLite has no row-level security: the scope is enforced by the statements, which all
    /// bind its tenant id.
    async fn begin_scoped(&self, scope: &tenantd_core::tenant::TenantScope) -> Result<Self::Tx> {
        let mut tx = self.begin().await?;
        crate::db::fenced(&mut tx, scope).await?;
        Ok(tx)
    }

    /// SQLite has no row-level security: the statements bind their tenant.
    async fn enter_scope(
        tx: &mut Self::Tx,
        scope: &tenantd_core::tenant::TenantScope,
    ) -> Result<()> {
        crate::db::fenced(tx, scope).await
    }

    /// SQLite has no row-level security: the statement is the whole rule.
    async fn begin_retention(&self, _before: &str) -> Result<Self::Tx> {
        crate::db::Db::begin(self).await
    }

    /// A read transaction on SQLite sees one snapshot from its first read to its end.
    async fn snapshot_scoped(&self, scope: &tenantd_core::tenant::TenantScope) -> Result<Self::Tx> {
        crate::db::Db::read_scoped(self, scope).await
    }

    /// SQLite has no row-level security: the statements bind their tenant.
    async fn begin_removal(&self, _scope: &tenantd_core::tenant::TenantScope) -> Result<Self::Tx> {
        crate::db::Db::begin(self).await
    }

    /// One snapshot, on the reader pool (WAL lets it run beside the writer).
    async fn read_scoped(&self, _scope: &tenantd_core::tenant::TenantScope) -> Result<Self::Tx> {
        self.read.begin().await.map_err(classify)
    }
}

/// Opens (creating and migrating) a catalog database file.
pub async fn open_catalog(path: &Path) -> Result<SqliteCatalog> {
    Ok(Catalog::new(Db::open(path, CATALOG_MIGRATIONS).await?))
}

/// Opens (creating and migrating) a cell database file.
pub async fn open_cell(name: &str, path: &Path) -> Result<SqliteCell> {
    Ok(Cell::new(name, Db::open(path, CELL_MIGRATIONS).await?))
}
