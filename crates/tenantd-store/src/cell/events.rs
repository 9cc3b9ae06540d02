//! Each tenant's event log: appended in the transaction of the change (derived from its audit
//! events, see `tenantd_core::events`), read by `seq`, pruned past retention.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantd_core::audit::GENESIS_HASH;
use tenantd_core::events::{Event, EventDraft, EventFilter};
use tenantd_core::store::EventStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use super::Cell;
use crate::db::{Conn, Db, Int, Tx, q};
use crate::rows::{EventLogRow, LockedHead, fmt};
use crate::sql::{audit, events as sql};

/// Appends events to their logs in `tx`, skipping ids a log already holds (appends outside a
/// chain append: the relay's copies into the platform's log). The log's head is locked first
/// (it is its tenant's chain head), so a `seq` never commits before the ones below it.
pub(crate) async fn append_events(tx: &mut impl Conn, events: &[EventDraft]) -> Result<()> {
    for e in events {
        let log = e.log.to_string();
        let head: LockedHead = tx
            .fetch_one(q(audit::LOCK_HEAD).bind(&log).bind(GENESIS_HASH))
            .await?;
        let seen: Option<Int> = tx
            .fetch_optional(q(sql::SEEN).bind(&log).bind(e.id.to_string()))
            .await?;
        if seen.is_none() {
            insert_event(tx, e, head.event_seq + 1, head.hooks > 0).await?;
            tx.execute(q(sql::SET_LOG_HEAD).bind(head.event_seq + 1).bind(&log))
                .await?;
        }
    }
    Ok(())
}

/// Inserts an event at `seq` of its log (the caller holds the log's head and moves it), with
/// its deliveries when the tenant has active endpoints (`hooks`).
pub(crate) async fn insert_event(
    tx: &mut impl Conn,
    e: &EventDraft,
    seq: i64,
    hooks: bool,
) -> Result<()> {
    tx.execute(
        q(sql::INSERT)
            .bind(e.log.to_string())
            .bind(seq)
            .bind(e.id.to_string())
            .bind(e.kind.as_str())
            .bind(e.tenant_id.to_string())
            .bind(e.occurred_at.as_str())
            .bind(e.data.to_string()),
    )
    .await?;
    if hooks {
        super::webhooks::enqueue(tx, e, seq).await?;
    }
    Ok(())
}

#[async_trait]
impl<D: Db> EventStore for Cell<D> {
    async fn list_events(&self, scope: &TenantScope, f: &EventFilter) -> Result<Vec<Event>> {
        let types = f.types.as_ref().map(|t| format!(",{},", t.join(",")));
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<EventLogRow> = tx
            .fetch_all(
                q(sql::PAGE)
                    .bind(scope.tenant_id().to_string())
                    .bind(f.after)
                    .bind(types)
                    .bind(i64::from(f.limit)),
            )
            .await?;
        tx.commit().await?;
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn append_events(&self, scope: &TenantScope, events: Vec<EventDraft>) -> Result<()> {
        if events.iter().any(|e| e.log != scope.tenant_id()) {
            return Err(Error::Internal("an event for another tenant's log".into()));
        }
        let mut tx = self.db.begin_scoped(scope).await?;
        append_events(&mut tx, &events).await?;
        tx.commit().await
    }

    async fn unscoped_prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let floor = tenantd_core::events::first_id_at(before).to_string();
        let before = fmt(before);
        let mut tx = self.db.begin_retention(&before).await?;
        let n = tx.execute(q(sql::PRUNE).bind(&before).bind(floor)).await?;
        tx.commit().await?;
        Ok(n)
    }
}
