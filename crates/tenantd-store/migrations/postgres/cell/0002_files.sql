-- Files: metadata here, blobs in the object store under tenants/<tenant_id>/files/<id>.
-- A row is `pending` from the moment its bytes are reserved against `storage_bytes` until
-- the blob is stored; a pending row left by a crash is released by the next upload.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX files_by_tenant ON files (tenant_id, id);

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY files_tenant ON files FOR ALL
    USING (tenant_id = (SELECT current_setting('app.tenant_id', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id', true)));
GRANT SELECT, INSERT, UPDATE, DELETE ON files TO tenantd_app;
