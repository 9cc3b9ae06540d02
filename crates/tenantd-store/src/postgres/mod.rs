//! PostgreSQL: the production backend.
//!
//! Migrations run as the owner role (`migrate_url`); tenantd serves as another role, the
//! deployment's own (granted directly, never through a role another deployment may hold), that
//! must not be a superuser, have `BYPASSRLS`, or own the tables — [`check_serving_role`] refuses to start otherwise. Every cell transaction sets
//! `app.tenant_id` with `set_config(…, true)` (transaction-local), which the row-level
//! security policies of the cell tables read.

mod grants;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use grants::check_serving_role;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction};
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use crate::breaker::Breaker;
use crate::catalog::Catalog;
use crate::cell::Cell;
use crate::{Migration, classify};

/// The catalog on PostgreSQL.
pub type PgCatalog = Catalog<Db>;
/// A cell on PostgreSQL.
pub type PgCell = Cell<Db>;

const CATALOG_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/postgres/catalog/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "dedicated_cells",
        sql: include_str!("../../migrations/postgres/catalog/0002_dedicated_cells.sql"),
    },
    Migration {
        version: 3,
        name: "deployment_grants",
        sql: include_str!("../../migrations/postgres/catalog/0003_deployment_grants.sql"),
    },
    Migration {
        version: 4,
        name: "quota_alerts",
        sql: include_str!("../../migrations/postgres/catalog/0004_quota_alerts.sql"),
    },
    Migration {
        version: 5,
        name: "tenant_removal",
        sql: include_str!("../../migrations/postgres/catalog/0005_tenant_removal.sql"),
    },
    Migration {
        version: 6,
        name: "tenant_moves",
        sql: include_str!("../../migrations/postgres/catalog/0006_tenant_moves.sql"),
    },
    Migration {
        version: 7,
        name: "password_setups",
        sql: include_str!("../../migrations/postgres/catalog/0007_password_setups.sql"),
    },
    Migration {
        version: 8,
        name: "move_leases",
        sql: include_str!("../../migrations/postgres/catalog/0008_move_leases.sql"),
    },
];

const CELL_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/postgres/cell/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "files",
        sql: include_str!("../../migrations/postgres/cell/0002_files.sql"),
    },
    Migration {
        version: 3,
        name: "deployment_grants",
        sql: include_str!("../../migrations/postgres/cell/0003_deployment_grants.sql"),
    },
    Migration {
        version: 4,
        name: "upload_reservations",
        sql: include_str!("../../migrations/postgres/cell/0004_upload_reservations.sql"),
    },
    Migration {
        version: 5,
        name: "events",
        sql: include_str!("../../migrations/postgres/cell/0005_events.sql"),
    },
    Migration {
        version: 6,
        name: "webhooks",
        sql: include_str!("../../migrations/postgres/cell/0006_webhooks.sql"),
    },
    Migration {
        version: 7,
        name: "event_log_lighter",
        sql: include_str!("../../migrations/postgres/cell/0007_event_log_lighter.sql"),
    },
    Migration {
        version: 8,
        name: "runs",
        sql: include_str!("../../migrations/postgres/cell/0008_runs.sql"),
    },
    Migration {
        version: 9,
        name: "run_leasing",
        sql: include_str!("../../migrations/postgres/cell/0009_run_leasing.sql"),
    },
    Migration {
        version: 10,
        name: "run_fifo",
        sql: include_str!("../../migrations/postgres/cell/0010_run_fifo.sql"),
    },
    Migration {
        version: 11,
        name: "tenant_removal",
        sql: include_str!("../../migrations/postgres/cell/0011_tenant_removal.sql"),
    },
    Migration {
        version: 12,
        name: "tenant_fences",
        sql: include_str!("../../migrations/postgres/cell/0012_tenant_fences.sql"),
    },
];

