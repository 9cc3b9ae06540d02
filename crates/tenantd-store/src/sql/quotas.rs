//! Quota counters, one row per tenant and quota (catalog: `users`; cells: resource kinds and
//! `storage_bytes`). A counter only moves by one conditional update, so concurrent takers
//! never overshoot a limit.

/// Makes sure the counter row exists.
pub const ENSURE: &str = "
INSERT INTO quota_counters (tenant_id, quota, used) VALUES ($1, $2, 0)
ON CONFLICT DO NOTHING";

/// A new tenant's `users` counter: its owner (or owner invitation) holds the first slot.
pub const START_USERS: &str = "
INSERT INTO quota_counters (tenant_id, quota, used) VALUES ($1, 'users', 1)";

/// Takes $1 units if they fit under $4 (NULL: no limit): the new usage when they did, no row
/// when they did not.
pub const TAKE: &str = "
UPDATE quota_counters
   SET used = used + $1
 WHERE tenant_id = $2 AND quota = $3 AND ($4 IS NULL OR used + $1 <= $4)
RETURNING used AS n";

/// Gives back $1 units, never below zero.
pub const RELEASE: &str = "
UPDATE quota_counters
   SET used = CASE WHEN used >= $1 THEN used - $1 ELSE 0 END
 WHERE tenant_id = $2 AND quota = $3";

/// One counter's value.
pub const USED: &str = "
SELECT used AS n FROM quota_counters WHERE tenant_id = $1 AND quota = $2";

/// Every counter of a tenant.
pub const ALL_OF_TENANT: &str = "
SELECT quota, used FROM quota_counters WHERE tenant_id = $1";

/// Adds one to a counter, making it if needed (figures that limit nothing).
pub const BUMP: &str = "
INSERT INTO quota_counters (tenant_id, quota, used) VALUES ($1, $2, 1)
ON CONFLICT (tenant_id, quota) DO UPDATE SET used = quota_counters.used + 1";
