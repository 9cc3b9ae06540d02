//! Agent runs (cell): admission, the fair scheduler, leases, usage, completion, expiry and
//! stopping a tenant's runs. See `docs/design/runs.md`.
//!
//! Lock order, the one rule that keeps these transactions free of deadlocks on PostgreSQL: a
//! transaction that locks a tenant's `run_ready` row waiting (the lease, which finds it with
//! `SKIP LOCKED`; stopping and resuming a tenant's runs) takes it **before** the tenant's
//! audit head. Every other run transaction takes the head first and touches `run_ready` only
//! with `MARK_*`, which skip a row another transaction holds: that holder is a lease (or a
//! stop), and it recomputes the row itself after it gets the head, so nothing is lost.

/// The columns of a run.
macro_rules! run_columns {
    () => {
        "id, tenant_id, agent_id, status, model, input, max_tokens, token_hold, tokens_used,
       attempt, created_at, lease_id, lease_until, leased_at, ended_at, output, error"
    };
}

/// A run of the tenant.
pub const FIND: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE id = $1 AND tenant_id = $2"
);

/// The run an idempotency key names.
pub const BY_KEY: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE tenant_id = $1 AND idempotency_key = $2"
);

/// A page of the tenant's runs, newest first: optional status ($2), agent ($3), cursor ($4).
pub const LIST: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs
 WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR agent_id = $3)
   AND ($4 IS NULL OR id < $4)
 ORDER BY id DESC
 LIMIT $5"
);

/// Frees a key whose window has passed (its run keeps everything else).
pub const FORGET_KEY: &str = "
UPDATE runs SET idempotency_key = NULL WHERE tenant_id = $1 AND idempotency_key = $2";

/// The tenant's queued runs (a seek on the status index; at most `queued_runs` rows).
pub const QUEUED: &str = "
SELECT COUNT(*) AS n FROM runs WHERE tenant_id = $1 AND status = 'queued'";

/// The tenant's leased runs: the slots in use (at most `concurrent_runs` rows).
pub const LEASED: &str = "
SELECT COUNT(*) AS n FROM runs WHERE tenant_id = $1 AND status = 'leased'";

/// Queued runs admitted before $2: a queued run's place in its tenant's queue.
pub const AHEAD: &str = "
SELECT COUNT(*) AS n FROM runs
 WHERE tenant_id = $1 AND status = 'queued' AND created_at < $2";

/// Admissions since $2 (the `agent_spawns` window; at most the rate's allowance rows), and
/// the oldest of them.
pub const SPAWNS: &str = "
SELECT COUNT(*) AS n, MIN(created_at) AS first FROM runs WHERE tenant_id = $1 AND created_at > $2";

/// A new run, queued.
pub const INSERT: &str = "
INSERT INTO runs (id, tenant_id, agent_id, status, model, input, max_tokens, token_hold,
                  tokens_used, attempt, idempotency_key, created_at, updated_at)
VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, 0, 0, $8, $9, $9)";

/// Ends a queued run `cancelled`; what it held (none when it was not queued).
pub const CANCEL_OPEN: &str = "
UPDATE runs
   SET status = 'cancelled', updated_at = $3, ended_at = $3
 WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'leased')
RETURNING token_hold - tokens_used AS n";

/// Ends every open run of the tenant `cancelled` ($3: why); each one's id and what it held.
pub const CANCEL_ALL: &str = "
UPDATE runs
   SET status = 'cancelled', updated_at = $2, ended_at = $2, error = $3
 WHERE tenant_id = $1 AND status IN ('queued', 'leased')
RETURNING id, token_hold - tokens_used AS n";

/// The tenant's scheduler row, made on its first admission (served at '': before anyone).
pub const READY_ENSURE: &str = "
INSERT INTO run_ready (tenant_id, served_at, runnable, active, slots, token_limit)
VALUES ($1, '', 0, 1, $2, $3)
ON CONFLICT (tenant_id) DO NOTHING";

/// Whether the tenant's runs may be leased (a stopped tenant's may not).
pub const READY_ACTIVE: &str = "
SELECT active AS n FROM run_ready WHERE tenant_id = $1";

