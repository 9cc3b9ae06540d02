//! Agent runs as their tenant sees them: admitted in one transaction under the tenant's
//! head-row lock (the row every change of the tenant takes), so the queue limit, the token
//! budget and the `agent_spawns` window are exact under any concurrency; read, listed,
//! cancelled; stopped and resumed with the tenant. See `docs/design/runs.md`; the worker's
//! side is `leases.rs`.

use async_trait::async_trait;
use serde_json::json;
use tenantd_core::audit::{Action, AuditDraft, GENESIS_HASH};
use tenantd_core::ids::RunId;
use tenantd_core::runs::{
    IDEMPOTENCY_WINDOW, NewRun, Run, RunFilter, RunLimits, RunStatus, RunTotals, TOKENS_HELD,
    run_event, tokens_counter,
};
use tenantd_core::store::RunStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result, time};

use super::{Cell, append};
use crate::db::{Conn, Db, Int, Tx, q};
use crate::rows::{Cancelled, LockedHead, RunRow, SpawnWindow, fmt};
use crate::sql::{audit as audit_sql, quotas, runs as sql};

/// A counter's value (0 when it has none yet).
pub(super) async fn counter(tx: &mut impl Conn, tenant: &str, quota: &str) -> Result<i64> {
    let v: Option<Int> = tx
        .fetch_optional(q(quotas::USED).bind(tenant).bind(quota))
        .await?;
    Ok(v.map_or(0, |Int(n)| n))
}

/// Locks the tenant's audit head (see the lock order in `sql/runs.rs`).
pub(super) async fn lock_head(tx: &mut impl Conn, tenant: &str) -> Result<()> {
    let _: LockedHead = tx
        .fetch_one(q(audit_sql::LOCK_HEAD).bind(tenant).bind(GENESIS_HASH))
        .await?;
    Ok(())
}

/// Gives `n` held tokens back.
pub(super) async fn release_hold(tx: &mut impl Conn, tenant: &str, n: i64) -> Result<()> {
    if n > 0 {
        tx.execute(q(quotas::RELEASE).bind(n).bind(tenant).bind(TOKENS_HELD))
            .await?;
    }
    Ok(())
}

/// Marks the tenant runnable when a slot freed and runs wait (skipping a row a lease holds).
pub(super) async fn mark_freed<D: Db>(tx: &mut D::Tx, tenant: &str) -> Result<()> {
    tx.execute(q(D::pick(sql::MARK_FREED_PG, sql::MARK_FREED_SQLITE)).bind(tenant))
        .await?;
    Ok(())
}

