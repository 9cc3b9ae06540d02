-- A log's head moves into its tenant's chain head (audit_heads.event_seq): the row every
-- change's transaction already locks and writes, so an event costs no second head row. The
-- seqs already given are kept; a log without a chain gets an empty one. (The owner is subject
-- to row-level security on these tables: it steps out for the move, in this transaction.)
ALTER TABLE audit_heads ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
-- And how many active webhook endpoints the tenant has, recounted in every endpoint change's
-- transaction, so an event of a tenant without endpoints looks for none.
ALTER TABLE audit_heads ADD COLUMN hooks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_heads NO FORCE ROW LEVEL SECURITY;
ALTER TABLE event_heads NO FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints NO FORCE ROW LEVEL SECURITY;
INSERT INTO audit_heads (tenant_id, seq, hash)
SELECT tenant_id, 0, '0000000000000000000000000000000000000000000000000000000000000000'
  FROM (SELECT tenant_id FROM event_heads UNION SELECT tenant_id FROM webhook_endpoints) t
 WHERE tenant_id NOT IN (SELECT tenant_id FROM audit_heads);
UPDATE audit_heads a
   SET event_seq = e.seq
  FROM event_heads e
 WHERE e.tenant_id = a.tenant_id;
UPDATE audit_heads a
   SET hooks = (SELECT COUNT(*) FROM webhook_endpoints w
                 WHERE w.tenant_id = a.tenant_id AND w.status = 'active');
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
DROP TABLE event_heads;
DELETE FROM _tenantd_grants WHERE object = 'event_heads';
-- Events are unique by id (ids are time-ordered, so retention prunes through this index) and
-- the separate time index goes: one index less written with every event.
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint
     WHERE conrelid = 'events'::regclass AND contype = 'u';
    IF c IS NOT NULL THEN
        EXECUTE format('ALTER TABLE events DROP CONSTRAINT %I', c);
    END IF;
END $$;
ALTER TABLE events ADD CONSTRAINT events_id_key UNIQUE (id);
DROP INDEX events_by_time;
-- An audit row may carry the event it records (its log seq, type and data): a trigger puts
-- that event in the log, so the change's transaction writes both with one statement. It runs
-- as the caller, under the same row-level security.
ALTER TABLE audit_events ADD COLUMN ev_seq BIGINT;
ALTER TABLE audit_events ADD COLUMN ev_type TEXT;
ALTER TABLE audit_events ADD COLUMN ev_data TEXT;
CREATE FUNCTION audit_events_to_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, seq, id, type, subject_id, occurred_at, data)
    VALUES (NEW.tenant_id, NEW.ev_seq, NEW.id, NEW.ev_type, NEW.tenant_id, NEW.at, NEW.ev_data);
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_to_log AFTER INSERT ON audit_events
    FOR EACH ROW WHEN (NEW.ev_type IS NOT NULL) EXECUTE FUNCTION audit_events_to_log();
