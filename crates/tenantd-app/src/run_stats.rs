//! Agent-run figures of a serving node, as `/metrics` exports them: aggregated, never one
//! series per tenant (per-tenant figures are in `GET /v1/tenants/{id}/usage`). Also the
//! wake-up of long-polling leases. See `docs/design/runs.md`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tenantd_core::runs::RunStatus;
use tokio::sync::{Notify, Semaphore};

/// The upper bounds of the lease-latency histogram, in seconds.
pub const LEASE_BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/// Why an admission was refused, as `/metrics` labels it.
pub const REJECTIONS: [&str; 6] = [
    "feature",
    "model",
    "queued_runs",
    "tokens",
    "rate",
    "suspended",
];

/// This node's run figures.
#[derive(Default)]
pub struct RunStats {
    admitted: AtomicU64,
    rejected: [AtomicU64; REJECTIONS.len()],
    leases: AtomicU64,
    lease_buckets: [AtomicU64; LEASE_BUCKETS.len()],
    lease_micros: AtomicU64,
    ended: [AtomicU64; RunStatus::ALL.len()],
    expiries: AtomicU64,
    tokens: AtomicU64,
    discrepancies: AtomicU64,
    /// Wakes leases waiting for work (`wait_ms`) when a run is admitted or requeued here.
    pub(crate) work: Notify,
    /// Where the next lease starts its walk over the cells.
    pub(crate) next_cell: AtomicUsize,
    /// Leases allowed to wait for a scheduler row another lease holds, at once on this node
    /// ([`ROW_WAITERS`]); the others wait here, holding no database connection.
    pub(crate) row_waits: RowWaits,
}

/// How many leases of a node may wait for a busy tenant's scheduler row at once. Each holds a
/// pooled connection while it waits: with every worker waiting, completions (which free the
/// slots) found no connection, and one tenant's leases and completions crawled.
pub(crate) const ROW_WAITERS: usize = 4;

/// The permits of [`RunStats::row_waits`].
pub(crate) struct RowWaits(pub(crate) Semaphore);

impl Default for RowWaits {
    fn default() -> Self {
        Self(Semaphore::new(ROW_WAITERS))
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl RunStats {
    pub(crate) fn admitted(&self) {
        add(&self.admitted, 1);
        self.work.notify_waiters();
    }

    pub(crate) fn rejected(&self, reason: &str) {
        if let Some(i) = REJECTIONS.iter().position(|r| *r == reason) {
            add(&self.rejected[i], 1);
        }
    }

    pub(crate) fn leased(&self, took: Duration) {
        add(&self.leases, 1);
        add(&self.lease_micros, took.as_micros() as u64);
        let s = took.as_secs_f64();
        for (i, bound) in LEASE_BUCKETS.iter().enumerate() {
            if s <= *bound {
                add(&self.lease_buckets[i], 1);
            }
        }
    }

    pub(crate) fn ended(&self, status: RunStatus) {
        self.ended_n(status, 1);
    }

    pub(crate) fn ended_n(&self, status: RunStatus, n: u64) {
        if let Some(i) = RunStatus::ALL.iter().position(|s| *s == status) {
            add(&self.ended[i], n);
        }
    }

    pub(crate) fn expired(&self, status: RunStatus) {
        add(&self.expiries, 1);
        if status == RunStatus::Queued {
            self.work.notify_waiters();
        } else {
            self.ended(status);
        }
    }

    pub(crate) fn set_discrepancies(&self, n: u64) {
        self.discrepancies.store(n, Ordering::Relaxed);
    }

    pub(crate) fn tokens(&self, n: i64) {
        add(&self.tokens, n.max(0) as u64);
    }

    /// Admissions on this node.
    pub fn admitted_total(&self) -> u64 {
        get(&self.admitted)
    }

    /// Refused admissions by reason ([`REJECTIONS`]).
    pub fn rejected_total(&self) -> Vec<(&'static str, u64)> {
        REJECTIONS
            .iter()
            .zip(&self.rejected)
            .map(|(r, c)| (*r, get(c)))
            .collect()
    }

    /// Leases handed out, the cumulative histogram of their latency (by [`LEASE_BUCKETS`])
    /// and its sum in seconds.
    pub fn lease_latency(&self) -> (u64, Vec<u64>, f64) {
        (
            get(&self.leases),
            self.lease_buckets.iter().map(get).collect(),
            get(&self.lease_micros) as f64 / 1e6,
        )
    }

    /// Runs that ended here, by state (the open states stay 0).
    pub fn ended_total(&self) -> Vec<(&'static str, u64)> {
        RunStatus::ALL
            .iter()
            .zip(&self.ended)
            .filter(|(s, _)| !s.is_open())
            .map(|(s, c)| (s.as_str(), get(c)))
            .collect()
    }

    /// Leases that expired (requeued or ended), found by this node's expiry job.
    pub fn expiries_total(&self) -> u64 {
        get(&self.expiries)
    }

    /// Tokens reported by workers through this node.
    pub fn tokens_total(&self) -> u64 {
        get(&self.tokens)
    }

    /// Tenants whose `tokens_held` counter disagreed with their runs at the last
    /// reconciliation (must be 0).
    pub fn discrepancies(&self) -> u64 {
        get(&self.discrepancies)
    }
}
