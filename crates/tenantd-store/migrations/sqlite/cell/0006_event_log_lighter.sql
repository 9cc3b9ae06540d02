-- A log's head moves into its tenant's chain head (audit_heads.event_seq): the row every
-- change's transaction already locks and writes, so an event costs no second head row. The
-- seqs already given are kept; a log without a chain gets an empty one.
ALTER TABLE audit_heads ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
-- And how many active webhook endpoints the tenant has, recounted in every endpoint change's
-- transaction, so an event of a tenant without endpoints looks for none.
ALTER TABLE audit_heads ADD COLUMN hooks INTEGER NOT NULL DEFAULT 0;
INSERT INTO audit_heads (tenant_id, seq, hash)
SELECT tenant_id, 0, '0000000000000000000000000000000000000000000000000000000000000000'
  FROM (SELECT tenant_id FROM event_heads UNION SELECT tenant_id FROM webhook_endpoints)
 WHERE tenant_id NOT IN (SELECT tenant_id FROM audit_heads);
UPDATE audit_heads
   SET event_seq = COALESCE((SELECT seq FROM event_heads e WHERE e.tenant_id = audit_heads.tenant_id), 0);
UPDATE audit_heads
   SET hooks = (SELECT COUNT(*) FROM webhook_endpoints w
                 WHERE w.tenant_id = audit_heads.tenant_id AND w.status = 'active');
DROP TABLE event_heads;
-- Events are unique by id (ids are time-ordered, so retention prunes through this index) and
-- the separate time index goes; the rows live in the key's B-tree (no rowid tree): two
-- B-trees less written with every event.
CREATE TABLE events_by_id (
    tenant_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;
INSERT INTO events_by_id (tenant_id, seq, id, type, subject_id, occurred_at, data)
SELECT tenant_id, seq, id, type, subject_id, occurred_at, data FROM events;
DROP TABLE events;
ALTER TABLE events_by_id RENAME TO events;
-- An audit row may carry the event it records (its log seq, type and data): a trigger puts
-- that event in the log, so the change's transaction writes both with one statement.
ALTER TABLE audit_events ADD COLUMN ev_seq INTEGER;
ALTER TABLE audit_events ADD COLUMN ev_type TEXT;
ALTER TABLE audit_events ADD COLUMN ev_data TEXT;
CREATE TRIGGER audit_events_to_log AFTER INSERT ON audit_events
WHEN NEW.ev_type IS NOT NULL
BEGIN
    INSERT INTO events (tenant_id, seq, id, type, subject_id, occurred_at, data)
    VALUES (NEW.tenant_id, NEW.ev_seq, NEW.id, NEW.ev_type, NEW.tenant_id, NEW.at, NEW.ev_data);
END;
