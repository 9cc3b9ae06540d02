//! The two jobs that keep agent-run leases honest on every serving node: expiry (a lease
//! nobody renewed frees its slot and requeues its run within `run_lease_ttl_ms` + 1 s) and the
//! reconciler (each tenant's `tokens_held` counter against its run rows, exported as
//! `tenantd_run_discrepancies`, which must stay 0). See `docs/design/runs.md`.

use std::time::Duration;

use tenantd_core::Result;
use tenantd_core::tenant::TenantScope;

use crate::jobs::Stop;
use crate::state::AppState;

/// Ends the leases past their time in every cell: each requeued, or ended `expired` at
/// `run_max_attempts`. Several nodes may run it at once: each lease is settled by one
/// transaction that re-checks it under its tenant's lock.
pub async fn expire_due(state: &AppState) -> Result<u64> {
    let mut settled = 0;
    for (name, cell) in &state.cells {
        loop {
            let due = cell
                .unscoped_due_leases(tenantd_core::time::now(), 100)
                .await?;
            let n = due.len();
            for d in &due {
                let scope = TenantScope::unscoped_trusted(d.tenant, name.clone());
                let settled_as = cell
                    .expire_lease(&scope, d, state.config.run_max_attempts)
                    .await?;
                if let Some(status) = settled_as {
                    settled += 1;
                    state.run_stats.expired(status);
                }
            }
            if n < 100 {
                break;
            }
        }
    }
    Ok(settled)
}

/// The expiry job: every quarter second, so a lost lease is recovered within its TTL + 1 s.
pub async fn expiry_job(state: AppState, mut stop: Stop) {
    loop {
        if let Err(e) = expire_due(&state).await {
            tracing::warn!(job = "run-expiry", error = %e, "expiring leases failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.stopped() => return,
        }
    }
}

/// Compares every tenant's `tokens_held` counter with what its open runs hold; returns the
/// tenants that disagree (logged, counted in `tenantd_run_discrepancies`, never silently
/// rewritten).
pub async fn reconcile(state: &AppState) -> Result<u64> {
    let mut off = 0;
    for (name, cell) in &state.cells {
        let mut after = None;
        loop {
            let page = cell.unscoped_run_tenants(after, 500).await?;
            for t in &page {
                let scope = TenantScope::unscoped_trusted(*t, name.clone());
                let (counted, derived) = cell.held_check(&scope).await?;
                if counted != derived {
                    off += 1;
                    tracing::error!(tenant = %t, counted, derived, "tokens_held disagrees with the tenant's open runs");
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(*last),
                _ => break,
            }
        }
    }
    state.run_stats.set_discrepancies(off);
    Ok(off)
}
