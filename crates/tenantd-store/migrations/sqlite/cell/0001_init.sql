-- tenantd cell (data plane): tenant-owned resources, quota counters, audit chains.
-- Every row carries tenant_id; every statement of the application binds it.
CREATE TABLE resources (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    sharing_mode TEXT NOT NULL DEFAULT 'private',
    version      INTEGER NOT NULL,
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
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, quota)
);

CREATE TABLE audit_events (
    tenant_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
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
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL
);