/// Marks the tenant runnable with its plan's slots ($2) and token limit ($3), and its oldest
/// queued run's time if the row had none ($4: this run's), unless the row already says so — skipping a row another transaction holds (see the lock order above).
pub const MARK_ADMITTED_PG: &str = "
UPDATE run_ready SET runnable = 1, slots = $2, token_limit = $3, head_at = COALESCE(head_at, $4)
 WHERE tenant_id IN (SELECT tenant_id FROM run_ready
                      WHERE tenant_id = $1
                        AND (runnable = 0 OR slots IS DISTINCT FROM $2
                             OR token_limit IS DISTINCT FROM $3 OR head_at IS NULL)
                        FOR UPDATE SKIP LOCKED)";
/// [`MARK_ADMITTED_PG`] on SQLite (one writer: nothing to skip).
pub const MARK_ADMITTED_SQLITE: &str = "
UPDATE run_ready SET runnable = 1, slots = $2, token_limit = $3, head_at = COALESCE(head_at, $4)
 WHERE tenant_id = $1
   AND (runnable = 0 OR slots IS NOT $2 OR token_limit IS NOT $3 OR head_at IS NULL)";

/// Marks the tenant runnable after a slot was freed, when it has queued runs.
pub const MARK_FREED_PG: &str = "
UPDATE run_ready
   SET runnable = 1,
       head_at = COALESCE(head_at, (SELECT MIN(created_at) FROM runs
                                     WHERE runs.tenant_id = $1 AND status = 'queued'))
 WHERE tenant_id IN (SELECT tenant_id FROM run_ready
                      WHERE tenant_id = $1 AND runnable = 0
                        AND EXISTS (SELECT 1 FROM runs
                                     WHERE runs.tenant_id = $1 AND status = 'queued')
                        FOR UPDATE SKIP LOCKED)";
/// [`MARK_FREED_PG`] on SQLite.
pub const MARK_FREED_SQLITE: &str = "
UPDATE run_ready
   SET runnable = 1,
       head_at = COALESCE(head_at, (SELECT MIN(created_at) FROM runs
                                     WHERE runs.tenant_id = $1 AND status = 'queued'))
 WHERE tenant_id = $1 AND runnable = 0
   AND EXISTS (SELECT 1 FROM runs WHERE runs.tenant_id = $1 AND status = 'queued')";

/// The least recently served tenant with work and a free slot (as far as its row knows),
/// leaving out those in $1 (`,id,id,`): one seek on the partial index, whatever the backlog.
pub const NEXT_TENANT_PG: &str = "
SELECT tenant_id, slots, token_limit FROM run_ready
 WHERE runnable = 1 AND active = 1 AND $1 NOT LIKE '%,' || tenant_id || ',%'
 ORDER BY served_at, tenant_id
 LIMIT 1
   FOR UPDATE SKIP LOCKED";
/// When every tenant with work is locked by other leases: the first of them, read without a
/// lock; the lease then waits for that one row alone ([`LOCK_READY_ROW`]). (A `FOR UPDATE`
/// over the ordered list would keep the locks of rows it passed after waiting, and two such
/// waiters deadlock.)
pub const FIRST_RUNNABLE: &str = "
SELECT tenant_id AS n FROM run_ready
 WHERE runnable = 1 AND active = 1 AND $1 NOT LIKE '%,' || tenant_id || ',%'
 ORDER BY served_at, tenant_id
 LIMIT 1";

/// Waits for one tenant's scheduler row (PostgreSQL), as a lease reads it, if it is still
/// runnable once the wait is over.
pub const LOCK_READY_ROW: &str = "
SELECT tenant_id, slots, token_limit FROM run_ready
 WHERE tenant_id = $1 AND runnable = 1 AND active = 1
   FOR UPDATE";

