//! The copy's statements, built from [`super::tables`] once per shape and kept for the life
//! of the process: a page read, a count and a removal per table, and a few batch sizes of
//! insert per table (so at most a handful of texts each, whatever the row counts).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use tenantd_core::store::Table;

/// A statement's shape: its table, what it does, and how many rows (inserts).
type Shape = (&'static str, &'static str, usize);

static BUILT: LazyLock<Mutex<HashMap<Shape, &'static str>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The statement `what` of `table` (with `n`), built by `build` the first time.
fn built(
    table: &'static Table,
    what: &'static str,
    n: usize,
    build: impl FnOnce() -> String,
) -> &'static str {
    let mut map = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    map.entry((table.name, what, n))
        .or_insert_with(|| Box::leak(build().into_boxed_str()))
}

fn columns(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first page: `$1` the tenant, `$2` the limit.
pub(super) fn first_page(table: &'static Table) -> &'static str {
    built(table, "first", 0, || {
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT $2",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", ")
        )
    })
}

/// Every row, in key order: `$1` the tenant. (Unordered, a tenant alone in its cell reads
/// faster from the heap — 25 against 88 ms for 100,000 resources — but an import of rows in
/// index order writes them at nearly twice the rate, measured: 0.66 against 0.30 of COPY
/// FROM; and an archive of the same rows is then the same file.)
pub(super) fn all_rows(table: &'static Table) -> &'static str {
    built(table, "all", 0, || {
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {}",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", ")
        )
    })
}

/// The page after a key: `$1` the tenant, then the key's values, then the limit.
pub(super) fn next_page(table: &'static Table) -> &'static str {
    built(table, "next", 0, || {
        let n = table.key.len();
        let after = (2..2 + n).map(|i| format!("${i}")).collect::<Vec<_>>();
        format!(
            "SELECT {} FROM {} WHERE {} AND ({}) > ({}) ORDER BY {} LIMIT ${}",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", "),
            after.join(", "),
            table.key.join(", "),
            n + 2
        )
    })
}

/// Rows whose `column` is at least `$2`, from the start: `$1` the tenant, `$3` the limit.
pub(super) fn since_first(table: &'static Table, column: &'static str) -> &'static str {
    built(table, column, 1, || {
        format!(
            "SELECT {} FROM {} WHERE {} AND {column} >= $2 ORDER BY {} LIMIT $3",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", ")
        )
    })
}

/// The same after a key: `$1` the tenant, `$2` since, then the key, then the limit.
pub(super) fn since_next(table: &'static Table, column: &'static str) -> &'static str {
    built(table, column, 2, || {
        let n = table.key.len();
        let after = (3..3 + n).map(|i| format!("${i}")).collect::<Vec<_>>();
        format!(
            "SELECT {} FROM {} WHERE {} AND {column} >= $2 AND ({}) > ({}) ORDER BY {} LIMIT ${}",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", "),
            after.join(", "),
            table.key.join(", "),
            n + 3
        )
    })
}

/// Rows whose `column` is at least `$2` and before `$3`, from the start: `$1` the tenant,
/// `$4` the limit.
pub(super) fn between_first(table: &'static Table, column: &'static str) -> &'static str {
    built(table, column, 3, || {
        format!(
            "SELECT {} FROM {} WHERE {} AND {column} >= $2 AND {column} < $3 ORDER BY {} LIMIT $4",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", ")
        )
    })
}

/// The same after a key: `$1` the tenant, `$2` since, `$3` until, then the key, then the
/// limit.
pub(super) fn between_next(table: &'static Table, column: &'static str) -> &'static str {
    built(table, column, 4, || {
        let n = table.key.len();
        let after = (4..4 + n).map(|i| format!("${i}")).collect::<Vec<_>>();
        format!(
            "SELECT {} FROM {} WHERE {} AND {column} >= $2 AND {column} < $3 AND ({}) > ({}) ORDER BY {} LIMIT ${}",
            columns(table),
            table.name,
            table.filter,
            table.key.join(", "),
            after.join(", "),
            table.key.join(", "),
            n + 4
        )
    })
}

