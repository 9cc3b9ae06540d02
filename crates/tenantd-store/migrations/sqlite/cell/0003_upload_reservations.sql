-- Uploads in flight, across tenants (see the PostgreSQL migration of the same name): noted in
-- the reservation's transaction with the moment past which no request can still be writing
-- its blob; removed on completion or abort; what is past its deadline was left by a killed
-- process and is released by the sweeper.
CREATE TABLE upload_reservations (
    file_id    TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX upload_reservations_by_expiry ON upload_reservations (expires_at);
