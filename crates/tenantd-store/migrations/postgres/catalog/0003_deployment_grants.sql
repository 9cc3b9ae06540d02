-- Each deployment's privileges go to its own serving role, never to a role that another
-- deployment on the same cluster could also hold.
--
-- Until this migration the tables were granted to `tenantd_app`, one name for the whole
-- cluster, and every database kept PostgreSQL's default CONNECT for PUBLIC: the serving role
-- of a second deployment (a `tenantd_app` member too) could connect here and read users,
-- sessions and signing keys. From now on:
--   * nothing here is granted to `tenantd_app` or to PUBLIC (no CONNECT, no TEMPORARY, no
--     USAGE on the schema);
--   * `_tenantd_grants` lists what the serving role needs; after every migration run tenantd
--     grants exactly that, plus CONNECT on this database, to the role named in `url`.
-- A new table adds its row here, in the migration that creates it.
CREATE TABLE _tenantd_grants (
    object     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('TABLE', 'SEQUENCE')),
    privileges TEXT NOT NULL
);
INSERT INTO _tenantd_grants (object, kind, privileges) VALUES
    ('tenants',              'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('users',                'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('memberships',          'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('quota_counters',       'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('invitations',          'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('api_keys',             'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('sessions',             'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('refresh_tokens',       'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('signing_keys',         'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('audit_outbox',         'TABLE',    'SELECT, INSERT, UPDATE, DELETE'),
    ('dedicated_cells',      'TABLE',    'SELECT, INSERT'),
    ('audit_outbox_pos_seq', 'SEQUENCE', 'USAGE, SELECT');

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM tenantd_app;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM tenantd_app;
    END IF;
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
END $$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
