//! Each tenant's event log: appended in the transaction of the change (derived from its audit
//! events, see `tenantd_core::events`), read by `seq`, pruned past retention.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantd_core::events::{Event, EventDraft, EventFilter};
use tenantd_core::store::EventStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use super::Cell;
use crate::db::{Conn, Db, Int, Tx, q};
use crate::rows::{EventLogRow, fmt};
use crate::sql::events as sql;

/// Appends events to their logs in `tx`, skipping ids a log already holds. Taking a `seq`
/// locks the log's head row, so a `seq` never commits before the ones below it.
pub(crate) async fn append_events(tx: &mut impl Conn, events: &[EventDraft]) -> Result<()> {
    for e in events {
        let seen: Option<Int> = tx
            .fetch_optional(q(sql::SEEN).bind(e.log.to_string()).bind(e.id.to_string()))
            .await?;
        if seen.is_none() {
            append_new(tx, e).await?;
        }
    }
    Ok(())
}

/// Appends events known not to be in their logs yet (derived from an audit event new to its
/// chain in this transaction: their ids come from its id), with their deliveries.
pub(crate) async fn append_new_events(tx: &mut impl Conn, events: &[EventDraft]) -> Result<()> {
    for e in events {
        append_new(tx, e).await?;
    }
    Ok(())
}

async fn append_new(tx: &mut impl Conn, e: &EventDraft) -> Result<()> {
    let log = e.log.to_string();
    let Int(seq) = tx.fetch_one(q(sql::NEXT_SEQ).bind(&log)).await?;
    tx.execute(
        q(sql::INSERT)
            .bind(&log)
            .bind(seq)
            .bind(e.id.to_string())
            .bind(e.kind.as_str())
            .bind(e.tenant_id.to_string())
            .bind(e.occurred_at.as_str())
            .bind(e.data.to_string()),
    )
    .await?;
    super::webhooks::enqueue(tx, e, seq).await
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
        let before = fmt(before);
        let mut tx = self.db.begin_retention(&before).await?;
        let n = tx.execute(q(sql::PRUNE).bind(&before)).await?;
        tx.commit().await?;
        Ok(n)
    }
}
