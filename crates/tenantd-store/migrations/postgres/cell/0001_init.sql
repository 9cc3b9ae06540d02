-- tenantd cell on PostgreSQL (data plane): tenant-owned resources, quota counters, audit chains.
-- Every row carries tenant_id; every statement of the application binds it.
CREATE TABLE resources (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    sharing_mode TEXT NOT NULL DEFAULT 'private',
    version      BIGINT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (tenant_id, kind, name)
);
CREATE INDEX resources_by_tenant ON resources (tenant_id, kind, id);
CREATE INDEX resources_global ON resources (kind, id) WHERE sharing_mode = 'global';

-- Tenants a `selective` resource is shared with.
CREATE TABLE resource_shares (
    resource_id     TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    -- The resource's owner, so the share rows' own visibility rule needs no join.
    owner_tenant_id TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    PRIMARY KEY (resource_id, tenant_id)
);
CREATE INDEX resource_shares_by_tenant ON resource_shares (tenant_id, resource_id);

CREATE TABLE quota_counters (
    tenant_id TEXT NOT NULL,
    quota     TEXT NOT NULL,
    used      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, quota)
);

CREATE TABLE audit_events (
    tenant_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    resource_id TEXT,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    ip          TEXT,
    at          TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- The head of each tenant's chain: appends serialise on this row, and verification compares
-- the chain with it, so a removed tail is found too.
CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL
);

-- Row-level security: the database itself keeps tenants apart. Every request transaction
-- sets app.tenant_id with set_config(..., true) (transaction-local, so a pooled connection
-- never carries one tenant into another's request). The setting is read through a
-- sub-select so it is evaluated once per statement, not per row. Without a setting, no
-- tenant's rows are visible.
ALTER TABLE resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE resources FORCE ROW LEVEL SECURITY;
ALTER TABLE resource_shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE resource_shares FORCE ROW LEVEL SECURITY;
ALTER TABLE quota_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE quota_counters FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;

-- Resources: a tenant sees its own rows, global rows, and rows shared with it; it inserts,
-- changes and deletes only its own (shared rows are read-only to the tenants they reach).
CREATE POLICY resources_select ON resources FOR SELECT USING (
    -- No tenant bound (the setting was never made, or reverted to '' after a transaction):
    -- nothing at all, not even global rows.
    COALESCE((SELECT current_setting('app.tenant_id', true)), '') <> ''
    AND (
        tenant_id = (SELECT current_setting('app.tenant_id', true))
        OR sharing_mode = 'global'
        OR (sharing_mode = 'selective' AND EXISTS (
            SELECT 1 FROM resource_shares s
            WHERE s.resource_id = resources.id AND s.tenant_id = (SELECT current_setting('app.tenant_id', true))))
    )
);
CREATE POLICY resources_insert ON resources FOR INSERT
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY resources_update ON resources FOR UPDATE
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY resources_delete ON resources FOR DELETE
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));

-- Share rows: the owner manages them; the tenant a row names may see it (that is what
-- makes the resource visible to it). owner_tenant_id avoids a policy cycle with resources.
CREATE POLICY shares_select ON resource_shares FOR SELECT USING (
    owner_tenant_id = (SELECT current_setting('app.tenant_id', true))
    OR tenant_id = (SELECT current_setting('app.tenant_id', true))
);
CREATE POLICY shares_insert ON resource_shares FOR INSERT
    WITH CHECK (owner_tenant_id = (SELECT current_setting('app.tenant_id', true)));

-- ...and the claimed owner must be the real one, so a tenant an item is shared with cannot
-- pass it on. (A trigger, not a policy: a policy on resource_shares that reads resources
-- would make the two tables' policies recursive.)
CREATE FUNCTION resource_shares_owner_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM resources r WHERE r.id = NEW.resource_id AND r.tenant_id = NEW.owner_tenant_id) THEN
        RAISE EXCEPTION 'only the owner of a resource shares it' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER resource_shares_owner BEFORE INSERT OR UPDATE ON resource_shares
    FOR EACH ROW EXECUTE FUNCTION resource_shares_owner_check();
CREATE POLICY shares_delete ON resource_shares FOR DELETE
    USING (owner_tenant_id = (SELECT current_setting('app.tenant_id', true)));

CREATE POLICY counters_tenant ON quota_counters FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

-- Audit events are append-only: read and insert, never update or delete (no policy, and
-- no grant either).
CREATE POLICY audit_select ON audit_events FOR SELECT
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)));
CREATE POLICY audit_insert ON audit_events FOR INSERT
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

CREATE POLICY heads_tenant ON audit_heads FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN
        CREATE ROLE tenantd_app NOLOGIN;
    END IF;
END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON resources, resource_shares, quota_counters, audit_heads TO tenantd_app;
GRANT SELECT, INSERT ON audit_events TO tenantd_app;
