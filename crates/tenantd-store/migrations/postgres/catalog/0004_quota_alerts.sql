-- Which thresholds of the catalog's quota (`users`) fired in which period: the primary key
-- makes each fire once (the cells have the same table for theirs).
CREATE TABLE quota_alerts (
    tenant_id TEXT NOT NULL,
    quota     TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    period    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, quota, threshold, period)
);
INSERT INTO _tenantd_grants (object, kind, privileges)
    VALUES ('quota_alerts', 'TABLE', 'SELECT, INSERT');
