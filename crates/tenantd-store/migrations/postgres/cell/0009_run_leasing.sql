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
    seq       BIGINT NOT NULL,
    tokens    BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_ready (
    tenant_id   TEXT PRIMARY KEY,
    served_at   TEXT NOT NULL,
    runnable    BIGINT NOT NULL,
    active      BIGINT NOT NULL,
    slots       BIGINT,
    token_limit BIGINT
);
CREATE INDEX run_ready_next ON run_ready (served_at, tenant_id) WHERE runnable = 1 AND active = 1;

CREATE TABLE run_leases (
    run_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lease_id    TEXT NOT NULL,
    lease_until TEXT NOT NULL
);
CREATE INDEX run_leases_due ON run_leases (lease_until);

-- run_usage is the tenant's (row-level security); run_ready and run_leases hold ids, flags
-- and times only, read across tenants by the scheduler and the expiry job (like
-- delivery_queue): every run they lead to is read and changed in its tenant's scope.
ALTER TABLE run_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE run_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY run_usage_tenant ON run_usage FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

INSERT INTO _tenantd_grants (object, kind, privileges) VALUES
    ('run_usage',  'TABLE', 'SELECT, INSERT'),
    ('run_ready',  'TABLE', 'SELECT, INSERT, UPDATE'),
    ('run_leases', 'TABLE', 'SELECT, INSERT, UPDATE, DELETE');
