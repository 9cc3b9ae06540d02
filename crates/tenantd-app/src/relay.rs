//! The audit outbox relay: moves catalog-change events into their tenants' chains.
//!
//! A catalog change writes its events to `audit_outbox` in its own transaction. The relay
//! appends them to the tenant's chain in its cell (idempotent by event id) and then deletes
//! them, so an event is never lost if the process dies in between and never appended twice.
//! Appending to a chain also writes the tenant's event-log entries (`tenantd_core::events`);
//! the relay then copies tenant lifecycle events into the platform tenant's log (with ids
//! derived from theirs, so a retry makes the same copies and the log skips them).

use std::collections::BTreeMap;
use std::time::Duration;

use tenantd_core::ids::TenantId;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use crate::state::AppState;

/// Moves every pending event now. Flushes are serialised.
pub async fn flush(state: &AppState) -> Result<()> {
    let _one_at_a_time = state.relay_lock.lock().await;
    loop {
        let batch = state.catalog.pending_outbox(200).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<_> = batch.iter().map(|d| d.id).collect();
        let mut by_tenant: BTreeMap<TenantId, Vec<_>> = BTreeMap::new();
        for d in batch {
            by_tenant.entry(d.tenant_id).or_default().push(d);
        }
        let mut lifecycle = Vec::new();
        for (tenant_id, events) in by_tenant {
            let Some(tenant) = state.catalog.find_tenant(tenant_id).await? else {
                tracing::warn!(%tenant_id, "outbox events for an unknown tenant dropped");
                continue;
            };
            if tenant_id != state.platform {
                lifecycle.extend(
                    events
                        .iter()
                        .flat_map(tenantd_core::events::from_audit)
                        .filter(|e| tenantd_core::events::is_lifecycle(&e.kind))
                        .map(|e| tenantd_core::events::platform_copy(&e, state.platform)),
                );
            }
            let scope = TenantScope::unscoped_trusted(tenant.id, tenant.cell.clone());
            state.cell(&scope)?.append_audit(&scope, events).await?;
        }
        if !lifecycle.is_empty() {
            let scope = TenantScope::unscoped_trusted(state.platform, state.platform_cell.clone());
            state.cell(&scope)?.append_events(&scope, lifecycle).await?;
        }
        state.catalog.delete_outbox(&ids).await?;
    }
}

/// The relay as a job: flushes after each kick and every two seconds (to pick up what a crash
/// left behind), and once more when stopped, so nothing the node wrote waits for the next start.
pub async fn job(state: AppState, mut stop: crate::jobs::Stop) {
    loop {
        tokio::select! {
            _ = state.relay_kick.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.stopped() => {
                if let Err(e) = flush(&state).await {
                    tracing::warn!(error = %e, "last audit relay flush failed; the next start relays it");
                }
                return;
            }
        }
        if let Err(e) = flush(&state).await {
            tracing::warn!(error = %e, "audit relay failed; will retry");
        }
    }
}

impl AppState {
    /// Wakes the audit relay and waits for it to move what is pending, so a client that
    /// reads its audit right after a change sees it. A failure is logged; the background
    /// relay retries.
    pub async fn relay_now(&self) {
        if let Err(e) = flush(self).await {
            tracing::warn!(error = %e, "audit relay failed; the background relay will retry");
            self.relay_kick.notify_one();
        }
    }
}

/// Appends one event straight to a tenant's chain (events with no change to commit with).
pub async fn append_now(state: &AppState, tenant: TenantId, ev: tenantd_core::audit::AuditDraft) {
    let res = async {
        let t = state
            .catalog
            .find_tenant(tenant)
            .await?
            .ok_or(Error::NotFound)?;
        let scope = tenantd_core::tenant::TenantScope::unscoped_trusted(t.id, t.cell.clone());
        state.cell(&scope)?.append_audit(&scope, vec![ev]).await
    }
    .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "could not append an audit event");
    }
}
