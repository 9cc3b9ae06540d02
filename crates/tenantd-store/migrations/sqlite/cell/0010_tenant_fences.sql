-- A tenant being moved out of this cell: while `frozen` = 1 every write transaction bound
-- to it is refused (`Db::begin_scoped`), whichever node it comes from and whatever that node
-- has cached. The row is made when a move starts and goes with the tenant's rows.
CREATE TABLE tenant_fences (
    tenant_id TEXT PRIMARY KEY,
    move_id   TEXT NOT NULL,
    frozen    INTEGER NOT NULL DEFAULT 0
);

-- The copy reads a tenant's rows page by page in key order, and a move's catch-up reads the
-- rows changed since a time: each from one index range.
CREATE INDEX run_usage_by_tenant ON run_usage (tenant_id, run_id, seq);
CREATE INDEX resource_shares_by_owner ON resource_shares (owner_tenant_id, resource_id, tenant_id);
CREATE INDEX upload_reservations_by_tenant ON upload_reservations (tenant_id, file_id);
CREATE INDEX delivery_queue_by_tenant ON delivery_queue (tenant_id, delivery_id);
CREATE INDEX resources_by_change ON resources (tenant_id, updated_at);
CREATE INDEX runs_by_change ON runs (tenant_id, updated_at);
