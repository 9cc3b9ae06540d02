//! tenantd-store: the sqlx implementations of the `tenantd-core` store traits.
//!
//! `sqlite` holds the embedded backend (catalog and cells as SQLite files). Every statement
//! is a runtime `query` with bound parameters — never SQL built from input — and every
//! statement on a tenant table binds `tenant_id` from a `TenantScope`. Migrations live under
//! `migrations/<backend>/<catalog|cell>/` and are applied at start.
//!
//! It depends on `tenantd-core` and sqlx only: no HTTP, no server types.
#![forbid(unsafe_code)]

/// The store, written once, expanded per backend.
#[macro_use]
mod shared;
/// The embedded SQLite backend.
pub mod sqlite;

use tenantd_core::Error;

/// Maps a sqlx error to the domain error: unique violation → `Conflict` on the field its
/// constraint guards, connection trouble → `Unavailable`, anything else → `Internal` (the
/// text is logged by the server, never sent to a client).
pub fn classify(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let msg = db.message();
            let field = if msg.contains("slug") {
                "slug"
            } else if msg.contains("email") {
                "email"
            } else if msg.contains("resources") {
                "name"
            } else if msg.contains("memberships") {
                "user_id"
            } else {
                "id"
            };
            Error::conflict(field, format!("this {field} is already taken"))
        }
        sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Error::Unavailable,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable
        }
        sqlx::Error::RowNotFound => Error::NotFound,
        _ => Error::Internal(e.to_string()),
    }
}

/// SQLite's BUSY and LOCKED (primary and extended codes): the database is held by another
/// process for longer than the busy timeout.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// One embedded migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}
