//! Agent runs as workers see them: the fair lease, heartbeats, usage, completion, and the
//! expiry of leases nobody renewed. A worker's call names a run; `run_leases` (ids only) says
//! whose it is, and the rest of the call runs in that tenant's scope, fenced by the lease id.
//! See `docs/design/runs.md` and the lock order in `sql/runs.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tenantd_core::audit::Action;
use tenantd_core::ids::{RunId, TenantId};
use tenantd_core::runs::{
    Completion, DueLease, Lease, LeaseAsk, LeaseOutcome, Run, RunStatus, Scheduling, TOKENS_HELD,
    UsageReport, WorkerCall, run_event, tokens_counter,
};
use tenantd_core::store::LeaseStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result, time};

use super::runs::{counter, lock_head, mark_freed, release_hold};
use super::{Cell, append};
use crate::db::{Conn, Db, Int, Text, Tx, q};
use crate::rows::{DueRow, LeaseEntry, QueuedHead, ReadyRow, RunRow, fmt, uuid};
use crate::sql::runs as sql;

/// How many tenants one lease call looks at before answering "nothing".
const TENANTS_PER_LEASE: usize = 8;

/// What the budget leaves a run: its hold's rest plus what nobody holds or used.
async fn remaining(
    tx: &mut impl Conn,
    tenant: &str,
    limit: Option<i64>,
    run_left: i64,
) -> Result<Option<i64>> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    let used = counter(tx, tenant, &tokens_counter(time::now())).await?;
    let held = counter(tx, tenant, TOKENS_HELD).await?;
    Ok(Some(run_left + (limit - used - held).max(0)))
}

/// The fence: the run must be leased under this lease.
fn fence(row: &RunRow, lease_id: &str) -> Result<()> {
    let same = row.lease_id.as_deref() == Some(lease_id);
    match row.status()? {
        RunStatus::Leased if same => Ok(()),
        RunStatus::Cancelled if same => Err(Error::RunCancelled),
        _ => Err(Error::LeaseLost),
    }
}

/// A worker call's transaction: the run's lease entry (none in this cell: `None`), the
/// transaction bound to its tenant, and the run row under the tenant's head lock.
async fn open_call<D: Db>(
    cell: &Cell<D>,
    call: &WorkerCall,
    lock: bool,
) -> Result<Option<(D::Tx, TenantScope, RunRow)>> {
    let mut tx = cell.db.begin().await?;
    let run = call.run.to_string();
    let entry: Option<LeaseEntry> = tx.fetch_optional(q(sql::FIND_LEASE).bind(&run)).await?;
    let Some(entry) = entry else {
        return Ok(None);
    };
    let tenant = TenantId(uuid(&entry.tenant_id, "tenant_id")?);
    let scope = TenantScope::unscoped_trusted(tenant, cell.name.as_str());
    D::enter_scope(&mut tx, &scope).await?;
    if lock {
        lock_head(&mut tx, &entry.tenant_id).await?;
    }
    let row: RunRow = tx
        .fetch_one(q(sql::FIND).bind(&run).bind(&entry.tenant_id))
        .await?;
    Ok(Some((tx, scope, row)))
}

/// The fair pick: the least recently served tenant with work and a free slot, its row locked
/// (`SKIP LOCKED` on PostgreSQL). When every such row is held by other leases, a lease that
/// may wait (`wait_for_row`) waits for the first one's row alone (see `FIRST_RUNNABLE`).
async fn next_fair<D: Db>(tx: &mut D::Tx, passed: &str, wait: bool) -> Result<Option<ReadyRow>> {
    let ready: Option<ReadyRow> = tx
        .fetch_optional(q(D::pick(sql::NEXT_TENANT_PG, sql::NEXT_TENANT_SQLITE)).bind(passed))
        .await?;
    if ready.is_some() || !D::ROW_LOCKS || !wait {
        return Ok(ready);
    }
    let first: Option<Text> = tx
        .fetch_optional(q(sql::FIRST_RUNNABLE).bind(passed))
        .await?;
    match first {
        Some(Text(t)) => tx.fetch_optional(q(sql::LOCK_READY_ROW).bind(t)).await,
        None => Ok(None),
    }
}

