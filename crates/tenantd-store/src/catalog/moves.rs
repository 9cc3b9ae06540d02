//! [`MoveRecordStore`]: the catalog's record of each move between cells, and the two steps of
//! a move that change the tenant row (the freeze's status, the switch).

use async_trait::async_trait;
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::TenantId;
use tenantd_core::store::{MoveRecord, MoveRecordStore};
use tenantd_core::tenant::{CellName, TenantStatus};
use tenantd_core::{Error, Result, time};

use super::{Catalog, insert_outbox};
use crate::db::{Columns, Conn, Db, Int, Record, Text, Tx, q};
use crate::sql::tenants;

struct MoveRow(MoveRecord);

impl Record for MoveRow {
    fn read(row: &dyn Columns) -> Result<Self> {
        let detail = row.text("detail")?;
        Ok(MoveRow(MoveRecord {
            id: row.text("id")?,
            tenant_id: TenantId(
                row.text("tenant_id")?
                    .parse()
                    .map_err(|_| Error::Internal("tenant_moves.tenant_id".into()))?,
            ),
            source_cell: CellName::new(row.text("source_cell")?),
            target_cell: CellName::new(row.text("target_cell")?),
            phase: row.text("phase")?,
            prior_status: row.text("prior_status")?,
            detail: serde_json::from_str(&detail)
                .map_err(|_| Error::Internal("tenant_moves.detail".into()))?,
            started_at: row.text("started_at")?,
            updated_at: row.text("updated_at")?,
        }))
    }
}

/// A move with until when it is leased.
struct LeasedRow(MoveRecord, Option<String>);

impl Record for LeasedRow {
    fn read(row: &dyn Columns) -> Result<Self> {
        Ok(LeasedRow(
            MoveRow::read(row)?.0,
            row.opt_text("lease_until")?,
        ))
    }
}

fn now() -> String {
    time::format(time::now())
}

/// The statement that records a move's phase and detail.
fn update(m: &MoveRecord) -> crate::db::Query {
    q(tenants::UPDATE_MOVE)
        .bind(&m.phase)
        .bind(m.detail.to_string())
        .bind(now())
        .bind(&m.id)
}

#[async_trait]
impl<D: Db> MoveRecordStore for Catalog<D> {
    async fn insert_move(&self, m: &MoveRecord) -> Result<()> {
        self.db()
            .writer()?
            .execute(
                q(tenants::INSERT_MOVE)
                    .bind(&m.id)
                    .bind(m.tenant_id.to_string())
                    .bind(m.source_cell.as_str())
                    .bind(m.target_cell.as_str())
                    .bind(&m.phase)
                    .bind(&m.prior_status)
                    .bind(m.detail.to_string())
                    .bind(&m.started_at),
            )
            .await
            .map_err(|e| {
                crate::classify_conflict(e, "tenant", "the tenant is already being moved")
            })?;
        Ok(())
    }

    async fn latest_move(&self, tenant: TenantId) -> Result<Option<MoveRecord>> {
        let row: Option<MoveRow> = self
            .db()
            .reader()?
            .fetch_optional(q(tenants::LATEST_MOVE).bind(tenant.to_string()))
            .await?;
        Ok(row.map(|r| r.0))
    }

    async fn update_move(&self, m: &MoveRecord) -> Result<()> {
        self.db().writer()?.execute(update(m)).await?;
        Ok(())
    }

    async fn lease_move(&self, id: &str, runner: &str, until: &str, now: &str) -> Result<bool> {
        let n = self
            .db()
            .writer()?
            .execute(
                q(tenants::LEASE_MOVE)
                    .bind(runner)
                    .bind(until)
                    .bind(id)
                    .bind(now),
            )
            .await?;
        Ok(n == 1)
    }

    async fn release_move(&self, id: &str, runner: &str) -> Result<()> {
        self.db()
            .writer()?
            .execute(q(tenants::RELEASE_MOVE).bind(id).bind(runner))
            .await?;
        Ok(())
    }

    async fn open_moves(&self) -> Result<Vec<(MoveRecord, Option<String>)>> {
        let rows: Vec<LeasedRow> = self
            .db()
            .reader()?
            .fetch_all(q(tenants::OPEN_MOVES))
            .await?;
        Ok(rows.into_iter().map(|r| (r.0, r.1)).collect())
    }

    async fn move_status(&self, m: &MoveRecord, status: TenantStatus) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx.execute(
            q(tenants::SET_STATUS_ONLY)
                .bind(status.as_str())
                .bind(now())
                .bind(m.tenant_id.to_string()),
        )
        .await?;
        tx.execute(update(m)).await?;
        tx.commit().await
    }

    async fn claim_cell(&self, cell: &CellName, tenant: TenantId) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx.execute(
            q(tenants::CLAIM_CELL_IF_FREE)
                .bind(cell.as_str())
                .bind(tenant.to_string()),
        )
        .await?;
        let holder: Option<Text> = tx
            .fetch_optional(q(tenants::CELL_HOLDER).bind(cell.as_str()))
            .await?;
        let Int(others) = tx
            .fetch_one(
                q(tenants::OTHERS_IN_CELL)
                    .bind(cell.as_str())
                    .bind(tenant.to_string()),
            )
            .await?;
        if holder.is_some_and(|h| h.0 != tenant.to_string()) || others > 0 {
            return Err(Error::conflict(
                "cell",
                format!("the dedicated cell {cell} holds another tenant"),
            ));
        }
        tx.commit().await
    }

    async fn release_cell(&self, cell: &CellName, tenant: TenantId) -> Result<()> {
        self.db()
            .writer()?
            .execute(
                q(tenants::RELEASE_CELL)
                    .bind(cell.as_str())
                    .bind(tenant.to_string()),
            )
            .await?;
        Ok(())
    }

    async fn switch_move(
        &self,
        m: &MoveRecord,
        region: Option<&str>,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx.execute(
            q(tenants::RELEASE_CELL)
                .bind(m.source_cell.as_str())
                .bind(m.tenant_id.to_string()),
        )
        .await?;
        tx.execute(
            q(tenants::SWITCH_CELL)
                .bind(m.target_cell.as_str())
                .bind(region)
                .bind(&m.prior_status)
                .bind(now())
                .bind(m.tenant_id.to_string()),
        )
        .await?;
        tx.execute(update(m)).await?;
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }
}