/// FIFO scheduling (`run_scheduling = fifo`): the tenant whose oldest queued run is the
/// oldest (as far as the rows know), leaving out those in $1, read without a lock; the lease
/// then waits for that row ([`LOCK_READY_ROW`]). One seek on `run_ready_fifo`.
pub const FIFO_FIRST: &str = "
SELECT tenant_id AS n FROM run_ready
 WHERE runnable = 1 AND active = 1 AND $1 NOT LIKE '%,' || tenant_id || ',%'
 ORDER BY head_at, tenant_id
 LIMIT 1";

/// [`LOCK_READY_ROW`] without waiting: nothing when another lease holds the row.
pub const LOCK_READY_ROW_SKIP: &str = "
SELECT tenant_id, slots, token_limit FROM run_ready
 WHERE tenant_id = $1 AND runnable = 1 AND active = 1
   FOR UPDATE SKIP LOCKED";

/// [`LOCK_READY_ROW`] on SQLite (one writer: nothing to wait for).
pub const READY_RUNNABLE: &str = "
SELECT tenant_id, slots, token_limit FROM run_ready
 WHERE tenant_id = $1 AND runnable = 1 AND active = 1";

/// [`NEXT_TENANT_PG`] on SQLite (the write transaction already serialises leases).
pub const NEXT_TENANT_SQLITE: &str = "
SELECT tenant_id, slots, token_limit FROM run_ready
 WHERE runnable = 1 AND active = 1 AND $1 NOT LIKE '%,' || tenant_id || ',%'
 ORDER BY served_at, tenant_id
 LIMIT 1";

/// Whether any tenant not in $1 has work and a free slot (as far as its row knows), locked or
/// not: a lease that found every such row locked tries again.
pub const ANY_RUNNABLE: &str = "
SELECT CAST(1 AS BIGINT) AS n FROM run_ready
 WHERE runnable = 1 AND active = 1 AND $1 NOT LIKE '%,' || tenant_id || ',%'
 LIMIT 1";

/// The tenant's oldest queued runs (two: the one to lease, and the one after it).
pub const OLDEST_QUEUED: &str = "
SELECT id, created_at FROM runs WHERE tenant_id = $1 AND status = 'queued'
 ORDER BY created_at, id LIMIT 2";

/// The tenant's oldest queued run on one of the models in $2 (`,m,m,`).
pub const OLDEST_QUEUED_FOR: &str = "
SELECT id AS n FROM runs
 WHERE tenant_id = $1 AND status = 'queued' AND $2 LIKE '%,' || model || ',%'
 ORDER BY created_at, id LIMIT 1";

/// After a lease: when the tenant was served, whether it may be leased again, and its oldest
/// queued run's time ($4, none when nothing waits).
pub const SERVED: &str = "
UPDATE run_ready SET served_at = $2, runnable = $3, head_at = $4 WHERE tenant_id = $1";

/// Sets whether the tenant may be leased and its oldest queued run's time ($3), leaving when
/// it was served.
pub const SERVED_KEEP: &str = "
UPDATE run_ready SET runnable = $2, head_at = $3 WHERE tenant_id = $1";

/// Stops (active 0) or resumes (1) the tenant's runs being leased; waits for the row.
pub const SET_ACTIVE: &str = "
INSERT INTO run_ready (tenant_id, served_at, runnable, active, slots, token_limit)
VALUES ($1, '', 0, $2, NULL, NULL)
ON CONFLICT (tenant_id) DO UPDATE SET active = $2, runnable = 0, head_at = NULL";

/// The tenant's scheduler row, as a lease reads it.
pub const READY_ROW: &str = "
SELECT tenant_id, slots, token_limit FROM run_ready WHERE tenant_id = $1";

/// Leases a queued run ($3 lease id, $4 until, $5 now).
pub const LEASE: &str = "
UPDATE runs
   SET status = 'leased', lease_id = $3, lease_until = $4, leased_at = $5,
       attempt = attempt + 1, updated_at = $5
 WHERE id = $1 AND tenant_id = $2 AND status = 'queued'";

/// The lease's entry for worker calls and the expiry job.
pub const LEASE_ENTRY: &str = "
INSERT INTO run_leases (run_id, tenant_id, lease_id, lease_until) VALUES ($1, $2, $3, $4)
ON CONFLICT (run_id) DO UPDATE SET tenant_id = $2, lease_id = $3, lease_until = $4";

