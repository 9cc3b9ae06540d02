//! Agent runs (cell): admission, reads. See `docs/design/runs.md`.

/// A run of the tenant.
pub const FIND: &str = "
SELECT id, tenant_id, agent_id, status, model, input, max_tokens, token_hold, tokens_used,
       attempt, created_at
  FROM runs
 WHERE id = $1 AND tenant_id = $2";

/// The run an idempotency key names.
pub const BY_KEY: &str = "
SELECT id, tenant_id, agent_id, status, model, input, max_tokens, token_hold, tokens_used,
       attempt, created_at
  FROM runs
 WHERE tenant_id = $1 AND idempotency_key = $2";

/// Frees a key whose window has passed (its run keeps everything else).
pub const FORGET_KEY: &str = "
UPDATE runs SET idempotency_key = NULL WHERE tenant_id = $1 AND idempotency_key = $2";

/// The tenant's queued runs (a seek on the status index; at most `queued_runs` rows).
pub const QUEUED: &str = "
SELECT COUNT(*) AS n FROM runs WHERE tenant_id = $1 AND status = 'queued'";

/// A new run, queued.
pub const INSERT: &str = "
INSERT INTO runs (id, tenant_id, agent_id, status, model, input, max_tokens, token_hold,
                  tokens_used, attempt, idempotency_key, created_at, updated_at)
VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, 0, 0, $8, $9, $9)";

/// Ends a queued run `cancelled`; what it held (none when it was not queued).
pub const CANCEL_QUEUED: &str = "
UPDATE runs
   SET status = 'cancelled', updated_at = $3
 WHERE id = $1 AND tenant_id = $2 AND status = 'queued'
RETURNING token_hold - tokens_used AS n";
