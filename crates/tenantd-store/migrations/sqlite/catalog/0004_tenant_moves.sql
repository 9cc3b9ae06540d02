-- A tenant's move between cells, one row per move, its phase kept at every step so a move
-- cut short can be resumed or aborted (`docs/design/mobility.md`). At most one open move per
-- tenant.
CREATE TABLE tenant_moves (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    source_cell  TEXT NOT NULL,
    target_cell  TEXT NOT NULL,
    phase        TEXT NOT NULL,
    prior_status TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}',
    started_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX tenant_moves_open ON tenant_moves (tenant_id)
    WHERE phase NOT IN ('done', 'aborted');
