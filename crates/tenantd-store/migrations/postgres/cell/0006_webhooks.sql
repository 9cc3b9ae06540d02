-- Webhook endpoints (a tenant's; secrets stored sealed under the master key), deliveries (one
-- per event and endpoint, made in the event's transaction; their attempts' state), and the
-- delivery queue: ids and times only, across tenants, which is what the delivery job scans and
-- claims (like upload_reservations, it holds no tenant data, so it needs no row-level
-- security; the job reads a delivery and its endpoint in the tenant's own scope).
CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,
    description      TEXT,
    secret           BYTEA NOT NULL,
    old_secret       BYTEA,
    old_secret_until TEXT,
    status           TEXT NOT NULL DEFAULT 'active',
    failing_since    TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id);
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    type            TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_status     BIGINT,
    last_error      TEXT,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, id);
CREATE TABLE delivery_queue (
    delivery_id     TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT
);
CREATE INDEX delivery_queue_due ON delivery_queue (next_attempt_at);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_endpoints_tenant ON webhook_endpoints FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY webhook_deliveries_tenant ON webhook_deliveries FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

INSERT INTO _tenantd_grants (object, kind, privileges) VALUES
    ('webhook_endpoints',  'TABLE', 'SELECT, INSERT, UPDATE, DELETE'),
    ('webhook_deliveries', 'TABLE', 'SELECT, INSERT, UPDATE, DELETE'),
    ('delivery_queue',     'TABLE', 'SELECT, INSERT, UPDATE, DELETE');
