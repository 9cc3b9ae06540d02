-- A tenant being moved out of this cell: while `frozen` = 1 every write transaction bound
-- to it is refused (`Db::begin_scoped` reads the row FOR SHARE, so the freeze's UPDATE
-- waits for the writes in flight and every later one sees it), whichever node it comes from
-- and whatever that node has cached. The row is made when a move starts and goes with the
-- tenant's rows. An ids-and-flags table, read by key only: no row-level security.
CREATE TABLE tenant_fences (
    tenant_id TEXT PRIMARY KEY,
    move_id   TEXT NOT NULL,
    frozen    BIGINT NOT NULL DEFAULT 0
);
INSERT INTO _tenantd_grants (object, kind, privileges)
VALUES ('tenant_fences', 'TABLE', 'SELECT, INSERT, UPDATE, DELETE');
