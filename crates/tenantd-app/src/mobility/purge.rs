//! Purge: a tenant `deleted` past its `purge_after` leaves no trace but its record.
//!
//! In order, each step idempotent, so a purge killed anywhere finishes when run again:
//! 1. its rows in its cell (the audit chain included: `Db::begin_removal`) and in any
//!    other cell (left by an import or a move that did not finish);
//! 2. its blobs;
//! 3. the `tenant.purged` record, with what steps 1–2 removed and what step 4 is about to,
//!    appended to the platform tenant's chain;
//! 4. its catalog rows — the tenant row last, so until this commits the purge is still due —
//!    and the accounts left with no membership. The slug is free from here.
//!
//! Its rate-limit keys in Redis go with step 2 (they also expire on their own a minute after
//! its last request, so a Redis that does not answer then is noted, not waited for).

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tenantd_core::audit::Action;
use tenantd_core::ids::TenantId;
use tenantd_core::store::Accounts;
use tenantd_core::tenant::{Tenant, TenantScope, TenantStatus};
use tenantd_core::{Error, Result};

use super::import::remove_blobs;
use crate::context::Caller;
use crate::state::AppState;

/// How long a node's claim on a purge lasts.
const CLAIM: chrono::Duration = chrono::Duration::minutes(10);

/// What one purge removed.
#[derive(Debug, Clone, Serialize)]
pub struct Purged {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug (free now).
    pub slug: String,
    /// Rows removed, by `cell/<table>` and `catalog/<table>`.
    pub rows: BTreeMap<String, u64>,
    /// Blobs removed.
    pub blobs: u64,
}

/// The deleted tenants whose `purge_after` has passed, oldest id first.
pub async fn due(state: &AppState) -> Result<Vec<Tenant>> {
    let now = Utc::now();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state.catalog.list_tenants(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let n = page.len();
        out.extend(page.into_iter().filter(|t| {
            t.status == TenantStatus::Deleted && t.purge_after.is_some_and(|p| p <= now)
        }));
        if n < 500 {
            break;
        }
    }
    Ok(out)
}

/// Purges every tenant that is due; with `dry_run`, only says which, with the rows each
/// has now.
pub async fn purge_due(state: &AppState, dry_run: bool) -> Result<Vec<Purged>> {
    let mut out = Vec::new();
    for t in due(state).await? {
        if dry_run {
            out.push(would_remove(state, &t).await?);
            continue;
        }
        let Some(seen) = t.purge_after else { continue };
        // Another node may be purging it: the claim moves `purge_after` on by CLAIM, so
        // only one wins, and a purge that dies is due again after it.
        if !state
            .catalog
            .claim_purge(t.id, seen, Utc::now() + CLAIM)
            .await?
        {
            continue;
        }
        out.push(purge(state, &t).await?);
    }
    Ok(out)
}

async fn would_remove(state: &AppState, t: &Tenant) -> Result<Purged> {
    let mut rows = BTreeMap::new();
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    for (table, n) in state.cell(&scope)?.copy_counts(&scope).await? {
        rows.insert(format!("cell/{table}"), n);
    }
    for (table, n) in state.catalog.copy_counts(&scope).await? {
        rows.insert(format!("catalog/{table}"), n);
    }
    Ok(Purged {
        tenant_id: t.id,
        slug: t.slug.to_string(),
        rows,
        blobs: 0,
    })
}

/// Purges one tenant, which must be deleted and past its `purge_after`.
pub async fn purge(state: &AppState, t: &Tenant) -> Result<Purged> {
    if t.status != TenantStatus::Deleted || t.purge_after.is_none_or(|p| p > Utc::now()) {
        // (`t` is as `due` read it, before the claim moved `purge_after` on.)
        return Err(Error::invalid(
            "tenant",
            format!("{} is not deleted past its purge_after", t.slug),
        ));
    }
    if t.id == state.platform {
        return Err(Error::invalid(
            "tenant",
            "the platform tenant is never purged",
        ));
    }
    let mut rows = BTreeMap::new();
    for (name, cell) in &state.cells {
        let scope = TenantScope::unscoped_trusted(t.id, name.clone());
        for (table, n) in cell.copy_remove(&scope, Accounts::Drop).await? {
            *rows.entry(format!("cell/{table}")).or_default() += n;
        }
    }
    let blobs = remove_blobs(state, t.id).await?;
    super::downloads::remove_all(state, t.id).await?;
    // Its rate-limit keys in Redis (they would expire within a minute anyway: a Redis that
    // does not answer is noted in the record, not a reason to keep the tenant).
    let redis_keys = match state.limiter.forget(t.id).await {
        Ok(n) => json!(n),
        Err(e) => {
            tracing::warn!(tenant = %t.id, error = %e, "purge: redis did not answer; the tenant's rate-limit keys expire on their own");
            json!("redis did not answer; the keys expire within a minute")
        }
    };
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    let catalog_rows = state.catalog.copy_counts(&scope).await?;
    for (table, n) in &catalog_rows {
        rows.insert(format!("catalog/{table}"), *n);
    }
    let op = Caller::operator(state).await?;
    let platform = TenantScope::unscoped_trusted(state.platform, state.platform_cell.clone());
    let ev = op.event(
        state.platform,
        Action::TenantPurged,
        "tenants",
        Some(t.id.to_string()),
        json!({"tenant_id": t.id.to_string(), "slug": t.slug.to_string(),
               "deleted_at": t.deleted_at.map(tenantd_core::time::format),
               "rows": rows, "blobs": blobs, "redis_keys": redis_keys}),
    );
    state
        .cell(&platform)?
        .append_audit(&platform, vec![ev])
        .await?;
    let removed = state.catalog.copy_remove(&scope, Accounts::Drop).await?;
    for (table, n) in removed {
        rows.insert(format!("catalog/{table}"), n);
    }
    tracing::info!(tenant = %t.id, slug = %t.slug, blobs, "purged a deleted tenant");
    Ok(Purged {
        tenant_id: t.id,
        slug: t.slug.to_string(),
        rows,
        blobs,
    })
}
