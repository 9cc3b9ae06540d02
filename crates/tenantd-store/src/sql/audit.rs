//! Audit: the catalog's outbox (events of catalog changes, committed with them, moved into the
//! tenant's chain by the relay) and each cell's per-tenant hash chains.

/// An event waiting for the relay.
pub const INSERT_OUTBOX: &str = "
INSERT INTO audit_outbox (id, tenant_id, actor, action, resource, resource_id, outcome,
                          request_id, ip, at, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The oldest waiting events.
pub const PENDING_OUTBOX: &str = "
SELECT id, tenant_id, actor, action, resource, resource_id, outcome, request_id, ip, at, details
  FROM audit_outbox
 ORDER BY pos
 LIMIT $1";

/// Drops a relayed event.
pub const DELETE_OUTBOX: &str = "
DELETE FROM audit_outbox WHERE id = $1";

/// Starts a tenant's chain at the genesis hash $2, or locks its head row (PostgreSQL;
/// SQLite's writer is single anyway), so concurrent appends to one chain — and to the
/// tenant's event log, whose last `seq` is kept here too — queue and each sees the last; the
/// head.
pub const LOCK_HEAD: &str = "
INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2)
ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq
RETURNING seq, hash, event_seq, hooks";

/// The head of a tenant's chain.
pub const HEAD: &str = "
SELECT seq, hash FROM audit_heads WHERE tenant_id = $1";

/// Moves the head (the chain's, and the event log's to $3).
pub const SET_HEAD: &str = "
UPDATE audit_heads SET seq = $1, hash = $2, event_seq = $3 WHERE tenant_id = $4";

/// A chained event; nothing when its id is in a chain already (a retried append). $15–$17
/// are the event it records, when it records one with its own id (its log `seq`, type and
/// data; NULL otherwise): the `audit_events_to_log` trigger writes it into the tenant's log
/// in this statement (see the `event_log_lighter` migrations).
pub const INSERT_EVENT: &str = "
INSERT INTO audit_events (tenant_id, seq, id, actor, action, resource, resource_id, outcome,
                          request_id, ip, at, details, prev_hash, hash,
                          ev_seq, ev_type, ev_data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (id) DO NOTHING";

/// A filtered page of a tenant's events by `seq`; every filter NULL when unset:
/// $2 actor, $3 action, $4 resource, $5 from, $6 to, $7 after seq, $8 limit.
pub const LIST_EVENTS: &str = "
SELECT tenant_id, seq, id, actor, action, resource, resource_id, outcome, request_id, ip,
       at, details, prev_hash, hash
  FROM audit_events
 WHERE tenant_id = $1
   AND ($2 IS NULL OR actor = $2)
   AND ($3 IS NULL OR action = $3)
   AND ($4 IS NULL OR resource = $4)
   AND ($5 IS NULL OR at >= $5)
   AND ($6 IS NULL OR at < $6)
   AND ($7 IS NULL OR seq > $7)
 ORDER BY seq
 LIMIT $8";

/// A tenant's whole chain.
pub const CHAIN: &str = "
SELECT tenant_id, seq, id, actor, action, resource, resource_id, outcome, request_id, ip,
       at, details, prev_hash, hash
  FROM audit_events
 WHERE tenant_id = $1
 ORDER BY seq";
