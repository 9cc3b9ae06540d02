-- Leasing agent runs (see docs/design/runs.md).
-- runs gains its lease, its end and what the worker said; usage reports are counted once by
-- (run_id, seq); run_ready is the fair scheduler's list (ids and flags only, one row per tenant
-- that ever had runs); run_leases names the run and tenant of every lease a worker may still
-- call with, found by run id (worker calls) or by expiry time (the expiry job).
ALTER TABLE runs ADD COLUMN lease_id TEXT;
ALTER TABLE runs ADD COLUMN lease_until TEXT;
ALTER TABLE runs ADD COLUMN leased_at TEXT;
ALTER TABLE runs ADD COLUMN ended_at TEXT;
ALTER TABLE runs ADD COLUMN output TEXT;
ALTER TABLE runs ADD COLUMN error TEXT;
CREATE INDEX runs_by_created ON runs (tenant_id, created_at);
CREATE INDEX runs_by_id ON runs (tenant_id, id);

CREATE TABLE run_usage (
    tenant_id TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    tokens    INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_ready (
    tenant_id   TEXT PRIMARY KEY,
    served_at   TEXT NOT NULL,
    runnable    INTEGER NOT NULL,
    active      INTEGER NOT NULL,
    slots       INTEGER,
    token_limit INTEGER
);
CREATE INDEX run_ready_next ON run_ready (served_at, tenant_id) WHERE runnable = 1 AND active = 1;

CREATE TABLE run_leases (
    run_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lease_id    TEXT NOT NULL,
    lease_until TEXT NOT NULL
);
CREATE INDEX run_leases_due ON run_leases (lease_until);
