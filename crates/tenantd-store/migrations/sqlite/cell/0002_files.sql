-- Files: metadata here, blobs in the object store under tenants/<tenant_id>/files/<id>.
-- A row is `pending` from the moment its bytes are reserved against `storage_bytes` until
-- the blob is stored; a pending row left by a crash is released by the next upload.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX files_by_tenant ON files (tenant_id, id);
