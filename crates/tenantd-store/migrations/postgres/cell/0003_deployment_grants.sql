-- Each deployment's privileges go to its own serving role, never to a role that another
-- deployment on the same cluster could also hold (see catalog/0003_deployment_grants.sql):
-- nothing here is granted to `tenantd_app` or PUBLIC any more, and after every migration run
-- tenantd grants what `_tenantd_grants` lists, plus CONNECT, to the role named in `url`.
-- Row-level security still binds that role; these grants decide which role gets in at all.
CREATE TABLE _tenantd_grants (
    object     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('TABLE', 'SEQUENCE')),
    privileges TEXT NOT NULL
);
INSERT INTO _tenantd_grants (object, kind, privileges) VALUES
    ('resources',       'TABLE', 'SELECT, INSERT, UPDATE, DELETE'),
    ('resource_shares', 'TABLE', 'SELECT, INSERT, UPDATE, DELETE'),
    ('quota_counters',  'TABLE', 'SELECT, INSERT, UPDATE, DELETE'),
    ('audit_heads',     'TABLE', 'SELECT, INSERT, UPDATE, DELETE'),
    -- append-only: no UPDATE, no DELETE
    ('audit_events',    'TABLE', 'SELECT, INSERT'),
    ('files',           'TABLE', 'SELECT, INSERT, UPDATE, DELETE');

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM tenantd_app;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM tenantd_app;
    END IF;
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
END $$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
