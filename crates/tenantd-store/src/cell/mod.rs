//! A cell, written once for every backend ([`Db`]), one file per capability of
//! `tenantd_core::store`: [`resources`], [`files`], [`audit`], [`events`]. Every statement binds the
//! scope's tenant; on PostgreSQL each transaction also sets it for row-level security
//! ([`Db::begin_scoped`]). The statements are in `crate::sql`.

mod audit;
mod events;
mod files;
mod leases;
mod resources;
mod runs;
mod webhooks;

use std::collections::BTreeMap;

use async_trait::async_trait;
use tenantd_core::Result;
use tenantd_core::store::CellStore;
use tenantd_core::tenant::TenantScope;

pub(crate) use self::audit::append;
pub(crate) use self::events::insert_event;
pub(crate) use self::webhooks::enqueue as enqueue_deliveries;
use crate::db::{Conn, Db, Tx, q};
use crate::rows::CounterRow;
use crate::sql::{self, quotas};

/// A cell on one backend.
#[derive(Clone, Debug)]
pub struct Cell<D> {
    name: String,
    db: D,
}

impl<D: Db> Cell<D> {
    /// The database.
    pub(crate) fn db(&self) -> &D {
        &self.db
    }

    pub(crate) fn new(name: &str, db: D) -> Self {
        Self {
            name: name.to_owned(),
            db,
        }
    }
}

#[async_trait]
impl<D: Db> CellStore for Cell<D> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ping(&self) -> Result<()> {
        self.db.reader()?.execute(q(sql::PING)).await?;
        Ok(())
    }

    async fn counters(&self, scope: &TenantScope) -> Result<BTreeMap<String, i64>> {
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<CounterRow> = tx
            .fetch_all(q(quotas::ALL_OF_TENANT).bind(scope.tenant_id().to_string()))
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| (r.quota, r.used)).collect())
    }
}
