-- Uploads in flight, across tenants. An upload's reservation against `storage_bytes` is noted
-- here in the transaction that makes it, with the moment past which no request can still be
-- writing its blob (the request timeout, plus a margin); the transaction that completes or
-- aborts the upload removes the note. What a killed process left behind is what is past its
-- deadline: the sweeper releases it (counter, pending row, blob) without reading any tenant's
-- rows. The table holds ids and times only, so it needs no row-level security: a tenant's
-- data stays behind the policies of `files`.
CREATE TABLE upload_reservations (
    file_id    TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX upload_reservations_by_expiry ON upload_reservations (expires_at);
INSERT INTO _tenantd_grants (object, kind, privileges)
    VALUES ('upload_reservations', 'TABLE', 'SELECT, INSERT, DELETE');