#[async_trait]
impl<D: Db> LeaseStore for Cell<D> {
    async fn unscoped_lease(&self, ask: &LeaseAsk) -> Result<LeaseOutcome> {
        let models = ask.models.as_ref().map(|m| format!(",{},", m.join(",")));
        let mut passed = String::from(",");
        for _ in 0..TENANTS_PER_LEASE {
            let mut tx = self.db.begin().await?;
            let ready: Option<ReadyRow> = match ask.scheduling {
                Scheduling::Fifo => {
                    // The tenant whose head run is oldest; its row, waited for (PostgreSQL).
                    let first: Option<Text> = tx
                        .fetch_optional(q(sql::FIFO_FIRST).bind(passed.as_str()))
                        .await?;
                    let Some(Text(t)) = first else {
                        return Ok(LeaseOutcome::Empty);
                    };
                    let lock = match (D::ROW_LOCKS, ask.wait_for_row) {
                        (false, _) => sql::READY_RUNNABLE,
                        (true, true) => sql::LOCK_READY_ROW,
                        (true, false) => sql::LOCK_READY_ROW_SKIP,
                    };
                    let ready: Option<ReadyRow> = tx.fetch_optional(q(lock).bind(&t)).await?;
                    if ready.is_none() && D::ROW_LOCKS && !ask.wait_for_row {
                        // Held by another lease (or no longer runnable): FIFO does not pass
                        // the oldest run over; the service asks again, waiting.
                        return Ok(LeaseOutcome::Contended);
                    }
                    if ready.is_none() {
                        // Full, or stopped: the next tenant's oldest run.
                        drop(tx);
                        passed.push_str(&t);
                        passed.push(',');
                        continue;
                    }
                    ready
                }
                Scheduling::Fair => next_fair::<D>(&mut tx, &passed, ask.wait_for_row).await?,
            };
            let Some(ready) = ready else {
                if D::ROW_LOCKS {
                    let any: Option<Int> = tx
                        .fetch_optional(q(sql::ANY_RUNNABLE).bind(passed.as_str()))
                        .await?;
                    if any.is_some() {
                        return Ok(LeaseOutcome::Contended);
                    }
                }
                return Ok(LeaseOutcome::Empty);
            };
            let t = ready.tenant_id.clone();
            let tenant = TenantId(uuid(&t, "tenant_id")?);
            let scope = TenantScope::unscoped_trusted(tenant, self.name.as_str());
            D::enter_scope(&mut tx, &scope).await?;
            lock_head(&mut tx, &t).await?;
            // The truth, from the run rows, under the tenant's lock: the row was a hint.
            let Int(leased) = tx.fetch_one(q(sql::LEASED).bind(&t)).await?;
            let full = ready.slots.is_some_and(|s| leased >= s);
            let head: Vec<QueuedHead> = tx.fetch_all(q(sql::OLDEST_QUEUED).bind(&t)).await?;
            let pick = match (&models, full) {
                (_, true) => None,
                (None, false) => head.first().map(|h| h.id.clone()),
                (Some(m), false) => {
                    let r: Option<Text> = tx
                        .fetch_optional(q(sql::OLDEST_QUEUED_FOR).bind(&t).bind(m.as_str()))
                        .await?;
                    r.map(|Text(id)| id)
                }
            };
            let Some(run_id) = pick else {
                if full || head.is_empty() {
                    // A stale hint: the tenant has no room or no work; clear it.
                    let head_at = head.first().map(|h| h.created_at.as_str());
                    tx.execute(q(sql::SERVED_KEEP).bind(&t).bind(0_i64).bind(head_at))
                        .await?;
                    tx.commit().await?;
                } else {
                    drop(tx);
                }
                passed.push_str(&t);
                passed.push(',');
                continue;
            };
            let now = time::now();
            let until = now + ask.ttl;
            let lease_id = uuid::Uuid::now_v7().to_string();
            tx.execute(
                q(sql::LEASE)
                    .bind(run_id.as_str())
                    .bind(&t)
                    .bind(lease_id.as_str())
                    .bind(fmt(until))
                    .bind(fmt(now)),
            )
            .await?;
            tx.execute(
                q(sql::LEASE_ENTRY)
                    .bind(run_id.as_str())
                    .bind(&t)
                    .bind(lease_id.as_str())
                    .bind(fmt(until)),
            )
            .await?;
            let more = head.len() > 1 && ready.slots.is_none_or(|s| leased + 1 < s);
            // What waits next: the second of the two, unless a worker's models chose another.
            let next = head
                .iter()
                .find(|h| h.id != run_id)
                .map(|h| h.created_at.as_str());
            tx.execute(
                q(sql::SERVED)
                    .bind(&t)
                    .bind(fmt(now))
                    .bind(i64::from(more))
                    .bind(next),
            )
            .await?;
            let id = RunId(uuid(&run_id, "id")?);
            let row: RunRow = tx.fetch_one(q(sql::FIND).bind(&run_id).bind(&t)).await?;
            let left = row.held()?;
            let tokens_remaining = remaining(&mut tx, &t, ready.token_limit, left).await?;
            let event = run_event(
                tenant,
                Action::RunLease,
                id,
                &ask.actor,
                ask.request_id.clone(),
                json!({ "attempt": row.attempt, "model": row.model }),
            );
            append(&mut tx, tenant, vec![event]).await?;
            tx.commit().await?;
            return Ok(LeaseOutcome::Leased(Box::new(Lease {
                run: Run::try_from(row)?,
                lease_id,
                lease_until: until,
                tokens_remaining,
            })));
        }
        Ok(LeaseOutcome::Empty)
    }

