-- Purge removes every row of a tenant from the catalog, these included.
UPDATE _tenantd_grants SET privileges = 'SELECT, INSERT, DELETE'
 WHERE object IN ('quota_alerts', 'dedicated_cells');
