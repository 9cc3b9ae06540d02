-- The event log (see the PostgreSQL migration of the same name): each tenant's events in
-- `seq` order, derived from its audit events in the same transaction; the head row serialises
-- appends; quota alerts remember which thresholds fired in which period.
CREATE TABLE events (
    tenant_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_by_time ON events (occurred_at);
CREATE TABLE event_heads (
    tenant_id TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL
);
CREATE TABLE quota_alerts (
    tenant_id TEXT NOT NULL,
    quota     TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    period    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, quota, threshold, period)
);
