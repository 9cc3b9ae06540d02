-- FIFO scheduling (run_scheduling = fifo, the fairness benchmark's baseline): run_ready gains
-- when the tenant's oldest queued run was created, as far as the row knows (a hint, like the
-- rest of the row: a lease recomputes it under the tenant's lock). Rows of tenants with work
-- before this migration get it at their next admission or lease.
ALTER TABLE run_ready ADD COLUMN head_at TEXT;
CREATE INDEX run_ready_fifo ON run_ready (head_at, tenant_id) WHERE runnable = 1 AND active = 1;

-- A tenant's oldest queued runs come in (created_at, id) order straight from the index: with
-- only created_at in it, the lease's LIMIT 2 read and sorted every queued run of the tenant
-- (3 ms at 4,000 queued, inside the tenant's turn), so a lease's cost grew with the backlog.
DROP INDEX runs_by_status;
CREATE INDEX runs_by_status ON runs (tenant_id, status, created_at, id);
