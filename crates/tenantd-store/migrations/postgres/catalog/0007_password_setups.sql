-- One-time links for accounts that have no password yet (the members an import created
-- without credentials): the token is kept only as its sha256, sets the password once, and
-- expires. A new link for an account replaces its older ones.
CREATE TABLE password_setups (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX password_setups_by_user ON password_setups (user_id);
CREATE INDEX password_setups_by_tenant ON password_setups (tenant_id);
INSERT INTO _tenantd_grants (object, kind, privileges)
VALUES ('password_setups', 'TABLE', 'SELECT, INSERT, UPDATE, DELETE');
