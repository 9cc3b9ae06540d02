//! Store conformance suite: every check runs against both backends of `tenantd-store`, through
//! the `tenantd-core` store traits only (`Arc<dyn CatalogStore>`, `Arc<dyn CellStore>`), so
//! it holds whatever the SQL looks like inside.
//!
//! - `backends`: the two backends (SQLite in fresh temp files; PostgreSQL in three throwaway
//!   databases, migrated as an owner role and served as a plain role, so row-level security
//!   binds); `helpers`: valid inputs built as the server builds them, paging, assertions.
//! - `isolation` (with `ops`, `model`, `steps`, `file_steps` and `checks`): the key property.
//!   Random sequences of multi-tenant operations (3–4 tenants, some in the same cell;
//!   creates, reads, lists, updates and deletes with ids that may belong to other tenants,
//!   sharing, audit appends, counters, file uploads) are applied to the store and to an
//!   in-memory model, and after every step the store must agree with the model: nobody reads,
//!   lists, changes or deletes what is neither theirs nor shared with them (`NotFound`; a
//!   shared item is read-only, `Forbidden`), counters and audit chains are per tenant.
//!   256 cases per backend (`TENANTD_CONFORMANCE_CASES` to change); a failure prints the
//!   shrunk sequence of operations.
//! - `quotas`, `audit`, `shares`, `catalog`, `credentials`: deterministic checks of counters (concurrent
//!   creates never overshoot), hash chains, sharing modes, tenants, members, keys and
//!   refresh-token rotation.
//! - `runs`: agent-run admission is exact under concurrency (the queue limit, the token
//!   budget, idempotency keys) and a cancellation frees its place and hold once.
//!
//! Each check is an `async fn check_x(b: &Backend)`, run by `x_on_sqlite` and `x_on_postgres`.
//!
//! Run it:
//!
//! ```text
//! cargo test -p tenantd-store --test conformance
//! TENANTD_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres cargo test -p tenantd-store --test conformance
//! ```
//!
//! `TENANTD_TEST_PG` is a superuser URL, used only to create the test roles and throwaway
//! databases (dropped afterwards). Without it the PostgreSQL tests print
//! `SKIPPED <test>: no PostgreSQL (set TENANTD_TEST_PG)` and pass — except under `CI=true`,
//! where they fail.

/// Returns `Err(message)` from the enclosing function unless `cond` holds: the checks of the
/// property test report through `Result<(), String>` so that proptest can shrink a failure.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Two tests per check: `$on_sqlite` and `$on_postgres`, each on a fresh backend.
macro_rules! conformance {
    ($($check:ident => $on_sqlite:ident, $on_postgres:ident;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $on_sqlite() {
                let b = $crate::backends::Backend::sqlite().await;
                $check(&b).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $on_postgres() {
                let Some(b) = $crate::backends::Backend::postgres().await else {
                    return;
                };
                $check(&b).await;
            }
        )+
    };
}

mod audit;
mod backends;
mod catalog;
mod checks;
mod credentials;
mod file_steps;
mod helpers;
mod isolation;
mod leases;
mod model;
mod ops;
mod quotas;
mod run_property;
mod runs;
mod shares;
mod steps;
