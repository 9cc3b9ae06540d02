-- tenantd catalog on PostgreSQL (control plane): tenants, users, memberships, invitations, keys, sessions.
-- Times are RFC 3339 UTC text with microseconds (fixed width: sorts as text).
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    slug          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    plan          TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    region        TEXT,
    cell          TEXT NOT NULL,
    settings      TEXT NOT NULL DEFAULT '{}',
    branding      TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deleted_at    TEXT,
    purge_after   TEXT
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT,
    last_tenant_id TEXT,
    created_at     TEXT NOT NULL
);

CREATE TABLE memberships (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

-- Usage counters that live in the catalog (`users`), moved with a conditional update in
-- the same transaction as the change they count.
CREATE TABLE quota_counters (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    quota     TEXT NOT NULL,
    used      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, quota)
);

CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TEXT NOT NULL,
    created_by  TEXT,
    created_at  TEXT NOT NULL,
    accepted_at TEXT,
    revoked_at  TEXT,
    -- 1 once the invitation no longer holds a `users` slot (accepted, revoked or expired).
    released    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX invitations_by_tenant ON invitations (tenant_id, created_at);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_by TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    created_at TEXT NOT NULL,
    -- Logout or removal: the session's access tokens stop working too.
    revoked_at TEXT,
    -- A spent refresh token was presented again: the family can no longer refresh; its
    -- short-lived access tokens run out on their own.
    refresh_revoked_at TEXT,
    -- After a reuse: access tokens of later generations (minted from the stolen token
    -- onwards) stop working; earlier ones belong to whoever held the family before.
    revoked_after_gen  BIGINT
);
CREATE INDEX sessions_by_member ON sessions (tenant_id, user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    spent_at   TEXT,
    -- 0 for the first token of a session, +1 per rotation; access tokens carry it as `gen`.
    generation BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    created_at   TEXT NOT NULL,
    verify_until TEXT
);

-- Audit events of catalog changes, written in the change's transaction; the relay appends
-- them to the tenant's chain in its cell (idempotently, by id) and then deletes them.
CREATE TABLE audit_outbox (
    pos         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    resource_id TEXT,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    ip          TEXT,
    at          TEXT NOT NULL,
    details     TEXT NOT NULL
);

-- The application role: tenantd serves as a role that is a member of tenantd_app and owns
-- nothing. Rows here are control-plane data, guarded by the application, not by RLS.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN
        CREATE ROLE tenantd_app NOLOGIN;
    END IF;
END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tenantd_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tenantd_app;
