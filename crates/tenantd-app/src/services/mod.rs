//! Services: one function per use case. Handlers call exactly one; services hold the rules
//! (permissions, plans, quotas, audit) and call the stores.

/// Audit trail reads and verification.
pub mod audit;
/// Signup, login, refresh, logout, switch.
pub mod auth;
/// The event log.
pub mod events;
/// Files: metadata in the cell, bytes in the object store.
pub mod files;
/// Members, invitations, API keys.
pub mod identity;
/// Which cell takes a new tenant.
pub mod placement;
/// Tenant-owned resources.
pub mod resources;
/// Agent runs: admission, reads, cancellation.
pub mod runs;
/// One-time password links for accounts without a password.
pub mod setups;
/// Tenants and their lifecycle.
pub mod tenants;
/// Webhook endpoints.
pub mod webhooks;
/// Workers' calls: leases, heartbeats, usage, completion.
pub mod workers;
