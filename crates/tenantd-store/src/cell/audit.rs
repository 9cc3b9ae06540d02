//! Each tenant's hash chain: appended in the transaction of the change it records.

use async_trait::async_trait;
use tenantd_core::audit::{AuditDraft, AuditEvent, AuditFilter, GENESIS_HASH};
use tenantd_core::ids::TenantId;
use tenantd_core::store::AuditStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use super::Cell;
use crate::db::{Conn, Db, Tx, q};
use crate::rows::{EventRow, HeadRow, LockedHead};
use crate::sql::audit as sql;

/// Appends events to `tenant`'s chain, skipping ids already there; each new one that records a
/// change a product cares about also goes into the tenant's event log, in this transaction.
///
/// The head row is started or locked first (appends to one chain queue here, each seeing the
/// last); an event whose id is already in a chain (the relay's retry) inserts nothing and
/// leaves the head where it was.
pub(crate) async fn append(
    tx: &mut impl Conn,
    tenant: TenantId,
    drafts: Vec<AuditDraft>,
) -> Result<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let t = tenant.to_string();
    let mut head: LockedHead = tx
        .fetch_one(q(sql::LOCK_HEAD).bind(&t).bind(GENESIS_HASH))
        .await?;
    let start = head.seq;
    for d in drafts {
        if d.tenant_id != tenant {
            return Err(Error::Internal("audit event for another tenant".into()));
        }
        let logged = tenantd_core::events::from_audit(&d);
        // The event with the audit event's own id rides in its row (the trigger logs it);
        // any other (an accepted invitation's `member.added`) is inserted after it.
        let (carried, rest): (Vec<_>, Vec<_>) = logged.iter().partition(|e| e.id == d.id);
        let carried = carried.first().map(|e| {
            head.event_seq += 1;
            (*e, head.event_seq, e.data.to_string())
        });
        let ev = AuditEvent::chain(d, head.seq + 1, &head.hash);
        let inserted = tx
            .execute(
                q(sql::INSERT_EVENT)
                    .bind(&t)
                    .bind(ev.seq)
                    .bind(ev.id.to_string())
                    .bind(&ev.actor)
                    .bind(&ev.action)
                    .bind(&ev.resource)
                    .bind(&ev.resource_id)
                    .bind(&ev.outcome)
                    .bind(&ev.request_id)
                    .bind(&ev.ip)
                    .bind(&ev.at)
                    .bind(ev.details.to_string())
                    .bind(&ev.prev_hash)
                    .bind(&ev.hash)
                    .bind(carried.as_ref().map(|c| c.1))
                    .bind(carried.as_ref().map(|c| c.0.kind.as_str()))
                    .bind(carried.as_ref().map(|c| c.2.clone())),
            )
            .await?;
        if inserted == 0 {
            if carried.is_some() {
                head.event_seq -= 1;
            }
            continue;
        }
        if let Some((e, seq, _)) = &carried
            && head.hooks > 0
        {
            super::enqueue_deliveries(tx, e, *seq).await?;
        }
        for e in rest {
            head.event_seq += 1;
            super::insert_event(tx, e, head.event_seq, head.hooks > 0).await?;
        }
        head.seq = ev.seq;
        head.hash = ev.hash;
    }
    if head.seq != start {
        tx.execute(
            q(sql::SET_HEAD)
                .bind(head.seq)
                .bind(&head.hash)
                .bind(head.event_seq)
                .bind(&t),
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<D: Db> AuditStore for Cell<D> {
    async fn append_audit(&self, scope: &TenantScope, events: Vec<AuditDraft>) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        append(&mut tx, scope.tenant_id(), events).await?;
        tx.commit().await
    }

    async fn list_audit(&self, scope: &TenantScope, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<EventRow> = tx
            .fetch_all(
                q(sql::LIST_EVENTS)
                    .bind(scope.tenant_id().to_string())
                    .bind(f.actor.as_deref())
                    .bind(f.action.as_deref())
                    .bind(f.resource.as_deref())
                    .bind(f.from.as_deref())
                    .bind(f.to.as_deref())
                    .bind(f.after_seq)
                    .bind(i64::from(f.limit)),
            )
            .await?;
        tx.commit().await?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    async fn audit_chain(
        &self,
        scope: &TenantScope,
    ) -> Result<(Vec<AuditEvent>, Option<(i64, String)>)> {
        // One read transaction, so the head and the events are the same snapshot.
        let mut tx = self.db.read_scoped(scope).await?;
        let t = scope.tenant_id().to_string();
        let head: Option<HeadRow> = tx.fetch_optional(q(sql::HEAD).bind(&t)).await?;
        let rows: Vec<EventRow> = tx.fetch_all(q(sql::CHAIN).bind(&t)).await?;
        tx.commit().await?;
        let events = rows
            .into_iter()
            .map(AuditEvent::try_from)
            .collect::<Result<Vec<_>>>()?;
        let head = head.map(|h| (h.seq, h.hash)).filter(|(seq, _)| *seq > 0);
        Ok((events, head))
    }
}
