//! File records and upload reservations. A file is reserved (its bytes taken from
//! `storage_bytes`, its record `pending`, a reservation noted until a deadline), then either
//! completed (`stored`) or aborted (record and bytes released); the sweep job aborts what a
//! killed process left past its deadline.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{FileId, TenantId};
use tenantd_core::resource::{FileMeta, NewFile};
use tenantd_core::store::FileStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result, time};

use super::{Cell, append};
use crate::db::{Conn, Db, Int, Tx, q};
use crate::quota;
use crate::rows::{FileRow, ReservationRow, fmt};
use crate::sql::files as sql;

/// Drops an upload's reservation note (its upload completed or was aborted).
async fn forget_reservation(tx: &mut impl Conn, scope: &TenantScope, id: FileId) -> Result<()> {
    tx.execute(
        q(sql::DELETE_RESERVATION)
            .bind(id.to_string())
            .bind(scope.tenant_id().to_string()),
    )
    .await?;
    Ok(())
}

async fn file_in(tx: &mut impl Conn, scope: &TenantScope, id: FileId) -> Result<FileMeta> {
    let row: FileRow = tx
        .fetch_one(
            q(sql::FIND_STORED)
                .bind(id.to_string())
                .bind(scope.tenant_id().to_string()),
        )
        .await?;
    row.try_into()
}

#[async_trait]
impl<D: Db> FileStore for Cell<D> {
    async fn reserve_file(
        &self,
        scope: &TenantScope,
        new: &NewFile,
        limit: Option<i64>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let tenant = scope.tenant_id();
        let alerts = quota::take(&mut tx, tenant, "storage_bytes", limit, new.size).await?;
        append(&mut tx, tenant, alerts).await?;
        tx.execute(
            q(sql::INSERT_PENDING)
                .bind(new.id.to_string())
                .bind(tenant.to_string())
                .bind(new.name.as_str())
                .bind(new.size)
                .bind(&new.sha256)
                .bind(&new.content_type)
                .bind(fmt(time::now()))
                .bind(&new.created_by),
        )
        .await?;
        tx.execute(
            q(sql::INSERT_RESERVATION)
                .bind(new.id.to_string())
                .bind(tenant.to_string())
                .bind(fmt(expires_at)),
        )
        .await?;
        tx.commit().await
    }

    async fn complete_file(
        &self,
        scope: &TenantScope,
        id: FileId,
        audit: AuditDraft,
    ) -> Result<FileMeta> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let n = tx
            .execute(
                q(sql::MARK_STORED)
                    .bind(id.to_string())
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        if n != 1 {
            return Err(Error::NotFound);
        }
        forget_reservation(&mut tx, scope, id).await?;
        append(&mut tx, scope.tenant_id(), vec![audit]).await?;
        let meta = file_in(&mut tx, scope, id).await?;
        tx.commit().await?;
        Ok(meta)
    }

    async fn abort_file(&self, scope: &TenantScope, id: FileId) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let size: Option<Int> = tx
            .fetch_optional(
                q(sql::DELETE_PENDING)
                    .bind(id.to_string())
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        if let Some(Int(size)) = size {
            quota::release(&mut tx, scope.tenant_id(), "storage_bytes", size).await?;
        }
        forget_reservation(&mut tx, scope, id).await?;
        tx.commit().await
    }

    async fn unscoped_expired_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(TenantId, FileId)>> {
        let rows: Vec<ReservationRow> = self
            .db
            .reader()?
            .fetch_all(
                q(sql::EXPIRED_RESERVATIONS)
                    .bind(fmt(now))
                    .bind(i64::from(limit)),
            )
            .await?;
        rows.into_iter().map(TryFrom::try_from).collect()
    }

    async fn get_file(&self, scope: &TenantScope, id: FileId) -> Result<FileMeta> {
        let mut tx = self.db.read_scoped(scope).await?;
        let meta = file_in(&mut tx, scope, id).await?;
        tx.commit().await?;
        Ok(meta)
    }

    async fn list_files(
        &self,
        scope: &TenantScope,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileMeta>> {
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<FileRow> = tx
            .fetch_all(
                q(sql::LIST_STORED)
                    .bind(scope.tenant_id().to_string())
                    .bind(after.map(|a| a.to_string()))
                    .bind(i64::from(limit)),
            )
            .await?;
        tx.commit().await?;
        rows.into_iter().map(FileMeta::try_from).collect()
    }

    async fn delete_file(
        &self,
        scope: &TenantScope,
        id: FileId,
        audit: AuditDraft,
    ) -> Result<FileMeta> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let meta = file_in(&mut tx, scope, id).await?;
        // Release exactly what this statement removed: a concurrent delete of the same file
        // removes nothing here and releases nothing.
        let size: Option<Int> = tx
            .fetch_optional(
                q(sql::DELETE_STORED)
                    .bind(id.to_string())
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        let Int(size) = size.ok_or(Error::NotFound)?;
        quota::release(&mut tx, scope.tenant_id(), "storage_bytes", size).await?;
        append(&mut tx, scope.tenant_id(), vec![audit]).await?;
        tx.commit().await?;
        Ok(meta)
    }
}