/// The `agent_spawns` check: `Some(retry_after)` when the last 60 s already hold the allowance.
async fn spawn_window(tx: &mut impl Conn, tenant: &str, per_minute: i64) -> Result<Option<u64>> {
    let now = time::now();
    let since = fmt(now - chrono::Duration::seconds(60));
    let w: SpawnWindow = tx
        .fetch_one(q(sql::SPAWNS).bind(tenant).bind(since))
        .await?;
    if w.n < per_minute {
        return Ok(None);
    }
    let first = w.first.as_deref().and_then(time::parse).unwrap_or(now);
    let free_at = first + chrono::Duration::seconds(60);
    let ms = (free_at - now).num_milliseconds().max(1) as u64;
    Ok(Some(ms.div_ceil(1000)))
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
        lock_head(&mut tx, &t).await?;
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
        let active: Option<Int> = tx.fetch_optional(q(sql::READY_ACTIVE).bind(&t)).await?;
        if matches!(active, Some(Int(0))) {
            return Err(Error::TenantSuspended);
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
        let used = counter(&mut tx, &t, &tokens_counter(now)).await?;
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
        if let Some(per_minute) = limits.spawns_per_minute
            && let Some(retry_after) = spawn_window(&mut tx, &t, per_minute).await?
        {
            return Err(Error::RateLimited { retry_after });
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
        if active.is_none() {
            tx.execute(
                q(sql::READY_ENSURE)
                    .bind(&t)
                    .bind(limits.slots)
                    .bind(limits.tokens),
            )
            .await?;
        }
        tx.execute(
            q(D::pick(sql::MARK_ADMITTED_PG, sql::MARK_ADMITTED_SQLITE))
                .bind(&t)
                .bind(limits.slots)
                .bind(limits.tokens)
                .bind(&at),
        )
        .await?;
        append(&mut tx, scope.tenant_id(), vec![audit]).await?;
        let row: RunRow = tx
            .fetch_one(q(sql::FIND).bind(new.id.to_string()).bind(&t))
            .await?;
        tx.commit().await?;
        let mut run = Run::try_from(row)?;
        run.queue_position = Some(queued);
        Ok((run, true))
    }

    async fn get_run(&self, scope: &TenantScope, id: RunId) -> Result<Run> {
        let mut tx = self.db.read_scoped(scope).await?;
        let t = scope.tenant_id().to_string();
        let row: RunRow = tx
            .fetch_one(q(sql::FIND).bind(id.to_string()).bind(&t))
            .await?;
        let ahead = if row.status == RunStatus::Queued.as_str() {
            let Int(n) = tx
                .fetch_one(q(sql::AHEAD).bind(&t).bind(row.created_at.as_str()))
                .await?;
            Some(n)
        } else {
            None
        };
        tx.commit().await?;
        let mut run = Run::try_from(row)?;
        run.queue_position = ahead;
        Ok(run)
    }

    async fn list_runs(&self, scope: &TenantScope, f: &RunFilter) -> Result<Vec<Run>> {
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<RunRow> = tx
            .fetch_all(
                q(sql::LIST)
                    .bind(scope.tenant_id().to_string())
                    .bind(f.status.map(|s| s.as_str().to_owned()))
                    .bind(f.agent_id.map(|a| a.to_string()))
                    .bind(f.before.map(|r| r.to_string()))
                    .bind(i64::from(f.limit)),
            )
            .await?;
        tx.commit().await?;
        rows.into_iter().map(Run::try_from).collect()
    }

    async fn cancel_run(&self, scope: &TenantScope, id: RunId, audit: AuditDraft) -> Result<Run> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let (i, t) = (id.to_string(), scope.tenant_id().to_string());
        lock_head(&mut tx, &t).await?;
        let before: RunRow = tx.fetch_one(q(sql::FIND).bind(&i).bind(&t)).await?;
        let held: Option<Int> = tx
            .fetch_optional(q(sql::CANCEL_OPEN).bind(&i).bind(&t).bind(fmt(time::now())))
            .await?;
        if let Some(Int(held)) = held {
            release_hold(&mut tx, &t, held).await?;
            if before.status == RunStatus::Leased.as_str() {
                mark_freed::<D>(&mut tx, &t).await?;
            }
            append(&mut tx, scope.tenant_id(), vec![audit]).await?;
        }
        let row: RunRow = tx.fetch_one(q(sql::FIND).bind(&i).bind(&t)).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn stop_runs(
        &self,
        scope: &TenantScope,
        reason: &str,
        actor: &str,
        request_id: Option<String>,
    ) -> Result<u64> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let t = scope.tenant_id().to_string();
        // The scheduler's row first, waiting for a lease that holds it (the lock order).
        tx.execute(q(sql::SET_ACTIVE).bind(&t).bind(0_i64)).await?;
        lock_head(&mut tx, &t).await?;
        let error = json!({ "reason": reason }).to_string();
        let ended: Vec<Cancelled> = tx
            .fetch_all(
                q(sql::CANCEL_ALL)
                    .bind(&t)
                    .bind(fmt(time::now()))
                    .bind(error),
            )
            .await?;
        let held: i64 = ended.iter().map(|c| c.n.max(0)).sum();
        release_hold(&mut tx, &t, held).await?;
        let mut events = Vec::with_capacity(ended.len());
        for c in &ended {
            let run = RunId(crate::rows::uuid(&c.id, "id")?);
            events.push(run_event(
                scope.tenant_id(),
                Action::RunCancel,
                run,
                actor,
                request_id.clone(),
                json!({ "reason": reason }),
            ));
        }
        append(&mut tx, scope.tenant_id(), events).await?;
        tx.commit().await?;
        Ok(ended.len() as u64)
    }

    async fn resume_runs(&self, scope: &TenantScope) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let t = scope.tenant_id().to_string();
        tx.execute(q(sql::SET_ACTIVE).bind(&t).bind(1_i64)).await?;
        lock_head(&mut tx, &t).await?;
        mark_freed::<D>(&mut tx, &t).await?;
        tx.commit().await
    }

    async fn run_totals(&self, scope: &TenantScope) -> Result<RunTotals> {
        let mut tx = self.db.read_scoped(scope).await?;
        let t = scope.tenant_id().to_string();
        let Int(queued) = tx.fetch_one(q(sql::QUEUED).bind(&t)).await?;
        let Int(leased) = tx.fetch_one(q(sql::LEASED).bind(&t)).await?;
        let now = time::now();
        let held = counter(&mut tx, &t, TOKENS_HELD).await?;
        let used = counter(&mut tx, &t, &tokens_counter(now)).await?;
        let rows: Vec<crate::rows::TimePair> = tx.fetch_all(q(sql::WAITS).bind(&t)).await?;
        let mut waits_ms: Vec<i64> = rows
            .iter()
            .filter_map(|r| {
                let (a, b) = (time::parse(&r.created)?, time::parse(&r.leased)?);
                Some((b - a).num_milliseconds().max(0))
            })
            .collect();
        waits_ms.sort_unstable();
        let month = format!("{}-01T00:00:00", now.format("%Y-%m"));
        let Int(lease_expiries) = tx.fetch_one(q(sql::EXPIRIES).bind(&t).bind(month)).await?;
        let prefix = tenantd_core::runs::rejections_prefix(now);
        let all: Vec<crate::rows::CounterRow> =
            tx.fetch_all(q(quotas::ALL_OF_TENANT).bind(&t)).await?;
        let rejections = all
            .into_iter()
            .filter_map(|c| Some((c.quota.strip_prefix(&prefix)?.to_owned(), c.used)))
            .collect();
        tx.commit().await?;
        Ok(RunTotals {
            queued,
            leased,
            held,
            used,
            waits_ms,
            lease_expiries,
            rejections,
        })
    }

    async fn count_rejection(&self, scope: &TenantScope, reason: &str) -> Result<()> {
        let name = tenantd_core::runs::rejections_counter(time::now(), reason);
        let mut tx = self.db.begin_scoped(scope).await?;
        tx.execute(
            q(quotas::BUMP)
                .bind(scope.tenant_id().to_string())
                .bind(name),
        )
        .await?;
        tx.commit().await
    }
}
