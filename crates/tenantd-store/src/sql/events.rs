//! The event log (cell): each tenant's events in `seq` order, and the quota alerts that fired.

/// Takes the log's next `seq`: starts the log at 1 or moves its head up by one, in one
/// statement that also locks the head row until commit (appends to one log queue here, so a
/// `seq` never commits before the ones below it).
pub const NEXT_SEQ: &str = "
INSERT INTO event_heads (tenant_id, seq) VALUES ($1, 1)
ON CONFLICT (tenant_id) DO UPDATE SET seq = event_heads.seq + 1
RETURNING seq AS n";

/// Whether an event id is in a log already (appends are idempotent).
pub const SEEN: &str = "
SELECT seq AS n FROM events WHERE tenant_id = $1 AND id = $2";

/// An event.
pub const INSERT: &str = "
INSERT INTO events (tenant_id, seq, id, type, subject_id, occurred_at, data)
VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A page of a log after $2, $4 at most: every type ($3 NULL), or the types of the list $3
/// written `,a,b,` (validated types only, so `LIKE` sees no stray wildcard).
pub const PAGE: &str = "
SELECT seq, id, type, subject_id, occurred_at, data
  FROM events
 WHERE tenant_id = $1 AND seq > $2 AND ($3 IS NULL OR $3 LIKE '%,' || type || ',%')
 ORDER BY seq
 LIMIT $4";

/// Records that a quota's threshold fired in a period; no row changed when it had already.
pub const RECORD_ALERT: &str = "
INSERT INTO quota_alerts (tenant_id, quota, threshold, period) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING";

/// Deletes events older than $1, in every log of the cell.
pub const PRUNE: &str = "
DELETE FROM events WHERE occurred_at < $1";
