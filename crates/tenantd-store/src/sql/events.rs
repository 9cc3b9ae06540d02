//! The event log (cell): each tenant's events in `seq` order, and the quota alerts that fired.
//! A log's last `seq` is kept in its tenant's chain head (`audit_heads.event_seq`).

/// Moves a log's head to $1 (appends outside a chain append; the head row was locked by
/// `audit::LOCK_HEAD`).
pub const SET_LOG_HEAD: &str = "
UPDATE audit_heads SET event_seq = $1 WHERE tenant_id = $2";

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

/// Deletes events older than $1 in every log of the cell; $2 is the smallest id an event at
/// $1 can have (ids begin with their time), so the id index finds them.
pub const PRUNE: &str = "
DELETE FROM events WHERE id < $2 AND occurred_at < $1";
