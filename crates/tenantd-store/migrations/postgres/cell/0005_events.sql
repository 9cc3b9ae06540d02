-- The event log: each tenant's events in `seq` order. An event is derived from an audit event
-- when that is appended to the tenant's chain, in the same transaction, so it exists exactly
-- when its change committed. `tenant_id` is whose log it is (row-level security binds it);
-- `subject_id` the tenant it is about (they differ only in the platform tenant's copies of
-- other tenants' lifecycle events). Appends take the head row's lock, so a `seq` is never
-- visible before the ones below it: a reader paging with `after` skips nothing.
CREATE TABLE events (
    tenant_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_by_time ON events (occurred_at);
CREATE TABLE event_heads (
    tenant_id TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL
);
-- Which quota thresholds fired in which period: the primary key makes each fire once.
CREATE TABLE quota_alerts (
    tenant_id TEXT NOT NULL,
    quota     TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    period    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, quota, threshold, period)
);

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
ALTER TABLE event_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_heads FORCE ROW LEVEL SECURITY;
ALTER TABLE quota_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE quota_alerts FORCE ROW LEVEL SECURITY;

-- Events are read and appended in the tenant's scope; never changed. The retention job
-- deletes old ones under its own marker scope, and only old ones: it reads nothing.
CREATE POLICY events_select ON events FOR SELECT
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY events_insert ON events FOR INSERT
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY events_prune ON events FOR DELETE USING (
    (SELECT current_setting('app.tenant_id', true)) = '*retention*'
    AND occurred_at < (SELECT current_setting('app.prune_before', true))
);
-- (A DELETE with a WHERE must also pass a SELECT policy: the same marker, the same rows.)
CREATE POLICY events_prune_select ON events FOR SELECT USING (
    (SELECT current_setting('app.tenant_id', true)) = '*retention*'
    AND occurred_at < (SELECT current_setting('app.prune_before', true))
);
CREATE POLICY event_heads_tenant ON event_heads FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY quota_alerts_tenant ON quota_alerts FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

INSERT INTO _tenantd_grants (object, kind, privileges) VALUES
    ('events',       'TABLE', 'SELECT, INSERT, DELETE'),
    ('event_heads',  'TABLE', 'SELECT, INSERT, UPDATE'),
    ('quota_alerts', 'TABLE', 'SELECT, INSERT');
