-- A dedicated cell holds at most one tenant: the claim is made in the transaction that
-- creates the tenant, and the primary key refuses a second one.
CREATE TABLE dedicated_cells (
    cell       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id)
);
GRANT SELECT, INSERT ON dedicated_cells TO tenantd_app;
