//! tenantd-core: the domain of tenantd, with no I/O.
//!
//! It owns the ids, the parsed value types (`TenantSlug`, `Email`, `ResourceName`), the
//! `TenantScope` that every tenant-owned query needs, roles and their permissions, plans and
//! quota arithmetic, the canonical form and hash chain of audit events, the domain error, and
//! the store traits that `tenantd-store` implements for SQLite (and PostgreSQL).
//!
//! It must never depend on sqlx, axum, tokio or any other I/O crate: that keeps it fast to
//! build and makes "domain types carry no I/O" a compile error rather than a habit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Access control: roles, permissions and the proofs that a permission was checked.
pub mod access;
/// Audit events, their canonical form and the per-tenant hash chain.
pub mod audit;
/// Requests as parsed inputs (every field error at once).
pub mod drafts;
/// The domain error and the per-field validation error.
pub mod error;
/// The event log: what happened to a tenant, in order, for products to react to.
pub mod events;
/// Identity: users, memberships, invitations, API keys, sessions.
pub mod identity;
/// Typed ids (UUID v7).
pub mod ids;
/// Outbound URLs a tenant supplies: which URLs and addresses tenantd may contact.
pub mod net;
/// Plans, quotas, features and rate limits.
pub mod plans;
/// Tenant-owned resources (agents, tools, ...).
pub mod resource;
/// Agent runs: states and the pure admission rules.
pub mod runs;
/// The store traits: the catalog and the cells.
pub mod store;
/// Tenants, slugs, statuses and the tenant scope.
pub mod tenant;
/// Time helpers: the one timestamp format tenantd stores and hashes.
pub mod time;

pub use error::{Error, FieldError, Result};
/// Webhook endpoints, deliveries and their retry schedule.
pub mod webhooks;
