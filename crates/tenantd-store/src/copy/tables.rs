//! Which rows are a tenant's, table by table: the one list export, import, purge, restore and
//! the move read. Each key is the order of an index that starts with the filter's column, so a
//! page is a range of one index, never a sort of the tenant's rows. The test below checks the
//! cell list against the migrations: it names every table with a `tenant_id` column (so a new
//! table cannot be left behind by a move), and a table with a foreign key is `Whole`, after a
//! parent that is `Whole` or `Stamped` (the catch-up's last snapshot brings both).

use tenantd_core::store::{Catchup, Column, Kind, Table};

const fn t(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
    }
}
const fn i(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Int,
    }
}
const fn s(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Sealed,
    }
}

const BY_TENANT: &str = "tenant_id = $1";

/// A cell's tables, parents first.
pub static CELL: &[Table] = &[
    Table {
        name: "resources",
        columns: &[
            t("id"),
            t("tenant_id"),
            t("kind"),
            t("name"),
            t("spec"),
            t("sharing_mode"),
            i("version"),
            t("created_at"),
            t("updated_at"),
            t("created_by"),
        ],
        key: &["kind", "id"],
        filter: BY_TENANT,
        sync: Catchup::Stamped("updated_at"),
    },
    // The shares of the tenant's own resources (a share *to* the tenant is its owner's row).
    Table {
        name: "resource_shares",
        columns: &[t("resource_id"), t("owner_tenant_id"), t("tenant_id")],
        key: &["resource_id", "tenant_id"],
        filter: "owner_tenant_id = $1",
        sync: Catchup::Whole,
    },
    Table {
        name: "quota_counters",
        columns: &[t("tenant_id"), t("quota"), i("used")],
        key: &["quota"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    // `ev_seq`, `ev_type` and `ev_data` are how an append hands its event to the
    // `audit_events_to_log` trigger; the event itself is in `events`.
    Table {
        name: "audit_events",
        columns: &[
            t("tenant_id"),
            i("seq"),
            t("id"),
            t("actor"),
            t("action"),
            t("resource"),
            t("resource_id"),
            t("outcome"),
            t("request_id"),
            t("ip"),
            t("at"),
            t("details"),
            t("prev_hash"),
            t("hash"),
        ],
        key: &["seq"],
        filter: BY_TENANT,
        sync: Catchup::Append,
    },
    Table {
        name: "audit_heads",
        columns: &[
            t("tenant_id"),
            i("seq"),
            t("hash"),
            i("event_seq"),
            i("hooks"),
        ],
        key: &["tenant_id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "files",
        columns: &[
            t("id"),
            t("tenant_id"),
            t("name"),
            i("size"),
            t("sha256"),
            t("content_type"),
            t("state"),
            t("created_at"),
            t("created_by"),
        ],
        key: &["id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "upload_reservations",
        columns: &[t("file_id"), t("tenant_id"), t("expires_at")],
        key: &["file_id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "events",
        columns: &[
            t("tenant_id"),
            i("seq"),
            t("id"),
            t("type"),
            t("subject_id"),
            t("occurred_at"),
            t("data"),
        ],
        key: &["seq"],
        filter: BY_TENANT,
        sync: Catchup::Append,
    },
    Table {
        name: "quota_alerts",
        columns: &[t("tenant_id"), t("quota"), i("threshold"), t("period")],
        key: &["quota", "threshold", "period"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "webhook_endpoints",
        columns: &[
            t("id"),
            t("tenant_id"),
            t("url"),
            t("events"),
            t("description"),
            s("secret"),
            s("old_secret"),
            t("old_secret_until"),
            t("status"),
            t("failing_since"),
            t("created_at"),
            t("updated_at"),
        ],
        key: &["id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            t("id"),
            t("tenant_id"),
            t("endpoint_id"),
            t("event_id"),
            t("type"),
            t("body"),
            t("status"),
            i("attempts"),
            i("last_status"),
            t("last_error"),
            t("next_attempt_at"),
            t("created_at"),
        ],
        key: &["endpoint_id", "id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "delivery_queue",
        columns: &[
            t("delivery_id"),
            t("tenant_id"),
            t("endpoint_id"),
            t("next_attempt_at"),
            t("lease_until"),
        ],
        key: &["delivery_id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "runs",
        columns: &[
            t("id"),
            t("tenant_id"),
            t("agent_id"),
            t("status"),
            t("model"),
            t("input"),
            i("max_tokens"),
            i("token_hold"),
            i("tokens_used"),
            i("attempt"),
            t("idempotency_key"),
            t("created_at"),
            t("updated_at"),
            t("lease_id"),
            t("lease_until"),
            t("leased_at"),
            t("ended_at"),
            t("output"),
            t("error"),
        ],
        key: &["id"],
        filter: BY_TENANT,
        sync: Catchup::Stamped("updated_at"),
    },
    Table {
        name: "run_usage",
        columns: &[t("tenant_id"), t("run_id"), i("seq"), i("tokens")],
        key: &["run_id", "seq"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "run_ready",
        columns: &[
            t("tenant_id"),
            t("served_at"),
            i("runnable"),
            i("active"),
            i("slots"),
            i("token_limit"),
            t("head_at"),
        ],
        key: &["tenant_id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "run_leases",
        columns: &[t("run_id"), t("tenant_id"), t("lease_id"), t("lease_until")],
        key: &["run_id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
];

/// The catalog's tables of a tenant that an archive and a move carry, parents first. What
/// a tenant also has in the catalog and nobody carries — sessions, refresh tokens, API keys,
/// invitations (secrets or their hashes), the outbox, quota alerts — only purge removes.
pub static CATALOG: &[Table] = &[
    Table {
        name: "tenants",
        columns: &[
            t("id"),
            t("slug"),
            t("name"),
            t("type"),
            t("plan"),
            t("status"),
            t("status_reason"),
            t("region"),
            t("cell"),
            t("settings"),
            t("branding"),
            t("created_at"),
            t("updated_at"),
            t("deleted_at"),
            t("purge_after"),
        ],
        key: &["id"],
        filter: "id = $1",
        sync: Catchup::Whole,
    },
    // The tenant's members' accounts (an account can belong to several tenants).
    Table {
        name: "users",
        columns: &[
            t("id"),
            t("email"),
            t("name"),
            t("password_hash"),
            t("last_tenant_id"),
            t("created_at"),
        ],
        key: &["id"],
        filter: "id IN (SELECT user_id FROM memberships WHERE tenant_id = $1)",
        sync: Catchup::Whole,
    },
    Table {
        name: "memberships",
        columns: &[t("tenant_id"), t("user_id"), t("role"), t("created_at")],
        key: &["user_id"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
    Table {
        name: "quota_counters",
        columns: &[t("tenant_id"), t("quota"), i("used")],
        key: &["quota"],
        filter: BY_TENANT,
        sync: Catchup::Whole,
    },
];

#[cfg(test)]
mod tests {
    //! The list against the cell migrations, both dialects: a table of the tenant's rows
    //! left out would be left behind by a move, and a foreign key the move does not know
    //! could fail its copy (see `tenantd-app`'s `mobility/copying.rs`).

    use std::collections::BTreeMap;

    use super::*;

    /// A cell schema as its migrations leave it: each table's columns and the tables its
    /// foreign keys name.
    fn schema(dialect: &str) -> BTreeMap<String, (String, Vec<String>)> {
        let dir = format!("{}/migrations/{dialect}/cell", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("the cell migrations")
            .map(|e| e.expect("an entry").path())
            .collect();
        files.sort();
        let mut tables: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for f in files {
            let sql = std::fs::read_to_string(&f).expect("a migration");
            let sql: String = sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            for stmt in sql.split(';') {
                let words: Vec<&str> = stmt.split_whitespace().collect();
                let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
                let refs = |from: usize| -> Vec<String> {
                    upper
                        .iter()
                        .enumerate()
                        .skip(from)
                        .filter(|(_, w)| *w == "REFERENCES")
                        .filter_map(|(i, _)| words.get(i + 1))
                        .map(|w| w.trim_matches(|c: char| c == '(' || c == ',').to_owned())
                        .collect()
                };
                match upper.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    ["CREATE", "TABLE", ..] => {
                        let name = words[2].trim_end_matches('(').to_owned();
                        tables.insert(name, (stmt.to_owned(), refs(3)));
                    }
                    ["DROP", "TABLE", ..] => {
                        tables.remove(words[2]);
                    }
                    ["ALTER", "TABLE", _, "RENAME", "TO", _] => {
                        let t = tables.remove(words[2]).expect("a table renamed");
                        tables.insert(words[5].to_owned(), t);
                    }
                    ["ALTER", "TABLE", ..] => {
                        if let Some(t) = tables.get_mut(words[2]) {
                            t.0.push_str(stmt);
                            t.1.extend(refs(3));
                        }
                    }
                    _ => {}
                }
            }
        }
        tables
    }

    #[test]
    fn the_list_names_every_tenant_table_and_copies_parents_before_children() {
        for dialect in ["postgres", "sqlite"] {
            let tables = schema(dialect);
            assert!(
                tables.contains_key("resources"),
                "{dialect}: parsed nothing"
            );
            for (name, (body, parents)) in &tables {
                // The fence is the move's own lock in the source cell, never copied.
                if name == "tenant_fences" || !body.contains("tenant_id") {
                    continue;
                }
                let at = CELL.iter().position(|t| t.name == name.as_str());
                let at = at.unwrap_or_else(|| panic!("{dialect}: {name} is not in CELL"));
                for parent in parents {
                    // A child is replaced whole from the one snapshot that also brings its
                    // parent's newest rows: its parent is whole or stamped, and before it.
                    assert_eq!(
                        CELL[at].sync,
                        Catchup::Whole,
                        "{dialect}: {name} has a foreign key to {parent} and is not Whole"
                    );
                    let p = CELL.iter().position(|t| t.name == parent.as_str());
                    let p = p.unwrap_or_else(|| panic!("{dialect}: {parent} is not in CELL"));
                    assert!(p < at, "{dialect}: {parent} comes after its child {name}");
                    assert!(
                        matches!(CELL[p].sync, Catchup::Whole | Catchup::Stamped(_)),
                        "{dialect}: {parent}, a parent, is append-only"
                    );
                }
            }
            for t in CELL {
                assert!(
                    tables.contains_key(t.name),
                    "{dialect}: no table {}",
                    t.name
                );
            }
        }
    }
}
