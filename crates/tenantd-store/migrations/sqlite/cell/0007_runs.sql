-- Agent runs (see docs/design/runs.md): one row per run; a tenant's queued runs are found by
-- the status index, its idempotency keys by their own.
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    status          TEXT NOT NULL,
    model           TEXT NOT NULL,
    input           TEXT NOT NULL,
    max_tokens      INTEGER,
    token_hold      INTEGER NOT NULL,
    tokens_used     INTEGER NOT NULL DEFAULT 0,
    attempt         INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX runs_by_status ON runs (tenant_id, status, created_at);
CREATE UNIQUE INDEX runs_by_key ON runs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