/// Where a PostgreSQL database is, and who may do what there.
#[derive(Clone)]
pub struct PgLocation {
    /// The serving role's URL.
    pub url: String,
    /// The owner role's URL, for migrations (`None`: migrations are not run by tenantd).
    pub migrate_url: Option<String>,
    /// Pool size.
    pub max_connections: u32,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLocation")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A PostgreSQL database: one pool of the serving role (reads and writes share it), behind a
/// circuit breaker.
#[derive(Clone, Debug)]
pub struct Db {
    write: PgPool,
    read: PgPool,
    breaker: Arc<Breaker>,
}

impl Db {
    async fn open(loc: &PgLocation, migrations: &[Migration], what: &str) -> Result<Self> {
        if let Some(m) = &loc.migrate_url {
            grants::migrate(m, migrations, &loc.url)
                .await
                .map_err(|e| {
                    Error::Internal(format!("{what}: migrations as {}: {e}", redact(m)))
                })?;
        }
        let opts: PgConnectOptions = loc
            .url
            .parse()
            .map_err(|e| Error::Internal(format!("{what}: {}: {e}", redact(&loc.url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(loc.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(
                opts.clone()
                    .log_statements(tracing::log::LevelFilter::Trace),
            )
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "{what}: cannot connect to {}: {e}",
                    redact(&loc.url)
                ))
            })?;
        check_serving_role(&pool)
            .await
            .map_err(|e| Error::Internal(format!("{what} ({}): {e}", redact(&loc.url))))?;
        let breaker = Breaker::new(what);
        breaker.spawn_probe(opts);
        Ok(Self {
            write: pool.clone(),
            read: pool,
            breaker,
        })
    }
}

#[async_trait]
impl crate::db::Db for Db {
    type Tx = Transaction<'static, Postgres>;
    type Pool = PgPool;
    const ROW_LOCKS: bool = true;

    fn reader(&self) -> Result<PgPool> {
        self.breaker.check()?;
        Ok(self.read.clone())
    }

    fn writer(&self) -> Result<PgPool> {
        self.breaker.check()?;
        Ok(self.write.clone())
    }

    async fn begin(&self) -> Result<Self::Tx> {
        self.breaker.check()?;
        self.write.begin().await.map_err(|e| {
            self.breaker.observe(&e);
            classify(e)
        })
    }

    /// A transaction bound to the scope's tenant: the RLS policies see `app.tenant_id`
    /// (transaction-local, so a pooled connection never carries it into another request).
    /// Binds the tenant for row-level security and takes its fence in the same round trip:
    /// a write transaction of a tenant being moved out is refused (`TenantMigrating`).
    async fn begin_scoped(&self, scope: &TenantScope) -> Result<Self::Tx> {
        let mut tx = self.begin().await?;
        Self::enter_scope(&mut tx, scope).await?;
        Ok(tx)
    }

    async fn read_scoped(&self, scope: &TenantScope) -> Result<Self::Tx> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(scope.tenant_id().to_string())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        Ok(tx)
    }

    async fn enter_scope(tx: &mut Self::Tx, scope: &TenantScope) -> Result<()> {
        use sqlx::Row;
        let row = sqlx::query(SCOPE_AND_FENCE)
            .bind(scope.tenant_id().to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(classify)?;
        let frozen: Option<i64> = row.try_get("frozen").map_err(classify)?;
        if frozen == Some(1) {
            return Err(tenantd_core::Error::TenantMigrating);
        }
        Ok(())
    }

    async fn snapshot_scoped(&self, scope: &TenantScope) -> Result<Self::Tx> {
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        // A read: bound to the tenant, not fenced.
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(scope.tenant_id().to_string())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        Ok(tx)
    }

    /// The tenant's scope, also named as the one being removed (`app.remove_tenant`): the
    /// policies of `cell/0011_tenant_removal.sql` let its audit rows and events go only here.
    async fn begin_removal(&self, scope: &TenantScope) -> Result<Self::Tx> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "SELECT set_config('app.tenant_id', $1, true), set_config('app.remove_tenant', $1, true)",
        )
        .bind(scope.tenant_id().to_string())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Ok(tx)
    }

    /// The retention marker scope: the policies let it delete old events and nothing else.
    async fn begin_retention(&self, before: &str) -> Result<Self::Tx> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "SELECT set_config('app.tenant_id', '*retention*', true), set_config('app.prune_before', $1, true)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Ok(tx)
    }
}

/// Sets the transaction's tenant for row-level security and reads its fence, locking the
/// fence row (when there is one) until the transaction ends: a freeze waits for it.
const SCOPE_AND_FENCE: &str = "SELECT set_config('app.tenant_id', $1, true) AS t, \
    (SELECT frozen FROM tenant_fences WHERE tenant_id = $1 FOR SHARE) AS frozen";

/// Opens a catalog: migrates as the owner (when `migrate_url` is given), then connects as
/// the serving role and checks it.
pub async fn open_catalog(loc: &PgLocation) -> Result<PgCatalog> {
    Ok(Catalog::new(
        Db::open(loc, CATALOG_MIGRATIONS, "catalog").await?,
    ))
}

/// Opens a cell the same way.
pub async fn open_cell(name: &str, loc: &PgLocation) -> Result<PgCell> {
    Ok(Cell::new(
        name,
        Db::open(loc, CELL_MIGRATIONS, &format!("cell {name}")).await?,
    ))
}
