-- A tenant being moved out of this cell: while `frozen` = 1 every write transaction bound
-- to it is refused (`Db::begin_scoped`), whichever node it comes from and whatever that node
-- has cached. The row is made when a move starts and goes with the tenant's rows.
CREATE TABLE tenant_fences (
    tenant_id TEXT PRIMARY KEY,
    move_id   TEXT NOT NULL,
    frozen    INTEGER NOT NULL DEFAULT 0
);
