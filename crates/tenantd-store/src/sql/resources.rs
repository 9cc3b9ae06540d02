//! Resources and their shares (cell). A tenant reads its own rows, `global` rows and
//! `selective` rows shared with it; it changes only its own.

/// A new resource at version 1.
pub const INSERT: &str = "
INSERT INTO resources (id, tenant_id, kind, name, spec, sharing_mode, version,
                       created_at, updated_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9)";

/// One resource the tenant owns: $1 id, $2 kind, $3 tenant.
pub const FIND_OWNED: &str = "
SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
       r.created_at, r.updated_at, r.created_by
  FROM resources r
 WHERE r.id = $1 AND r.kind = $2 AND r.tenant_id = $3";

/// One resource visible to tenant $1 (own, global or shared with it): $2 id, $3 kind.
pub const FIND_VISIBLE: &str = "
SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
       r.created_at, r.updated_at, r.created_by
  FROM resources r
 WHERE r.id = $2 AND r.kind = $3
   AND (r.tenant_id = $1
        OR r.sharing_mode = 'global'
        OR (r.sharing_mode = 'selective'
            AND EXISTS (SELECT 1 FROM resource_shares s
                         WHERE s.resource_id = r.id AND s.tenant_id = $1)))";

/// Whether resource $2 of kind $3 is visible to tenant $1 without being its own.
pub const COUNT_SHARED_WITH: &str = "
SELECT COUNT(*) AS n
  FROM resources r
 WHERE r.id = $2 AND r.kind = $3 AND r.tenant_id <> $1
   AND (r.sharing_mode = 'global'
        OR (r.sharing_mode = 'selective'
            AND EXISTS (SELECT 1 FROM resource_shares s
                         WHERE s.resource_id = r.id AND s.tenant_id = $1)))";

// The list statements, one per `shared` filter. $1 tenant, $2 kind, $3 name (NULL: any), $4
// after ('' for the first page), $5 limit. The three sources (own, global, shared with the
// tenant) are separate branches so each uses its own index instead of one OR that scans every
// tenant's rows; each branch is cut to the page in index order, so a page costs O(limit) rows
// however many the tenant has.

/// Own rows only.
pub const LIST_OWN: &str = "
SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
       r.created_at, r.updated_at, r.created_by
  FROM resources r
 WHERE r.tenant_id = $1 AND r.kind = $2 AND r.id > $4 AND ($3 IS NULL OR r.name = $3)
 ORDER BY r.id
 LIMIT $5";

/// Rows shared with the tenant only (global and selective).
pub const LIST_SHARED: &str = "
SELECT * FROM (
    SELECT * FROM (
        SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
               r.created_at, r.updated_at, r.created_by
          FROM resources r
         WHERE r.sharing_mode = 'global' AND r.kind = $2 AND r.id > $4
           AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3)
         ORDER BY r.id
         LIMIT $5) g
    UNION ALL
    SELECT * FROM (
        SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
               r.created_at, r.updated_at, r.created_by
          FROM resource_shares s
          JOIN resources r ON r.id = s.resource_id
         WHERE s.tenant_id = $1 AND r.sharing_mode = 'selective' AND r.kind = $2
           AND r.id > $4 AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3)
         ORDER BY r.id
         LIMIT $5) s
) u
ORDER BY u.id
LIMIT $5";

/// Own rows and rows shared with the tenant.
pub const LIST_OWN_AND_SHARED: &str = "
SELECT * FROM (
    SELECT * FROM (
        SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
               r.created_at, r.updated_at, r.created_by
          FROM resources r
         WHERE r.tenant_id = $1 AND r.kind = $2 AND r.id > $4 AND ($3 IS NULL OR r.name = $3)
         ORDER BY r.id
         LIMIT $5) o
    UNION ALL
    SELECT * FROM (
        SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
               r.created_at, r.updated_at, r.created_by
          FROM resources r
         WHERE r.sharing_mode = 'global' AND r.kind = $2 AND r.id > $4
           AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3)
         ORDER BY r.id
         LIMIT $5) g
    UNION ALL
    SELECT * FROM (
        SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version,
               r.created_at, r.updated_at, r.created_by
          FROM resource_shares s
          JOIN resources r ON r.id = s.resource_id
         WHERE s.tenant_id = $1 AND r.sharing_mode = 'selective' AND r.kind = $2
           AND r.id > $4 AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3)
         ORDER BY r.id
         LIMIT $5) s
) u
ORDER BY u.id
LIMIT $5";

/// Name, spec and sharing of an owned resource at version $7; the version moves by one.
pub const UPDATE: &str = "
UPDATE resources
   SET name = $1, spec = $2, sharing_mode = $3, version = version + 1, updated_at = $4
 WHERE id = $5 AND tenant_id = $6 AND version = $7";

/// Deletes an owned resource.
pub const DELETE: &str = "
DELETE FROM resources WHERE id = $1 AND kind = $2 AND tenant_id = $3";

/// The share rows of an owned resource.
pub const DELETE_SHARES_OF_OWNED: &str = "
DELETE FROM resource_shares
 WHERE resource_id IN (SELECT id FROM resources WHERE id = $1 AND kind = $2 AND tenant_id = $3)";

/// Every share row of a resource its owner $2 replaces.
pub const CLEAR_SHARES: &str = "
DELETE FROM resource_shares WHERE resource_id = $1 AND owner_tenant_id = $2";

/// Shares resource $1 of owner $2 with tenant $3.
pub const INSERT_SHARE: &str = "
INSERT INTO resource_shares (resource_id, owner_tenant_id, tenant_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING";

/// The tenants a resource is shared with.
pub const SHARES_OF: &str = "
SELECT tenant_id AS n FROM resource_shares WHERE resource_id = $1 ORDER BY tenant_id";
