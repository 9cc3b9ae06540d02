//! The catalog, written once for every backend ([`Db`]), one file per capability of
//! `tenantd_core::store`: [`tenants`], [`members`], [`credentials`], [`keys`] (signing keys
//! and the audit outbox). The statements are in `crate::sql`.

mod credentials;
mod keys;
mod members;
mod moves;
mod tenants;

use async_trait::async_trait;
use tenantd_core::Result;
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::TenantId;
use tenantd_core::store::CatalogStore;

use crate::db::{Conn, Db, q};
use crate::sql::{self, audit};

/// The catalog on one backend.
#[derive(Clone, Debug)]
pub struct Catalog<D> {
    db: D,
}

impl<D: Db> Catalog<D> {
    /// The database.
    pub(crate) fn db(&self) -> &D {
        &self.db
    }

    pub(crate) fn new(db: D) -> Self {
        Self { db }
    }
}

#[async_trait]
impl<D: Db> CatalogStore for Catalog<D> {
    async fn ping(&self) -> Result<()> {
        self.db.reader()?.execute(q(sql::PING)).await?;
        Ok(())
    }
}

/// Puts a change's audit events in the outbox, in the change's transaction.
pub(crate) async fn insert_outbox(tx: &mut impl Conn, drafts: &[AuditDraft]) -> Result<()> {
    for d in drafts {
        tx.execute(
            q(audit::INSERT_OUTBOX)
                .bind(d.id.to_string())
                .bind(d.tenant_id.to_string())
                .bind(&d.actor)
                .bind(&d.action)
                .bind(&d.resource)
                .bind(&d.resource_id)
                .bind(&d.outcome)
                .bind(&d.request_id)
                .bind(&d.ip)
                .bind(&d.at)
                .bind(d.details.to_string()),
        )
        .await?;
    }
    Ok(())
}

/// Serialises changes to one tenant's membership (see `sql::tenants::LOCK`).
pub(crate) async fn lock_tenant(tx: &mut impl Conn, tenant: TenantId) -> Result<()> {
    tx.execute(q(sql::tenants::LOCK).bind(tenant.to_string()))
        .await?;
    Ok(())
}
