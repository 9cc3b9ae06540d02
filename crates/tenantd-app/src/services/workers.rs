//! Workers' calls: a platform API key with the `worker` role leases runs of every tenant,
//! fairly, and reports on the run it holds — heartbeat, usage, completion — each call fenced
//! by its lease. It reads nothing else of any tenant. See `docs/design/runs.md`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tenantd_core::access::Granted;
use tenantd_core::access::perm::RunsWork;
use tenantd_core::ids::RunId;
use tenantd_core::runs::{
    Completion, Lease, LeaseAsk, LeaseOutcome, MAX_REPORT, Run, UsageReport, WorkerCall,
};
use tenantd_core::tenant::TenantType;
use tenantd_core::{Error, FieldError, Result};

use crate::context::Ctx;
use crate::state::AppState;

/// How often a waiting lease looks again when no admission on this node woke it (runs admitted
/// on other nodes, or requeued by their expiry jobs).
const POLL: Duration = Duration::from_millis(200);

/// How long a lease keeps trying when work exists but was being leased by others.
const CONTENDED_FOR: Duration = Duration::from_millis(250);

/// Worker calls are the platform tenant's: a tenant's own owner holds `runs:work` by role but
/// may not lease other tenants' runs.
fn platform_only(ctx: &Ctx) -> Result<()> {
    if ctx.tenant.kind == TenantType::Platform {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "workers act in the platform tenant: use a platform API key with the worker role"
                .into(),
        ))
    }
}

/// Checks the models a worker serves.
pub fn models(m: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    match m {
        Some(list)
            if list.is_empty()
                || list.len() > 100
                || list
                    .iter()
                    .any(|m| m.is_empty() || m.len() > 200 || m.contains(',')) =>
        {
            Err(
                FieldError::new("models", "1 to 100 model names, none empty or with a comma")
                    .into(),
            )
        }
        m => Ok(m),
    }
}

