//! Agent runs: admitted in one transaction under the tenant's head-row lock (the row every
//! change of the tenant takes), so the queue limit and the token budget are exact under any
//! concurrency. See `docs/design/runs.md`.

use async_trait::async_trait;
use tenantd_core::audit::{AuditDraft, GENESIS_HASH};
use tenantd_core::ids::RunId;
use tenantd_core::runs::{IDEMPOTENCY_WINDOW, NewRun, Run, RunLimits, TOKENS_HELD, tokens_counter};
use tenantd_core::store::RunStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result, time};

use super::{Cell, append};
use crate::db::{Conn, Db, Int, Tx, q};
use crate::rows::{LockedHead, RunRow, fmt};
use crate::sql::{audit as audit_sql, quotas, runs as sql};

/// A counter's value (0 when it has none yet).
async fn counter(tx: &mut impl Conn, tenant: &str, quota: &str) -> Result<i64> {
    let v: Option<Int> = tx
        .fetch_optional(q(quotas::USED).bind(tenant).bind(quota))
        .await?;
    Ok(v.map_or(0, |Int(n)| n))
}

#[async_trait]
impl<D: Db> RunStore for Cell<D> {
    async fn admit_run(
        &self,
        scope: &TenantScope,
        new: NewRun,
        limits: RunLimits,
        audit: AuditDraft,
    ) -> Result<(Run, bool)> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let t = scope.tenant_id().to_string();
        let _: LockedHead = tx
            .fetch_one(q(audit_sql::LOCK_HEAD).bind(&t).bind(GENESIS_HASH))
            .await?;
        let now = time::now();
        if let Some(key) = &new.idempotency_key {
            let earlier: Option<RunRow> = tx
                .fetch_optional(q(sql::BY_KEY).bind(&t).bind(key.as_str()))
                .await?;
            if let Some(row) = earlier {
                let run = Run::try_from(row)?;
                if run.created_at > now - IDEMPOTENCY_WINDOW {
                    tx.commit().await?;
                    return Ok((run, false));
                }
                tx.execute(q(sql::FORGET_KEY).bind(&t).bind(key.as_str()))
                    .await?;
            }
        }
        let Int(queued) = tx.fetch_one(q(sql::QUEUED).bind(&t)).await?;
        if let Some(limit) = limits.queued
            && queued + 1 > limit
        {
            return Err(Error::QuotaExceeded {
                resource: "queued_runs".into(),
                current: queued,
                limit,
                requested: 1,
            });
        }
        let month = tokens_counter(now);
        let used = counter(&mut tx, &t, &month).await?;
        let held = counter(&mut tx, &t, TOKENS_HELD).await?;
        if let Some(limit) = limits.tokens
            && used + held + new.token_hold > limit
        {
            return Err(Error::QuotaExceeded {
                resource: "tokens".into(),
                current: used + held,
                limit,
                requested: new.token_hold,
            });
        }
        let at = fmt(now);
        tx.execute(
            q(sql::INSERT)
                .bind(new.id.to_string())
                .bind(&t)
                .bind(new.agent_id.to_string())
                .bind(new.model.as_str())
                .bind(new.input.to_string())
                .bind(new.max_tokens)
                .bind(new.token_hold)
                .bind(new.idempotency_key.clone())
                .bind(&at),
        )
        .await?;
        tx.execute(q(quotas::ENSURE).bind(&t).bind(TOKENS_HELD))
            .await?;
        let _: Option<Int> = tx
            .fetch_optional(
                q(quotas::TAKE)
                    .bind(new.token_hold)
                    .bind(&t)
                    .bind(TOKENS_HELD)
                    .bind(None::<i64>),
            )
            .await?;
        append(&mut tx, scope.tenant_id(), vec![audit]).await?;
        let row: RunRow = tx
            .fetch_one(q(sql::FIND).bind(new.id.to_string()).bind(&t))
            .await?;
        tx.commit().await?;
        Ok((row.try_into()?, true))
    }

    async fn get_run(&self, scope: &TenantScope, id: RunId) -> Result<Run> {
        let mut tx = self.db.read_scoped(scope).await?;
        let row: RunRow = tx
            .fetch_one(
                q(sql::FIND)
                    .bind(id.to_string())
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn cancel_run(&self, scope: &TenantScope, id: RunId, audit: AuditDraft) -> Result<Run> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let (i, t) = (id.to_string(), scope.tenant_id().to_string());
        let _: LockedHead = tx
            .fetch_one(q(audit_sql::LOCK_HEAD).bind(&t).bind(GENESIS_HASH))
            .await?;
        let held: Option<Int> = tx
            .fetch_optional(
                q(sql::CANCEL_QUEUED)
                    .bind(&i)
                    .bind(&t)
                    .bind(fmt(time::now())),
            )
            .await?;
        if let Some(Int(held)) = held {
            tx.execute(
                q(quotas::RELEASE)
                    .bind(held.max(0))
                    .bind(&t)
                    .bind(TOKENS_HELD),
            )
            .await?;
            append(&mut tx, scope.tenant_id(), vec![audit]).await?;
        }
        let row: RunRow = tx.fetch_one(q(sql::FIND).bind(&i).bind(&t)).await?;
        tx.commit().await?;
        row.try_into()
    }
}
