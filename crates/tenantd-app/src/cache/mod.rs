//! The request path's per-node cache of resolved credentials, and its invalidation.
//!
//! A request's credential resolves to a session (or API key), the live role and the tenant.
//! This node keeps that resolution for `auth_cache_ttl_ms`, keyed by session id or key hash.
//! Every entry depends on one tenant's rows only (its status and plan, its memberships, its
//! sessions and keys), so invalidation is by tenant:
//!
//! - [`InvalidatingCatalog`] wraps the catalog: every change that can alter a resolution bumps
//!   that tenant's generation on this node *after* the change commits, and announces it on the
//!   Redis channel [`CHANNEL`];
//! - [`subscribe`] applies the other nodes' announcements (and drops everything when it
//!   (re)connects, since it may have missed some);
//! - the TTL bounds whatever is left: an announcement lost while Redis was away, a change made
//!   by the CLI on a machine without `redis_url`.
//!
//! An entry is stored only if no invalidation at all happened while it was being read, so a
//! read that raced a change is used once and never cached. Entries carry the generation of
//! their tenant's stripe; a bump of the stripe makes them misses.

/// The Redis channel between nodes: announcing and hearing invalidations.
mod channel;
/// The cache of resolved credentials and verified tokens.
mod credentials;
/// The wrapped catalog that invalidates on every change that can alter a resolution.
mod invalidating;

pub use channel::{Announcer, CHANNEL, subscribe};
pub use credentials::{AuthCache, KeyContext, SessionContext};
pub use invalidating::InvalidatingCatalog;
