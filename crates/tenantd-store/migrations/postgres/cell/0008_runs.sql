-- Agent runs (see docs/design/runs.md): one row per run; a tenant's queued runs are found by
-- the status index, its idempotency keys by their own. Read and written in the tenant's
-- scope only.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    status          TEXT NOT NULL,
    model           TEXT NOT NULL,
    input           TEXT NOT NULL,
    max_tokens      BIGINT,
    token_hold      BIGINT NOT NULL,
    tokens_used     BIGINT NOT NULL DEFAULT 0,
    attempt         BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX runs_by_status ON runs (tenant_id, status, created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE runs FORCE ROW LEVEL SECURITY;
CREATE POLICY runs_tenant ON runs FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

INSERT INTO _tenantd_grants (object, kind, privileges) VALUES
    ('runs', 'TABLE', 'SELECT, INSERT, UPDATE');
