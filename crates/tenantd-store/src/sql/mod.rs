//! Every statement the store runs, by area, as named constants.
//!
//! One text serves SQLite and PostgreSQL: `$n` placeholders, portable types (TEXT ids,
//! timestamps and JSON; BIGINT counters; see `docs/storage.md`), `ON CONFLICT`, `RETURNING`.
//! Every statement on a tenant table names its `tenant_id`; on PostgreSQL the cell tables'
//! row-level security checks it a second time. Nothing here is built from input: arguments
//! are always bound.
//!
//! "Where is the SQL for X?" — here, in the area's file, whatever the backend:
//! tenants and placement in [`tenants`], users, memberships and invitations in [`identity`],
//! API keys, sessions, refresh tokens and signing keys in [`credentials`], the catalog's audit
//! outbox and the cells' hash chains in [`audit`], each tenant's event log and quota alerts in
//! [`events`], quota counters in [`quotas`], resources and
//! their shares in [`resources`], agent runs in [`runs`], webhook endpoints, deliveries and the delivery queue in
//! [`webhooks`], file records and upload reservations in [`files`].

pub mod audit;
pub mod credentials;
pub mod events;
pub mod files;
pub mod identity;
pub mod quotas;
pub mod resources;
pub mod runs;
pub mod tenants;
pub mod webhooks;

/// Whether the database answers.
pub const PING: &str = "SELECT 1 AS n";
