//! Tenants and their placement (catalog).

/// One tenant by id.
pub const FIND_BY_ID: &str = "
SELECT id, slug, name, type, plan, status, status_reason, region, cell,
       settings, branding, created_at, updated_at, deleted_at, purge_after
  FROM tenants
 WHERE id = $1";

/// One tenant by slug.
pub const FIND_BY_SLUG: &str = "
SELECT id, slug, name, type, plan, status, status_reason, region, cell,
       settings, branding, created_at, updated_at, deleted_at, purge_after
  FROM tenants
 WHERE slug = $1";

/// A page of tenants by id: $1 after (NULL for the first page), $2 limit.
pub const LIST: &str = "
SELECT id, slug, name, type, plan, status, status_reason, region, cell,
       settings, branding, created_at, updated_at, deleted_at, purge_after
  FROM tenants
 WHERE ($1 IS NULL OR id > $1)
 ORDER BY id
 LIMIT $2";

/// A new tenant, active, with empty branding.
pub const INSERT: &str = "
INSERT INTO tenants (id, slug, name, type, plan, status, region, cell,
                     settings, branding, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, '{}', $9, $10)";

/// Claims a dedicated cell for one tenant (its primary key refuses a second).
pub const CLAIM_DEDICATED_CELL: &str = "
INSERT INTO dedicated_cells (cell, tenant_id) VALUES ($1, $2)";

/// Claims dedicated cell $1 for tenant $2 unless it is claimed already (by anyone: who
/// holds it is read next).
pub const CLAIM_CELL_IF_FREE: &str = "
INSERT INTO dedicated_cells (cell, tenant_id) VALUES ($1, $2) ON CONFLICT (cell) DO NOTHING";

/// Who holds dedicated cell $1.
pub const CELL_HOLDER: &str = "
SELECT tenant_id AS n FROM dedicated_cells WHERE cell = $1";

/// Gives up tenant $2's claim on cell $1.
pub const RELEASE_CELL: &str = "
DELETE FROM dedicated_cells WHERE cell = $1 AND tenant_id = $2";

/// Tenants in cell $1 other than $2: a cell placed into before it was declared dedicated.
pub const OTHERS_IN_CELL: &str = "
SELECT COUNT(*) AS n FROM tenants WHERE cell = $1 AND id <> $2";

/// Name, settings and branding.
pub const UPDATE: &str = "
UPDATE tenants
   SET name = $1, settings = $2, branding = $3, updated_at = $4
 WHERE id = $5";

/// Status, reason and deletion times: $4 whether it is deleted (then `deleted_at` = $5).
pub const SET_STATUS: &str = "
UPDATE tenants
   SET status = $1, status_reason = $2, updated_at = $3,
       deleted_at = CASE WHEN $4 THEN $5 ELSE NULL END,
       purge_after = $6
 WHERE id = $7";

/// The plan.
pub const SET_PLAN: &str = "
UPDATE tenants SET plan = $1, updated_at = $2 WHERE id = $3";

/// Serialises changes to one tenant's membership: a row lock on PostgreSQL (SQLite's writer
/// is single anyway), so two concurrent demotions cannot leave it without an owner.
pub const LOCK: &str = "
UPDATE tenants SET updated_at = updated_at WHERE id = $1";

/// Claims a deleted tenant's purge by moving its `purge_after` on: `$1` until, `$2` the
/// tenant, `$3` the `purge_after` the claimer saw.
pub const CLAIM_PURGE: &str = "\
UPDATE tenants SET purge_after = $1 WHERE id = $2 AND status = 'deleted' AND purge_after = $3";

/// A new move.
pub const INSERT_MOVE: &str = "\
INSERT INTO tenant_moves (id, tenant_id, source_cell, target_cell, phase, prior_status, detail, started_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

/// A tenant's latest move.
pub const LATEST_MOVE: &str = "\
SELECT id, tenant_id, source_cell, target_cell, phase, prior_status, detail, started_at, updated_at
  FROM tenant_moves WHERE tenant_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1";

/// A move's phase and detail: `$1` phase, `$2` detail, `$3` now, `$4` the move.
pub const UPDATE_MOVE: &str = "\
UPDATE tenant_moves SET phase = $1, detail = $2, updated_at = $3 WHERE id = $4";

/// Takes or renews a move's lease: `$1` runner, `$2` until, `$3` the move, `$4` now. Granted
/// while the move is open and no other runner holds a lease past now.
pub const LEASE_MOVE: &str = "\
UPDATE tenant_moves SET runner = $1, lease_until = $2
 WHERE id = $3 AND phase NOT IN ('done', 'aborted')
   AND (runner IS NULL OR runner = $1 OR lease_until IS NULL OR lease_until < $4)";

/// Gives a lease up: `$1` the move, `$2` its runner.
pub const RELEASE_MOVE: &str = "\
UPDATE tenant_moves SET runner = NULL, lease_until = NULL WHERE id = $1 AND runner = $2";

/// The open moves, with their leases.
pub const OPEN_MOVES: &str = "\
SELECT id, tenant_id, source_cell, target_cell, phase, prior_status, detail, started_at, updated_at,
       runner, lease_until
  FROM tenant_moves WHERE phase NOT IN ('done', 'aborted') ORDER BY started_at, id";

/// A tenant's status alone: `$1` status, `$2` now, `$3` the tenant.
pub const SET_STATUS_ONLY: &str = "UPDATE tenants SET status = $1, updated_at = $2 WHERE id = $3";

/// The switch: `$1` cell, `$2` region (NULL keeps it), `$3` status, `$4` now, `$5` tenant.
pub const SWITCH_CELL: &str = "\
UPDATE tenants SET cell = $1, region = COALESCE($2, region), status = $3, updated_at = $4 WHERE id = $5";