/// The keys from the start: `$1` the tenant, `$2` the limit.
pub(super) fn keys_first(table: &'static Table) -> &'static str {
    built(table, "keys_first", 0, || {
        format!(
            "SELECT {k} FROM {} WHERE {} ORDER BY {k} LIMIT $2",
            table.name,
            table.filter,
            k = table.key.join(", ")
        )
    })
}

/// The keys after a key: `$1` the tenant, then the key, then the limit.
pub(super) fn keys_next(table: &'static Table) -> &'static str {
    built(table, "keys_next", 0, || {
        let n = table.key.len();
        let after = (2..2 + n).map(|i| format!("${i}")).collect::<Vec<_>>();
        format!(
            "SELECT {k} FROM {} WHERE {} AND ({k}) > ({}) ORDER BY {k} LIMIT ${}",
            table.name,
            table.filter,
            after.join(", "),
            n + 2,
            k = table.key.join(", ")
        )
    })
}

/// The largest key: `$1` the tenant.
pub(super) fn max_key(table: &'static Table) -> &'static str {
    built(table, "max_key", 0, || {
        let desc = table
            .key
            .iter()
            .map(|k| format!("{k} DESC"))
            .collect::<Vec<_>>();
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1",
            table.key.join(", "),
            table.name,
            table.filter,
            desc.join(", ")
        )
    })
}

/// The batches keys are removed in (a statement of at most 64 keys stays under one TCP
/// segment; a few fixed sizes keep the prepared statements few).
pub(super) const KEY_BATCHES: &[usize] = &[64, 16, 4, 1];

/// Removes `n` rows by key: `$1` the tenant, then `n` keys.
pub(super) fn remove_keys(table: &'static Table, n: usize) -> &'static str {
    built(table, "remove_keys", n, || {
        // The tenant's filter and one equality per key column, OR'ed key by key: each arm
        // is one probe of the index that starts with the tenant's column and goes on with
        // the key, whatever the planner believes of the tenant's row count. `(key) IN
        // (VALUES …)` was planned as a hash join over every row of the tenant, and a bare
        // OR of the keys ANDed with the tenant's filter as a scan of the tenant's index
        // entries, dead ones included, whenever the target's statistics lagged a big change
        // (a fresh cell, or one that had just given the tenant up): 64 keys cost 0.1-0.25 s.
        let width = table.key.len();
        let keys = (0..n)
            .map(|k| {
                let at = table
                    .key
                    .iter()
                    .enumerate()
                    .map(|(c, col)| format!(" AND {col} = ${}", 2 + k * width + c))
                    .collect::<String>();
                match table.tenant_column() {
                    Some(_) => format!("({}{at})", table.filter),
                    None => format!("(TRUE{at})"),
                }
            })
            .collect::<Vec<_>>();
        match table.tenant_column() {
            Some(_) => format!("DELETE FROM {} WHERE {}", table.name, keys.join(" OR ")),
            // A filter that is not one column's equality (a subquery) is written once.
            None => format!(
                "DELETE FROM {} WHERE ({}) AND ({})",
                table.name,
                table.filter,
                keys.join(" OR ")
            ),
        }
    })
}

/// Makes a tenant's fence, unfrozen: `$1` the tenant, `$2` the move.
pub(super) const FENCE_MAKE: &str = "INSERT INTO tenant_fences (tenant_id, move_id, frozen) VALUES ($1, $2, 0) \
     ON CONFLICT (tenant_id) DO UPDATE SET move_id = excluded.move_id, frozen = 0";
/// Freezes it.
pub(super) const FENCE_FREEZE: &str = "INSERT INTO tenant_fences (tenant_id, move_id, frozen) VALUES ($1, $2, 1) \
     ON CONFLICT (tenant_id) DO UPDATE SET move_id = excluded.move_id, frozen = 1";
/// Removes it.
pub(super) const FENCE_REMOVE: &str = "DELETE FROM tenant_fences WHERE tenant_id = $1";

/// How many rows one insert statement of `table` takes, largest first: up to 4,000 values a
/// statement (well under PostgreSQL's 65,535 and SQLite's 32,766 parameters).
pub(super) fn batch_sizes(table: &Table) -> &'static [usize] {
    const SIZES: &[usize] = &[512, 256, 128, 64, 32, 16, 8, 4, 2, 1];
    let most = (4000 / table.columns.len().max(1)).max(1);
    let from = SIZES
        .iter()
        .position(|&n| n <= most)
        .unwrap_or(SIZES.len() - 1);
    &SIZES[from..]
}

/// An insert of `n` rows.
pub(super) fn insert(table: &'static Table, n: usize) -> &'static str {
    built(table, "insert", n, || {
        let width = table.columns.len();
        let rows = (0..n)
            .map(|r| {
                let vals = (1..=width)
                    .map(|c| format!("${}", r * width + c))
                    .collect::<Vec<_>>();
                format!("({})", vals.join(", "))
            })
            .collect::<Vec<_>>();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            table.name,
            columns(table),
            rows.join(", ")
        )
    })
}

/// The tenant's rows: `$1` the tenant; the count is `n`.
pub(super) fn count(table: &'static Table) -> &'static str {
    built(table, "count", 0, || {
        format!(
            "SELECT COUNT(*) AS n FROM {} WHERE {}",
            table.name, table.filter
        )
    })
}

/// Removes the tenant's rows: `$1` the tenant.
pub(super) fn remove(table: &'static Table) -> &'static str {
    built(table, "remove", 0, || {
        format!("DELETE FROM {} WHERE {}", table.name, table.filter)
    })
}

/// The shares other tenants gave the tenant `$1`.
pub(super) const REMOVE_SHARES_TO: &str = "DELETE FROM resource_shares WHERE tenant_id = $1";

/// The tenant's members.
pub(super) const MEMBER_IDS: &str = "SELECT user_id AS n FROM memberships WHERE tenant_id = $1";

/// The catalog rows of tenant `$1` removed before its accounts and its own row, in order
/// (children before parents), named by table.
pub(super) const CATALOG_REMOVALS: &[(&str, &str)] = &[
    (
        "refresh_tokens",
        "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE tenant_id = $1)",
    ),
    ("sessions", "DELETE FROM sessions WHERE tenant_id = $1"),
    (
        "password_setups",
        "DELETE FROM password_setups WHERE tenant_id = $1",
    ),
    ("api_keys", "DELETE FROM api_keys WHERE tenant_id = $1"),
    (
        "invitations",
        "DELETE FROM invitations WHERE tenant_id = $1",
    ),
    (
        "memberships",
        "DELETE FROM memberships WHERE tenant_id = $1",
    ),
    (
        "quota_counters",
        "DELETE FROM quota_counters WHERE tenant_id = $1",
    ),
    (
        "quota_alerts",
        "DELETE FROM quota_alerts WHERE tenant_id = $1",
    ),
    (
        "dedicated_cells",
        "DELETE FROM dedicated_cells WHERE tenant_id = $1",
    ),
    (
        "audit_outbox",
        "DELETE FROM audit_outbox WHERE tenant_id = $1",
    ),
    (
        "tenant_moves",
        "DELETE FROM tenant_moves WHERE tenant_id = $1",
    ),
    (
        "users.last_tenant_id",
        "UPDATE users SET last_tenant_id = NULL WHERE last_tenant_id = $1",
    ),
];

/// The refresh tokens of account `$1` once it belongs to no tenant.
pub(super) const REMOVE_ORPHAN_USER_TOKENS: &str = "DELETE FROM refresh_tokens WHERE session_id IN \
     (SELECT id FROM sessions WHERE user_id = $1) \
     AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)";
/// Its sessions.
pub(super) const REMOVE_ORPHAN_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1 \
     AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)";
/// The account itself.
pub(super) const REMOVE_ORPHAN_USER: &str = "DELETE FROM users WHERE id = $1 \
     AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)";
/// The tenant's own row.
pub(super) const REMOVE_TENANT: &str = "DELETE FROM tenants WHERE id = $1";
