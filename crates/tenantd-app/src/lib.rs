//! tenantd-app: the application, without HTTP.
//!
//! What a request does once the server has read it, and everything that runs beside requests:
//! the state (`state`) and start-up (`bootstrap`: building it, the first-start platform tenant, the
//! jobs a serving node runs), configuration (`config`), the request context and
//! its typed permission checks (`context`), credentials (`auth`: signing keys sealed under the
//! master key, passwords, opaque secrets), the credential cache and its invalidation
//! (`cache`), rate limits (`limits`), the use cases (`services`, one function per use case),
//! and the background jobs under one supervisor (`jobs`, with the audit `relay`).
//!
//! It depends on `tenantd-core` and `tenantd-store`, never on axum, hyper or tower: a console,
//! a worker API or a CLI calls the same services. The HTTP server is `tenantd-server`.
#![forbid(unsafe_code)]

/// Credentials: signing keys and access tokens, the master key, passwords, opaque secrets.
pub mod auth;
/// The object stores for file contents, by cell.
pub mod blobs;
/// Start-up: the state built, the platform tenant bootstrapped, the serving jobs started.
pub mod bootstrap;
/// The per-node cache of resolved credentials and its invalidation.
pub mod cache;
/// Configuration.
pub mod config;
/// Who calls, the tenant a request is bound to, and the checks that return typed proofs.
pub mod context;
/// The job supervisor: background work started and stopped with `serve`.
pub mod jobs;
/// Rate limits.
pub mod limits;
/// Tenant mobility: archives (export, import, restore) and purge.
pub mod mobility;
/// The audit outbox relay, and events appended straight to a chain.
pub mod relay;
/// Agent-run figures of a node, and the wake-up of waiting leases.
pub mod run_stats;
/// The agent-run jobs: lease expiry and reconciliation.
pub mod runs;
/// Use cases.
pub mod services;
/// Application state.
pub mod state;
/// Webhooks: the outbound guard, signatures, the delivery job.
pub mod webhooks;

pub use state::AppState;
