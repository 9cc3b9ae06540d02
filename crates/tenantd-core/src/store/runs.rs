//! The store traits of agent runs: the tenant's side and the workers' (see
//! `docs/design/runs.md`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditDraft;
use crate::error::Result;
use crate::ids::TenantId;
use crate::tenant::TenantScope;

/// Agent runs as their tenant sees them (see `docs/design/runs.md`).
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Admits a run in one transaction, under the tenant's head-row lock: the
    /// `Idempotency-Key`'s run when it names one made within 24 h (nothing taken, `false`);
    /// else — refused `TenantSuspended` once the tenant's runs were stopped — a place in the
    /// queue (`QuotaExceeded queued_runs`), the token hold within the month's budget, used +
    /// held + hold ≤ limit (`QuotaExceeded tokens`), the `agent_spawns` window (admissions of
    /// the last 60 s, `RateLimited`), the run row, the scheduler's row and `audit` (a
    /// `runs.queue` event, hence `run.queued`), all committed together (`true`). A refusal
    /// takes nothing.
    async fn admit_run(
        &self,
        scope: &TenantScope,
        new: crate::runs::NewRun,
        limits: crate::runs::RunLimits,
        audit: AuditDraft,
    ) -> Result<(crate::runs::Run, bool)>;
    /// A run of the tenant (with its `queue_position` while queued); another tenant's is
    /// `NotFound`.
    async fn get_run(&self, scope: &TenantScope, id: crate::ids::RunId)
    -> Result<crate::runs::Run>;
    /// A page of the tenant's runs, newest first.
    async fn list_runs(
        &self,
        scope: &TenantScope,
        filter: &crate::runs::RunFilter,
    ) -> Result<Vec<crate::runs::Run>>;
    /// Cancels an open run: it ends `cancelled` at once, what is left of its hold returns to
    /// the month's budget, a leased run's slot frees (its worker gets `RunCancelled` at its
    /// next call), and `audit` (`runs.cancel`, hence `run.cancelled`) is appended, in one
    /// transaction. A run that has already ended is returned as it is, and nothing is
    /// appended.
    async fn cancel_run(
        &self,
        scope: &TenantScope,
        id: crate::ids::RunId,
        audit: AuditDraft,
    ) -> Result<crate::runs::Run>;
    /// Stops the tenant's runs (suspension, deletion): in one transaction every open run ends
    /// `cancelled` (holds released, one `run.cancelled` each, by `actor`), and no run of the
    /// tenant is leased or admitted again until [`RunStore::resume_runs`]. Returns how many
    /// were cancelled.
    async fn stop_runs(
        &self,
        scope: &TenantScope,
        reason: &str,
        actor: &str,
        request_id: Option<String>,
    ) -> Result<u64>;
    /// Lets the tenant's runs be admitted and leased again (reactivation).
    async fn resume_runs(&self, scope: &TenantScope) -> Result<()>;
    /// The tenant's runs at a glance.
    async fn run_totals(&self, scope: &TenantScope) -> Result<crate::runs::RunTotals>;
    /// Counts a refused admission of the tenant under `reason` for this month (a figure of
    /// its usage, not a quota: its own one-statement write, after the refusal).
    async fn count_rejection(&self, scope: &TenantScope, reason: &str) -> Result<()>;
}

/// Agent runs as workers and the scheduler's jobs see them: across tenants by run id or by
/// time (`unscoped_*`, each run then read and changed in its own tenant's scope).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Leases the oldest queued run of the least recently served tenant that has one and a
    /// free `concurrent_runs` slot and whose runs are not stopped (or says there is none, or
    /// that the ones there are were all being leased by other transactions at that instant).
    /// The run's `runs.lease` event is appended in the same transaction.
    async fn unscoped_lease(
        &self,
        ask: &crate::runs::LeaseAsk,
    ) -> Result<crate::runs::LeaseOutcome>;
    /// Renews a lease until now + `ttl`. `None`: the run has no lease in this cell.
    /// `LeaseLost` / `RunCancelled` when the lease is not the run's current one.
    async fn unscoped_heartbeat(
        &self,
        call: &crate::runs::WorkerCall,
        ttl: chrono::Duration,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Counts a usage report (`seq` once) into the run and the tenant's month, growing the
    /// run's hold while the budget allows; past it the run ends `budget_exceeded` (the tokens
    /// still counted) and the answer is `BudgetExhausted`. `None`: not in this cell.
    async fn unscoped_report_usage(
        &self,
        call: &crate::runs::WorkerCall,
        seq: i64,
        tokens: i64,
    ) -> Result<Option<crate::runs::UsageReport>>;
    /// Ends a leased run `succeeded` or `failed`: used = the final total, the rest of the
    /// hold returns, the slot frees. The same completion again returns the run as it ended.
    /// `None`: not in this cell.
    async fn unscoped_complete(
        &self,
        call: &crate::runs::WorkerCall,
        done: crate::runs::Completion,
    ) -> Result<Option<crate::runs::Run>>;
    /// Up to `limit` leases past their time (and entries of ended runs to forget).
    async fn unscoped_due_leases(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::runs::DueLease>>;
    /// Ends a due lease in its tenant's scope: the run is queued again (attempt + 1 at its
    /// next lease) or, at `max_attempts`, ends `expired` with its hold released. A lease
    /// renewed meanwhile, or a run that already ended, is left alone. The new state, if any.
    async fn expire_lease(
        &self,
        scope: &TenantScope,
        due: &crate::runs::DueLease,
        max_attempts: i64,
    ) -> Result<Option<crate::runs::RunStatus>>;
    /// Tenants with a scheduler row, after `after`, for the reconciler.
    async fn unscoped_run_tenants(
        &self,
        after: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<TenantId>>;
    /// The tenant's `tokens_held` counter and what its open runs' rows say they hold: equal
    /// unless something drifted.
    async fn held_check(&self, scope: &TenantScope) -> Result<(i64, i64)>;
}