    async fn unscoped_heartbeat(
        &self,
        call: &WorkerCall,
        ttl: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let Some((mut tx, scope, row)) = open_call(self, call, false).await? else {
            return Ok(None);
        };
        fence(&row, &call.lease_id)?;
        let until = fmt(time::now() + ttl);
        let (r, t) = (call.run.to_string(), scope.tenant_id().to_string());
        tx.execute(
            q(sql::RENEW)
                .bind(&r)
                .bind(&t)
                .bind(&until)
                .bind(call.lease_id.as_str()),
        )
        .await?;
        tx.execute(
            q(sql::RENEW_ENTRY)
                .bind(&r)
                .bind(&until)
                .bind(call.lease_id.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(time::parse(&until))
    }

    async fn unscoped_report_usage(
        &self,
        call: &WorkerCall,
        seq: i64,
        tokens: i64,
    ) -> Result<Option<UsageReport>> {
        let Some((mut tx, scope, row)) = open_call(self, call, true).await? else {
            return Ok(None);
        };
        let (r, t) = (call.run.to_string(), scope.tenant_id().to_string());
        let ready: Option<ReadyRow> = tx.fetch_optional(q(sql::READY_ROW).bind(&t)).await?;
        let limit = ready.and_then(|r| r.token_limit);
        if row.status()? == RunStatus::BudgetExceeded
            && row.lease_id.as_deref() == Some(&call.lease_id)
        {
            return Err(Error::BudgetExhausted {
                tokens_used: row.tokens_used,
                limit: limit.unwrap_or(0),
            });
        }
        fence(&row, &call.lease_id)?;
        let first = tx
            .execute(
                q(sql::RECORD_USAGE)
                    .bind(&t)
                    .bind(&r)
                    .bind(seq)
                    .bind(tokens),
            )
            .await?;
        if first == 0 {
            // This seq was counted already: the same answer, nothing moved.
            let left = row.held()?;
            let tokens_remaining = remaining(&mut tx, &t, limit, left).await?;
            tx.commit().await?;
            return Ok(Some(UsageReport {
                tokens_used: row.tokens_used,
                tokens_remaining,
            }));
        }
        let now = time::now();
        let left = row.held()?;
        let from_hold = tokens.min(left);
        let excess = tokens - from_hold;
        let used_month = counter(&mut tx, &t, &tokens_counter(now)).await?;
        let held_all = counter(&mut tx, &t, TOKENS_HELD).await?;
        let fits = limit.is_none_or(|l| used_month + held_all + excess <= l);
        let used_run = row.tokens_used + tokens;
        let (_, mut events) = crate::quota::count(
            &mut tx,
            scope.tenant_id(),
            &tokens_counter(now),
            "tokens",
            limit,
            tokens,
        )
        .await?;
        if fits {
            // The hold shrinks by what came out of it and grows by the excess: it stays
            // what the run used when the run used more than it held.
            release_hold(&mut tx, &t, from_hold).await?;
            let hold = row.token_hold.max(used_run);
            tx.execute(
                q(sql::SET_TOKENS)
                    .bind(&r)
                    .bind(&t)
                    .bind(used_run)
                    .bind(hold)
                    .bind(fmt(now)),
            )
            .await?;
            append(&mut tx, scope.tenant_id(), events).await?;
            let left = hold - used_run;
            let tokens_remaining = remaining(&mut tx, &t, limit, left).await?;
            tx.commit().await?;
            return Ok(Some(UsageReport {
                tokens_used: used_run,
                tokens_remaining,
            }));
        }
        // Past the budget: the tokens count (they were spent), the run ends, its hold returns.
        release_hold(&mut tx, &t, left).await?;
        let error = json!({ "reason": "the tenant's token budget is exhausted" }).to_string();
        tx.execute(
            q(sql::END)
                .bind(&r)
                .bind(&t)
                .bind(RunStatus::BudgetExceeded.as_str())
                .bind(used_run)
                .bind(None::<String>)
                .bind(error)
                .bind(fmt(now)),
        )
        .await?;
        mark_freed::<D>(&mut tx, &t).await?;
        events.push(run_event(
            scope.tenant_id(),
            Action::RunBudgetExceeded,
            call.run,
            &call.actor,
            call.request_id.clone(),
            json!({ "tokens_used": used_run, "limit": limit }),
        ));
        append(&mut tx, scope.tenant_id(), events).await?;
        tx.commit().await?;
        Err(Error::BudgetExhausted {
            tokens_used: used_run,
            limit: limit.unwrap_or(0),
        })
    }

    async fn unscoped_complete(&self, call: &WorkerCall, done: Completion) -> Result<Option<Run>> {
        let Some((mut tx, scope, row)) = open_call(self, call, true).await? else {
            return Ok(None);
        };
        let status = row.status()?;
        let same = row.lease_id.as_deref() == Some(call.lease_id.as_str());
        if same && matches!(status, RunStatus::Succeeded | RunStatus::Failed) {
            // The same completion again: the run as it ended.
            tx.commit().await?;
            return Ok(Some(row.try_into()?));
        }
        fence(&row, &call.lease_id)?;
        let (r, t) = (call.run.to_string(), scope.tenant_id().to_string());
        let now = time::now();
        // A total below what was reported counts what was reported: spent tokens stay spent.
        let total = done
            .tokens_total
            .unwrap_or(row.tokens_used)
            .max(row.tokens_used);
        let extra = total - row.tokens_used;
        let ready: Option<ReadyRow> = tx.fetch_optional(q(sql::READY_ROW).bind(&t)).await?;
        let limit = ready.and_then(|r| r.token_limit);
        let mut events = Vec::new();
        if extra > 0 {
            let (_, fired) = crate::quota::count(
                &mut tx,
                scope.tenant_id(),
                &tokens_counter(now),
                "tokens",
                limit,
                extra,
            )
            .await?;
            events = fired;
        }
        release_hold(&mut tx, &t, row.held()?).await?;
        let (status, action) = if done.error.is_some() {
            (RunStatus::Failed, Action::RunFail)
        } else {
            (RunStatus::Succeeded, Action::RunSucceed)
        };
        tx.execute(
            q(sql::END)
                .bind(&r)
                .bind(&t)
                .bind(status.as_str())
                .bind(total)
                .bind(done.output.map(|v| v.to_string()))
                .bind(done.error.map(|v| v.to_string()))
                .bind(fmt(now)),
        )
        .await?;
        mark_freed::<D>(&mut tx, &t).await?;
        events.push(run_event(
            scope.tenant_id(),
            action,
            call.run,
            &call.actor,
            call.request_id.clone(),
            json!({ "tokens_used": total }),
        ));
        append(&mut tx, scope.tenant_id(), events).await?;
        let row: RunRow = tx.fetch_one(q(sql::FIND).bind(&r).bind(&t)).await?;
        tx.commit().await?;
        Ok(Some(row.try_into()?))
    }

    async fn unscoped_due_leases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<DueLease>> {
        let rows: Vec<DueRow> = self
            .db
            .reader()?
            .fetch_all(q(sql::DUE_LEASES).bind(fmt(now)).bind(i64::from(limit)))
            .await?;
        rows.into_iter().map(DueLease::try_from).collect()
    }

    async fn expire_lease(
        &self,
        scope: &TenantScope,
        due: &DueLease,
        max_attempts: i64,
    ) -> Result<Option<RunStatus>> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let (r, t) = (due.run.to_string(), scope.tenant_id().to_string());
        lock_head(&mut tx, &t).await?;
        let entry: Option<crate::rows::LeaseEntry> =
            tx.fetch_optional(q(sql::FIND_LEASE).bind(&r)).await?;
        let until: Option<Text> = tx.fetch_optional(q(sql::LEASE_UNTIL).bind(&r)).await?;
        let renewed = until
            .and_then(|Text(u)| time::parse(&u))
            .is_some_and(|u| u >= time::now());
        if entry.is_none_or(|e| e.lease_id != due.lease_id) || renewed {
            tx.commit().await?;
            return Ok(None);
        }
        tx.execute(q(sql::DROP_ENTRY).bind(&r).bind(due.lease_id.as_str()))
            .await?;
        let row: Option<RunRow> = tx.fetch_optional(q(sql::FIND).bind(&r).bind(&t)).await?;
        let Some(row) = row.filter(|row| {
            row.status == RunStatus::Leased.as_str()
                && row.lease_id.as_deref() == Some(due.lease_id.as_str())
        }) else {
            // The run ended (completed, cancelled): only its entry was left to forget.
            tx.commit().await?;
            return Ok(None);
        };
        let now = time::now();
        let (status, action) = if row.attempt >= max_attempts {
            release_hold(&mut tx, &t, row.held()?).await?;
            let error = json!({ "reason": "its lease expired", "attempts": row.attempt });
            tx.execute(
                q(sql::END)
                    .bind(&r)
                    .bind(&t)
                    .bind(RunStatus::Expired.as_str())
                    .bind(row.tokens_used)
                    .bind(None::<String>)
                    .bind(error.to_string())
                    .bind(fmt(now)),
            )
            .await?;
            (RunStatus::Expired, Action::RunExpire)
        } else {
            tx.execute(
                q(sql::REQUEUE)
                    .bind(&r)
                    .bind(&t)
                    .bind(due.lease_id.as_str())
                    .bind(fmt(now)),
            )
            .await?;
            (RunStatus::Queued, Action::RunRequeue)
        };
        mark_freed::<D>(&mut tx, &t).await?;
        let event = run_event(
            scope.tenant_id(),
            action,
            due.run,
            "system",
            None,
            json!({ "attempt": row.attempt }),
        );
        append(&mut tx, scope.tenant_id(), vec![event]).await?;
        tx.commit().await?;
        Ok(Some(status))
    }

    async fn unscoped_run_tenants(
        &self,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantId>> {
        let rows: Vec<Text> = self
            .db
            .reader()?
            .fetch_all(
                q(sql::READY_TENANTS)
                    .bind(after.map_or_else(String::new, |t| t.to_string()))
                    .bind(i64::from(limit)),
            )
            .await?;
        rows.into_iter()
            .map(|Text(t)| Ok(TenantId(uuid(&t, "tenant_id")?)))
            .collect()
    }

    async fn held_check(&self, scope: &TenantScope) -> Result<(i64, i64)> {
        let mut tx = self.db.read_scoped(scope).await?;
        let c: crate::rows::HeldCheck = tx
            .fetch_one(q(sql::HELD_CHECK).bind(scope.tenant_id().to_string()))
            .await?;
        tx.commit().await?;
        Ok((c.counted.unwrap_or(0), c.n))
    }
}
