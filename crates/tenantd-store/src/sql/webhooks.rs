//! Webhook endpoints, deliveries and the delivery queue (cell).

/// A new endpoint.
pub const INSERT_ENDPOINT: &str = "
INSERT INTO webhook_endpoints (id, tenant_id, url, events, description, secret, status,
                               created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7)";

/// One endpoint of the tenant.
pub const FIND_ENDPOINT: &str = "
SELECT id, tenant_id, url, events, description, status, failing_since, created_at,
       secret, old_secret, old_secret_until
  FROM webhook_endpoints
 WHERE id = $1 AND tenant_id = $2";

/// The tenant's endpoints, oldest first.
pub const LIST_ENDPOINTS: &str = "
SELECT id, tenant_id, url, events, description, status, failing_since, created_at,
       secret, old_secret, old_secret_until
  FROM webhook_endpoints
 WHERE tenant_id = $1
 ORDER BY id";

/// The tenant's active endpoints (where a new event's deliveries go).
pub const ACTIVE_ENDPOINTS: &str = "
SELECT id, tenant_id, url, events, description, status, failing_since, created_at,
       secret, old_secret, old_secret_until
  FROM webhook_endpoints
 WHERE tenant_id = $1 AND status = 'active'";

/// Recounts the tenant's active endpoints into its head row (locked first by
/// `audit::LOCK_HEAD`), in every endpoint change's transaction: an event of a tenant with
/// none then looks for none.
pub const RECOUNT_HOOKS: &str = "
UPDATE audit_heads
   SET hooks = (SELECT COUNT(*) FROM webhook_endpoints
                 WHERE tenant_id = $1 AND status = 'active')
 WHERE tenant_id = $1";

/// URL, subscription, description and status.
pub const UPDATE_ENDPOINT: &str = "
UPDATE webhook_endpoints
   SET url = $1, events = $2, description = $3, status = $4,
       failing_since = CASE WHEN $4 = 'active' THEN NULL ELSE failing_since END,
       updated_at = $5
 WHERE id = $6 AND tenant_id = $7";

/// A new secret; the old one signs until $3.
pub const ROTATE_SECRET: &str = "
UPDATE webhook_endpoints
   SET old_secret = secret, old_secret_until = $3, secret = $1, updated_at = $4
 WHERE id = $2 AND tenant_id = $5";

/// Deletes an endpoint (its deliveries go with it).
pub const DELETE_ENDPOINT: &str = "
DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2";

/// The queue rows of an endpoint's deliveries.
pub const DEQUEUE_ENDPOINT: &str = "
DELETE FROM delivery_queue WHERE endpoint_id = $1 AND tenant_id = $2";

/// A delivery of an event to an endpoint, due at once.
pub const INSERT_DELIVERY: &str = "
INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, type, body, status,
                                attempts, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)
ON CONFLICT DO NOTHING";

/// Its queue row.
pub const ENQUEUE: &str = "
INSERT INTO delivery_queue (delivery_id, tenant_id, endpoint_id, next_attempt_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING";

/// Deliveries due at $1 and not leased, across tenants (ids only), leaving out the endpoints
/// named in $2 (`,id,id,`: those this node already has at their limit, so that one busy
/// endpoint's backlog cannot fill the list and hide every other endpoint's work).
pub const DUE: &str = "
SELECT delivery_id, tenant_id, endpoint_id
  FROM delivery_queue
 WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
   AND $2 NOT LIKE ('%,' || endpoint_id || ',%')
 ORDER BY next_attempt_at
 LIMIT $3";

/// How many deliveries one [`CLAIM`] names.
pub const CLAIM_BATCH: usize = 16;

/// Leases the due deliveries among $3…$18 until $1 (unused places repeat an id); the ones
/// leased. A delivery another node took first is not among them.
pub const CLAIM: &str = "
UPDATE delivery_queue
   SET lease_until = $1
 WHERE delivery_id IN ($3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
   AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2)
RETURNING delivery_id";

/// A delivery of the tenant, with its body.
pub const FIND_DELIVERY: &str = "
SELECT id, endpoint_id, event_id, type, body, status, attempts, last_status, last_error,
       next_attempt_at, created_at
  FROM webhook_deliveries
 WHERE id = $1 AND tenant_id = $2";

/// An endpoint's deliveries, newest first.
pub const LIST_DELIVERIES: &str = "
SELECT id, endpoint_id, event_id, type, body, status, attempts, last_status, last_error,
       next_attempt_at, created_at
  FROM webhook_deliveries
 WHERE tenant_id = $1 AND endpoint_id = $2
 ORDER BY id DESC
 LIMIT $3";

/// An attempt's outcome.
pub const RECORD_ATTEMPT: &str = "
UPDATE webhook_deliveries
   SET status = $1, attempts = attempts + 1, last_status = $2, last_error = $3,
       next_attempt_at = $4
 WHERE id = $5 AND tenant_id = $6";

/// The next attempt, due at $2 (the lease ends).
pub const RESCHEDULE: &str = "
UPDATE delivery_queue SET next_attempt_at = $2, lease_until = NULL WHERE delivery_id = $1";

/// A finished delivery leaves the queue.
pub const DEQUEUE: &str = "
DELETE FROM delivery_queue WHERE delivery_id = $1";

/// An endpoint that answered after failing: no longer failing.
pub const ENDPOINT_OK: &str = "
UPDATE webhook_endpoints
   SET failing_since = NULL
 WHERE id = $1 AND tenant_id = $2 AND failing_since IS NOT NULL";

/// An endpoint that failed: failing since now unless it already was.
pub const ENDPOINT_FAILED: &str = "
UPDATE webhook_endpoints
   SET failing_since = COALESCE(failing_since, $1)
 WHERE id = $2 AND tenant_id = $3";

/// Disables an endpoint failing since before $1; a row changed when it did.
pub const DISABLE_IF_FAILING: &str = "
UPDATE webhook_endpoints
   SET status = 'disabled', updated_at = $2
 WHERE id = $3 AND tenant_id = $4 AND status = 'active' AND failing_since < $1";

/// A retry asked for by an operator: due now, attempts kept.
pub const RETRY_DELIVERY: &str = "
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND tenant_id = $3";

/// Deliveries waiting in the queue (due or scheduled), across tenants.
pub const BACKLOG: &str = "
SELECT COUNT(*) AS n FROM delivery_queue";
