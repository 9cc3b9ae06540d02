-- Purge, restore, an import's clean-up and a move's removal of the source copy take every
-- row of one tenant away. Audit events stay append-only for every other transaction: they
-- can be deleted only in a transaction that names their tenant as the one being removed
-- (`app.remove_tenant`, set by `Db::begin_removal` and nothing else).
CREATE POLICY audit_remove ON audit_events FOR DELETE USING (
    tenant_id = (SELECT current_setting('app.tenant_id', true))
    AND tenant_id = (SELECT current_setting('app.remove_tenant', true))
);
CREATE POLICY events_remove ON events FOR DELETE USING (
    tenant_id = (SELECT current_setting('app.tenant_id', true))
    AND tenant_id = (SELECT current_setting('app.remove_tenant', true))
);
-- The shares other tenants gave the removed tenant are their rows; they go with it.
CREATE POLICY shares_remove ON resource_shares FOR DELETE USING (
    tenant_id = (SELECT current_setting('app.remove_tenant', true))
);

UPDATE _tenantd_grants SET privileges = 'SELECT, INSERT, DELETE'
 WHERE object IN ('audit_events', 'quota_alerts', 'run_usage');
UPDATE _tenantd_grants SET privileges = 'SELECT, INSERT, UPDATE, DELETE'
 WHERE object IN ('runs', 'run_ready');