/// Leases the next run, chosen fairly across tenants (least recently served first), waiting
/// up to `wait_ms` for one; `None` when there was none.
pub async fn lease(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<RunsWork>,
    models: Option<Vec<String>>,
    wait_ms: Option<u64>,
) -> Result<Option<Lease>> {
    platform_only(ctx)?;
    if wait_ms.is_some_and(|w| w > 30_000) {
        return Err(FieldError::new("wait_ms", "0 to 30000 milliseconds").into());
    }
    let wait = Duration::from_millis(wait_ms.unwrap_or(0).min(state.config.run_lease_max_wait_ms));
    let mut ask = LeaseAsk {
        scheduling: state.config.run_scheduling,
        wait_for_row: false,
        models,
        ttl: chrono::Duration::milliseconds(state.config.run_lease_ttl_ms),
        actor: ctx.caller.actor.audit_name(),
        request_id: Some(ctx.caller.meta.request_id.clone()),
    };
    let deadline = Instant::now() + wait;
    // Work that exists but was being leased by others at that instant is tried again at once
    // (for up to CONTENDED_FOR even without `wait_ms`): one tenant's leases take turns on its
    // scheduler row. The second try waits for the row, a few leases of this node at a time
    // (ROW_WAITERS); the rest wait for a permit, holding no database connection.
    let contended_until = Instant::now() + CONTENDED_FOR;
    let cells: Vec<_> = state.cells.values().collect();
    let mut contended = false;
    loop {
        // Armed before looking, so an admission between the look and the wait is not missed.
        let woken = state.run_stats.work.notified();
        let permit =
            if contended {
                let waits = &state.run_stats.row_waits.0;
                Some(waits.acquire().await.map_err(|_| {
                    Error::Internal("the lease waiters' semaphore is closed".into())
                })?)
            } else {
                None
            };
        ask.wait_for_row = permit.is_some();
        let start = state.run_stats.next_cell.fetch_add(1, Ordering::Relaxed);
        contended = false;
        for i in 0..cells.len() {
            let cell = cells[(start + i) % cells.len()];
            let began = Instant::now();
            match cell.unscoped_lease(&ask).await? {
                LeaseOutcome::Leased(lease) => {
                    state.run_stats.leased(began.elapsed());
                    return Ok(Some(*lease));
                }
                LeaseOutcome::Contended => contended = true,
                LeaseOutcome::Empty => {}
            }
        }
        drop(permit);
        let now = Instant::now();
        if contended && now < deadline.max(contended_until) {
            if ask.wait_for_row {
                // Waited, and the row had changed by then: a moment before the next look.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            continue;
        }
        if now >= deadline {
            return Ok(None);
        }
        let _ = tokio::time::timeout((deadline - now).min(POLL), woken).await;
    }
}

fn call(ctx: &Ctx, run: RunId, lease_id: String) -> Result<WorkerCall> {
    if lease_id.is_empty() || lease_id.len() > 100 {
        return Err(FieldError::new("lease_id", "the lease_id the lease returned").into());
    }
    Ok(WorkerCall {
        run,
        lease_id,
        actor: ctx.caller.actor.audit_name(),
        request_id: Some(ctx.caller.meta.request_id.clone()),
    })
}

/// Asks every cell in turn: the run's lease is in one of them. None has it: `LEASE_LOST`
/// (the lease is gone, or never was; either way the worker must stop).
macro_rules! in_some_cell {
    ($state:expr, |$cell:ident| $call:expr) => {{
        let mut found = Ok(None);
        for $cell in $state.cells.values() {
            found = $call.await;
            if !matches!(found, Ok(None)) {
                break;
            }
        }
        found.and_then(|v| v.ok_or(Error::LeaseLost))
    }};
}

/// Renews the lease; its new expiry.
pub async fn heartbeat(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<RunsWork>,
    run: RunId,
    lease_id: String,
) -> Result<DateTime<Utc>> {
    platform_only(ctx)?;
    let c = call(ctx, run, lease_id)?;
    let ttl = chrono::Duration::milliseconds(state.config.run_lease_ttl_ms);
    in_some_cell!(state, |cell| cell.unscoped_heartbeat(&c, ttl))
}

/// Counts a usage report (the same `seq` once).
pub async fn usage(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<RunsWork>,
    run: RunId,
    lease_id: String,
    seq: i64,
    tokens: i64,
) -> Result<UsageReport> {
    platform_only(ctx)?;
    let mut v = tenantd_core::error::Validator::default();
    if seq < 0 {
        v.push(FieldError::new("seq", "0 or more"));
    }
    if !(0..=MAX_REPORT).contains(&tokens) {
        v.push(FieldError::new("tokens", format!("0 to {MAX_REPORT}")));
    }
    v.finish()?;
    let c = call(ctx, run, lease_id)?;
    let out: Result<UsageReport> =
        in_some_cell!(state, |cell| cell.unscoped_report_usage(&c, seq, tokens));
    match &out {
        Ok(_) => state.run_stats.tokens(tokens),
        Err(Error::BudgetExhausted { .. }) => {
            state.run_stats.tokens(tokens);
            state
                .run_stats
                .ended(tenantd_core::runs::RunStatus::BudgetExceeded);
        }
        Err(_) => {}
    }
    out
}

/// Completes the run (`error` given: `failed`).
pub async fn complete(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<RunsWork>,
    run: RunId,
    lease_id: String,
    done: Completion,
) -> Result<Run> {
    platform_only(ctx)?;
    if done
        .tokens_total
        .is_some_and(|t| !(0..=MAX_REPORT).contains(&t))
    {
        return Err(FieldError::new("tokens_total", format!("0 to {MAX_REPORT}")).into());
    }
    let c = call(ctx, run, lease_id)?;
    let out: Result<Run> = in_some_cell!(state, |cell| cell.unscoped_complete(&c, done.clone()));
    if let Ok(r) = &out {
        state.run_stats.ended(r.status);
        // A slot freed: leases waiting on this node look again.
        state.run_stats.work.notify_waiters();
    }
    out
}
