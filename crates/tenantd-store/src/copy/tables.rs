//! Which rows are a tenant's, table by table: the one list export, import, purge, restore and
//! the move read. Each key is the order of an index that starts with the filter's column, so a
//! page is a range of one index, never a sort of the tenant's rows. `tests/conformance/copy.rs` checks it names every table with a `tenant_id`
//! column, so a new table cannot be left behind by a move.

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
