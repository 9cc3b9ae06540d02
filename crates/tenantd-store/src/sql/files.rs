//! File records and upload reservations (cell). The bytes are in the object store; a row here
//! is `pending` from reservation until the blob is stored, then `stored`.

/// A reserved file.
pub const INSERT_PENDING: &str = "
INSERT INTO files (id, tenant_id, name, size, sha256, content_type, state, created_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)";

/// Notes a reservation until $3: past it, no request can still be storing the blob.
pub const INSERT_RESERVATION: &str = "
INSERT INTO upload_reservations (file_id, tenant_id, expires_at) VALUES ($1, $2, $3)";

/// Drops a reservation note (its upload completed or was aborted).
pub const DELETE_RESERVATION: &str = "
DELETE FROM upload_reservations WHERE file_id = $1 AND tenant_id = $2";

/// Reservations past their deadline $1, in every tenant of the cell (ids only).
pub const EXPIRED_RESERVATIONS: &str = "
SELECT tenant_id, file_id
  FROM upload_reservations
 WHERE expires_at < $1
 ORDER BY expires_at
 LIMIT $2";

/// Marks a pending file stored.
pub const MARK_STORED: &str = "
UPDATE files SET state = 'stored' WHERE id = $1 AND tenant_id = $2 AND state = 'pending'";

/// Removes a pending file; its size, to release.
pub const DELETE_PENDING: &str = "
DELETE FROM files WHERE id = $1 AND tenant_id = $2 AND state = 'pending'
RETURNING size AS n";

/// Removes a stored file; its size, to release exactly what this statement removed.
pub const DELETE_STORED: &str = "
DELETE FROM files WHERE id = $1 AND tenant_id = $2 AND state = 'stored'
RETURNING size AS n";

/// One stored file of the tenant.
pub const FIND_STORED: &str = "
SELECT id, tenant_id, name, size, sha256, content_type, created_at, created_by
  FROM files
 WHERE id = $1 AND tenant_id = $2 AND state = 'stored'";

/// A page of the tenant's stored files by id: $2 after (NULL for the first page), $3 limit.
pub const LIST_STORED: &str = "
SELECT id, tenant_id, name, size, sha256, content_type, created_at, created_by
  FROM files
 WHERE tenant_id = $1 AND state = 'stored' AND ($2 IS NULL OR id > $2)
 ORDER BY id
 LIMIT $3";
