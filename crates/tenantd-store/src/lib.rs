//! tenantd-store: the sqlx implementations of the `tenantd-core` store traits.
//!
//! - `sql/`: every statement, by area, as named constants — one text for every backend.
//! - `rows/`: the row structs those statements return, and their `TryFrom` into domain types.
//! - `catalog/`, `cell/`: the store traits, written once over [`db::Db`], a file per capability.
//! - `sqlite.rs`, `postgres/`: what differs — pools, how a transaction starts and is bound to a
//!   tenant (row-level security on PostgreSQL), migrations, grants.
//!
//! Every statement is a runtime `query` with bound parameters — never SQL built from input —
//! and every statement on a tenant table binds `tenant_id` from a `TenantScope`. Migrations
//! live under `migrations/<backend>/<catalog|cell>/` and are applied at start.
//!
//! It depends on `tenantd-core` and sqlx only: no HTTP, no server types.
#![forbid(unsafe_code)]

/// The circuit breaker of each PostgreSQL database.
pub mod breaker;
/// The catalog, over any backend.
pub mod catalog;
/// A cell, over any backend.
pub mod cell;
/// One tenant's rows, copied, counted and removed: export, import, move, purge.
pub mod copy;
/// The seam between the store and a database.
pub mod db;
/// PostgreSQL: catalog and cells, row-level security on tenant tables.
pub mod postgres;
/// Quota units taken and given back.
mod quota;
/// Row structs.
mod rows;
/// The statements.
pub mod sql;
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
            let field = if msg.contains("dedicated_cells") {
                "cell"
            } else if msg.contains("slug") {
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
        sqlx::Error::Database(db) if is_retryable(db.as_ref()) => {
            tracing::debug!(error = %db, "the database is busy or unreachable");
            Error::Unavailable
        }
        sqlx::Error::Database(db) if is_disk_full(db.as_ref()) => Error::StorageFull,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::debug!(error = %e, "the database is busy or unreachable");
            Error::Unavailable
        }
        sqlx::Error::RowNotFound => Error::NotFound,
        _ => Error::Internal(e.to_string()),
    }
}

/// A unique violation on the statement just run, as a conflict on `field` with `message`
/// (where the constraint alone does not say which input collided).
pub(crate) fn classify_conflict(e: Error, field: &str, message: &str) -> Error {
    match e {
        Error::Conflict { .. } => Error::conflict(field, message),
        other => other,
    }
}

/// Errors a client should retry, answered 503: SQLite's BUSY and LOCKED (the file is held by
/// another process past the busy timeout); PostgreSQL's connection failures (class 08),
/// serialization failures and deadlocks, shutdowns and too many connections.
fn is_retryable(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().unwrap_or_default();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
    }
    code.starts_with("08")
        || matches!(
            code.as_ref(),
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
        )
}

/// A full disk: SQLite's FULL (13) and IOERR with a write-side cause, PostgreSQL's
/// `disk_full` (53100). Nothing was written; the operator frees space.
fn is_disk_full(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().unwrap_or_default();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return code.parse::<i32>().is_ok_and(|c| c & 0xff == 13)
            || db.message().contains("database or disk is full");
    }
    code == "53100"
}

/// One embedded migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}