/// The tenant and lease of a run a worker calls about.
pub const FIND_LEASE: &str = "
SELECT tenant_id, lease_id, lease_until FROM run_leases WHERE run_id = $1";

/// Until when a lease's entry holds.
pub const LEASE_UNTIL: &str = "
SELECT lease_until AS n FROM run_leases WHERE run_id = $1";

/// Renews a lease ($3 until, $4 lease id).
pub const RENEW: &str = "
UPDATE runs SET lease_until = $3
 WHERE id = $1 AND tenant_id = $2 AND status = 'leased' AND lease_id = $4";

/// Renews the lease's entry.
pub const RENEW_ENTRY: &str = "
UPDATE run_leases SET lease_until = $2 WHERE run_id = $1 AND lease_id = $3";

/// Records a usage report once ($3 seq); 0 rows: that `seq` was counted already.
pub const RECORD_USAGE: &str = "
INSERT INTO run_usage (tenant_id, run_id, seq, tokens) VALUES ($1, $2, $3, $4)
ON CONFLICT (run_id, seq) DO NOTHING";

/// Moves a leased run's tokens used ($3) and hold ($4).
pub const SET_TOKENS: &str = "
UPDATE runs SET tokens_used = $3, token_hold = $4, updated_at = $5
 WHERE id = $1 AND tenant_id = $2 AND status = 'leased'";

/// Ends a leased run ($3 status, $4 tokens used, $5 output, $6 error, $7 now).
pub const END: &str = "
UPDATE runs
   SET status = $3, tokens_used = $4, output = $5, error = $6, ended_at = $7, updated_at = $7
 WHERE id = $1 AND tenant_id = $2 AND status = 'leased'";

/// Queues a run whose lease expired again ($3: the lease that expired).
pub const REQUEUE: &str = "
UPDATE runs SET status = 'queued', lease_id = NULL, lease_until = NULL, updated_at = $4
 WHERE id = $1 AND tenant_id = $2 AND status = 'leased' AND lease_id = $3";

/// Forgets a lease's entry.
pub const DROP_ENTRY: &str = "
DELETE FROM run_leases WHERE run_id = $1 AND lease_id = $2";

/// Leases past their time, across tenants (a seek on `lease_until`).
pub const DUE_LEASES: &str = "
SELECT run_id, tenant_id, lease_id FROM run_leases WHERE lease_until < $1
 ORDER BY lease_until LIMIT $2";

/// Tenants that have a scheduler row, after $1 (the reconciler's walk).
pub const READY_TENANTS: &str = "
SELECT tenant_id AS n FROM run_ready WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2";

/// The tenant's `tokens_held` counter, and what its open runs hold by their rows, in one
/// statement (one snapshot).
pub const HELD_CHECK: &str = "
SELECT (SELECT used FROM quota_counters WHERE tenant_id = $1 AND quota = 'tokens_held') AS counted,
       CAST(COALESCE(SUM(CASE WHEN token_hold > tokens_used THEN token_hold - tokens_used
                               ELSE 0 END), 0) AS BIGINT) AS n
  FROM runs WHERE tenant_id = $1 AND status IN ('queued', 'leased')";

/// Created and leased times of the tenant's latest leased runs.
pub const WAITS: &str = "
SELECT created_at AS n, leased_at AS first FROM runs
 WHERE tenant_id = $1 AND leased_at IS NOT NULL
 ORDER BY id DESC LIMIT 100";

/// Leases lost by the runs the tenant created since $2: every lease of a queued (requeued)
/// or expired run, all but the last of the others.
pub const EXPIRIES: &str = "
SELECT CAST(COALESCE(SUM(CASE WHEN status IN ('queued', 'expired') THEN attempt
                              WHEN attempt > 0 THEN attempt - 1 ELSE 0 END), 0) AS BIGINT) AS n
  FROM runs WHERE tenant_id = $1 AND created_at >= $2";
