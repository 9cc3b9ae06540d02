//! Tenants: lookup, creation with their owner, settings, status and plan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantd_core::access::Role;
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::TenantId;
use tenantd_core::store::{NewSession, TenantOwner, TenantStore};
use tenantd_core::tenant::{NewTenant, Tenant, TenantPatch, TenantStatus};
use tenantd_core::{Error, Result, time};

use super::credentials::insert_session;
use super::members::{insert_invitation, insert_membership, insert_user};
use super::{Catalog, insert_outbox};
use crate::db::{Conn, Db, Int, Tx, q};
use crate::rows::{TenantRow, fmt};
use crate::sql::{quotas, tenants};

/// The tenant `id` as the transaction sees it; gone → `NotFound`.
pub(crate) async fn tenant_in(tx: &mut impl Conn, id: TenantId) -> Result<Tenant> {
    let row: TenantRow = tx
        .fetch_one(q(tenants::FIND_BY_ID).bind(id.to_string()))
        .await?;
    row.try_into()
}

/// A JSON merge patch of one level: `null` removes a key.
fn merge(current: Value, patch: serde_json::Map<String, Value>) -> Value {
    let mut obj = match current {
        Value::Object(o) => o,
        _ => serde_json::Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            obj.remove(&k);
        } else {
            obj.insert(k, v);
        }
    }
    Value::Object(obj)
}

/// Commits `tx` after a change to tenant `id` that must have touched a row, with its events.
async fn finish<T: Tx>(
    mut tx: T,
    id: TenantId,
    changed: u64,
    outbox: &[AuditDraft],
) -> Result<Tenant> {
    if changed == 0 {
        return Err(Error::NotFound);
    }
    insert_outbox(&mut tx, outbox).await?;
    let t = tenant_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(t)
}

#[async_trait]
impl<D: Db> TenantStore for Catalog<D> {
    async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        let row: Option<TenantRow> = self
            .db
            .reader()?
            .fetch_optional(q(tenants::FIND_BY_ID).bind(id.to_string()))
            .await?;
        row.map(Tenant::try_from).transpose()
    }

    async fn find_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>> {
        let row: Option<TenantRow> = self
            .db
            .reader()?
            .fetch_optional(q(tenants::FIND_BY_SLUG).bind(slug))
            .await?;
        row.map(Tenant::try_from).transpose()
    }

    async fn list_tenants(&self, after: Option<TenantId>, limit: u32) -> Result<Vec<Tenant>> {
        let rows: Vec<TenantRow> = self
            .db
            .reader()?
            .fetch_all(
                q(tenants::LIST)
                    .bind(after.map(|a| a.to_string()))
                    .bind(i64::from(limit)),
            )
            .await?;
        rows.into_iter().map(Tenant::try_from).collect()
    }

    async fn create_tenant(
        &self,
        t: NewTenant,
        owner: TenantOwner,
        session: Option<NewSession>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let mut tx = self.db.begin().await?;
        let now = fmt(time::now());
        tx.execute(
            q(tenants::INSERT)
                .bind(t.id.to_string())
                .bind(t.slug.as_str())
                .bind(t.name.as_str())
                .bind(t.kind.as_str())
                .bind(t.plan.as_str())
                .bind(t.region.map(|r| r.as_str()))
                .bind(t.cell.as_str())
                .bind(t.settings.to_string())
                .bind(&now)
                .bind(&now),
        )
        .await?;
        if t.dedicated {
            tx.execute(
                q(tenants::CLAIM_DEDICATED_CELL)
                    .bind(t.cell.as_str())
                    .bind(t.id.to_string()),
            )
            .await?;
            let Int(others) = tx
                .fetch_one(
                    q(tenants::OTHERS_IN_CELL)
                        .bind(t.cell.as_str())
                        .bind(t.id.to_string()),
                )
                .await?;
            if others > 0 {
                return Err(Error::conflict(
                    "cell",
                    "this dedicated cell already holds a tenant",
                ));
            }
        }
        tx.execute(q(quotas::START_USERS).bind(t.id.to_string()))
            .await?;
        match &owner {
            TenantOwner::NewUser(u) => {
                insert_user(&mut tx, u).await?;
                insert_membership(&mut tx, t.id, u.id, Role::Owner).await?;
            }
            TenantOwner::Existing(u) => insert_membership(&mut tx, t.id, *u, Role::Owner).await?,
            TenantOwner::Invite(inv) => insert_invitation(&mut tx, inv).await?,
        }
        if let Some(s) = &session {
            insert_session(&mut tx, s).await?;
        }
        finish(tx, t.id, 1, &outbox).await
    }

    async fn update_tenant(
        &self,
        id: TenantId,
        patch: TenantPatch,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let mut tx = self.db.begin().await?;
        let cur = tenant_in(&mut tx, id).await?;
        let name = patch
            .name
            .map(|n| n.as_str().to_owned())
            .unwrap_or(cur.name);
        let settings = match patch.settings {
            Some(p) => merge(cur.settings, p),
            None => cur.settings,
        };
        let branding = match patch.branding {
            Some(p) => merge(cur.branding, p),
            None => cur.branding,
        };
        let n = tx
            .execute(
                q(tenants::UPDATE)
                    .bind(name)
                    .bind(settings.to_string())
                    .bind(branding.to_string())
                    .bind(fmt(time::now()))
                    .bind(id.to_string()),
            )
            .await?;
        finish(tx, id, n, &outbox).await
    }

    async fn set_tenant_status(
        &self,
        id: TenantId,
        status: TenantStatus,
        reason: Option<String>,
        purge_after: Option<DateTime<Utc>>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let mut tx = self.db.begin().await?;
        let now = fmt(time::now());
        let n = tx
            .execute(
                q(tenants::SET_STATUS)
                    .bind(status.as_str())
                    .bind(reason)
                    .bind(&now)
                    .bind(status == TenantStatus::Deleted)
                    .bind(&now)
                    .bind(purge_after.map(fmt))
                    .bind(id.to_string()),
            )
            .await?;
        finish(tx, id, n, &outbox).await
    }

    async fn set_tenant_plan(
        &self,
        id: TenantId,
        plan: &tenantd_core::tenant::PlanId,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                q(tenants::SET_PLAN)
                    .bind(plan.as_str())
                    .bind(fmt(time::now()))
                    .bind(id.to_string()),
            )
            .await?;
        finish(tx, id, n, &outbox).await
    }

    async fn claim_purge(
        &self,
        id: TenantId,
        seen: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let n = self
            .db
            .writer()?
            .execute(
                q(tenants::CLAIM_PURGE)
                    .bind(fmt(until))
                    .bind(id.to_string())
                    .bind(fmt(seen)),
            )
            .await?;
        Ok(n == 1)
    }
}
