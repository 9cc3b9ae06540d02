//! Webhook endpoints, deliveries and the delivery queue. A delivery is made when its event is
//! appended ([`enqueue`], in the event's transaction); the delivery job finds due ones across
//! tenants in `delivery_queue` (ids and times only), claims a batch with one conditional update
//! (so two nodes never make the same attempt at once), then reads and records each in its
//! tenant's scope.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantd_core::events::EventDraft;
use tenantd_core::ids::{DeliveryId, TenantId, WebhookId};
use tenantd_core::store::WebhookStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::webhooks::{
    Attempt, AttemptRecord, Delivery, DeliveryStatus, Endpoint, EndpointKeys, NewEndpoint,
    PendingAttempt, subscribes,
};
use tenantd_core::{Error, Result, time};

use super::Cell;
use crate::db::{Conn, Db, Tx, q};
use crate::rows::{ClaimedRow, DeliveryRow, EndpointRow, QueueRow, fmt};
use crate::sql::webhooks as sql;

/// Makes the deliveries of an event just appended at `seq`: one per active endpoint of its
/// log's tenant that subscribes to its type, due at once, in the event's transaction.
pub(crate) async fn enqueue(tx: &mut impl Conn, e: &EventDraft, seq: i64) -> Result<()> {
    let log = e.log.to_string();
    let endpoints: Vec<EndpointRow> = tx.fetch_all(q(sql::ACTIVE_ENDPOINTS).bind(&log)).await?;
    let mut body = None;
    for ep in endpoints {
        let events: Vec<String> = serde_json::from_str(&ep.events).unwrap_or_default();
        if !subscribes(&events, &e.kind) {
            continue;
        }
        let body = body.get_or_insert_with(|| {
            serde_json::json!({
                "id": e.id,
                "seq": seq,
                "type": e.kind,
                "tenant_id": e.tenant_id,
                "occurred_at": e.occurred_at,
                "data": e.data,
            })
            .to_string()
        });
        let id = DeliveryId::new().to_string();
        let now = fmt(time::now());
        tx.execute(
            q(sql::INSERT_DELIVERY)
                .bind(&id)
                .bind(&log)
                .bind(&ep.id)
                .bind(e.id.to_string())
                .bind(e.kind.as_str())
                .bind(body.as_str())
                .bind(&now),
        )
        .await?;
        tx.execute(q(sql::ENQUEUE).bind(&id).bind(&log).bind(&ep.id).bind(&now))
            .await?;
    }
    Ok(())
}

/// Recounts the tenant's active endpoints into its head row (after any change of them).
async fn recount(tx: &mut impl Conn, tenant: &str) -> Result<()> {
    let _: crate::rows::LockedHead = tx
        .fetch_one(
            q(crate::sql::audit::LOCK_HEAD)
                .bind(tenant)
                .bind(tenantd_core::audit::GENESIS_HASH),
        )
        .await?;
    tx.execute(q(sql::RECOUNT_HOOKS).bind(tenant)).await?;
    Ok(())
}

async fn keys_in(tx: &mut impl Conn, scope: &TenantScope, id: WebhookId) -> Result<EndpointKeys> {
    let row: EndpointRow = tx
        .fetch_one(
            q(sql::FIND_ENDPOINT)
                .bind(id.to_string())
                .bind(scope.tenant_id().to_string()),
        )
        .await?;
    row.keys(time::now())
}

#[async_trait]
impl<D: Db> WebhookStore for Cell<D> {
    async fn create_endpoint(&self, scope: &TenantScope, new: NewEndpoint) -> Result<Endpoint> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let events =
            serde_json::to_string(&new.events).map_err(|e| Error::Internal(e.to_string()))?;
        tx.execute(
            q(sql::INSERT_ENDPOINT)
                .bind(new.id.to_string())
                .bind(scope.tenant_id().to_string())
                .bind(new.url.as_str())
                .bind(events)
                .bind(new.description.clone())
                .bind(&new.sealed_secret)
                .bind(fmt(time::now())),
        )
        .await?;
        recount(&mut tx, &scope.tenant_id().to_string()).await?;
        let keys = keys_in(&mut tx, scope, new.id).await?;
        tx.commit().await?;
        Ok(keys.endpoint)
    }

    async fn list_endpoints(&self, scope: &TenantScope) -> Result<Vec<Endpoint>> {
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<EndpointRow> = tx
            .fetch_all(q(sql::LIST_ENDPOINTS).bind(scope.tenant_id().to_string()))
            .await?;
        tx.commit().await?;
        rows.into_iter().map(Endpoint::try_from).collect()
    }

    async fn endpoint_keys(&self, scope: &TenantScope, id: WebhookId) -> Result<EndpointKeys> {
        let mut tx = self.db.read_scoped(scope).await?;
        let keys = keys_in(&mut tx, scope, id).await?;
        tx.commit().await?;
        Ok(keys)
    }

    async fn update_endpoint(&self, scope: &TenantScope, ep: &Endpoint) -> Result<Endpoint> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let events =
            serde_json::to_string(&ep.events).map_err(|e| Error::Internal(e.to_string()))?;
        let n = tx
            .execute(
                q(sql::UPDATE_ENDPOINT)
                    .bind(ep.url.as_str())
                    .bind(events)
                    .bind(ep.description.clone())
                    .bind(ep.status.as_str())
                    .bind(fmt(time::now()))
                    .bind(ep.id.to_string())
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound);
        }
        recount(&mut tx, &scope.tenant_id().to_string()).await?;
        let keys = keys_in(&mut tx, scope, ep.id).await?;
        tx.commit().await?;
        Ok(keys.endpoint)
    }

    async fn delete_endpoint(&self, scope: &TenantScope, id: WebhookId) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let (i, t) = (id.to_string(), scope.tenant_id().to_string());
        tx.execute(q(sql::DEQUEUE_ENDPOINT).bind(&i).bind(&t))
            .await?;
        let n = tx
            .execute(q(sql::DELETE_ENDPOINT).bind(&i).bind(&t))
            .await?;
        if n == 0 {
            return Err(Error::NotFound);
        }
        recount(&mut tx, &t).await?;
        tx.commit().await
    }

    async fn rotate_secret(
        &self,
        scope: &TenantScope,
        id: WebhookId,
        sealed: Vec<u8>,
        old_until: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let n = tx
            .execute(
                q(sql::ROTATE_SECRET)
                    .bind(&sealed)
                    .bind(id.to_string())
                    .bind(fmt(old_until))
                    .bind(fmt(time::now()))
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound);
        }
        tx.commit().await
    }

    async fn list_deliveries(
        &self,
        scope: &TenantScope,
        id: WebhookId,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let mut tx = self.db.read_scoped(scope).await?;
        keys_in(&mut tx, scope, id).await?;
        let rows: Vec<DeliveryRow> = tx
            .fetch_all(
                q(sql::LIST_DELIVERIES)
                    .bind(scope.tenant_id().to_string())
                    .bind(id.to_string())
                    .bind(i64::from(limit)),
            )
            .await?;
        tx.commit().await?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn unscoped_due_deliveries(
        &self,
        now: DateTime<Utc>,
        busy: &[WebhookId],
        limit: u32,
    ) -> Result<Vec<(TenantId, DeliveryId, WebhookId)>> {
        let busy = busy.iter().fold(",".to_owned(), |mut b, e| {
            b.push_str(&e.to_string());
            b.push(',');
            b
        });
        let rows: Vec<QueueRow> = self
            .db
            .reader()?
            .fetch_all(q(sql::DUE).bind(fmt(now)).bind(busy).bind(i64::from(limit)))
            .await?;
        rows.into_iter().map(TryFrom::try_from).collect()
    }

    async fn unscoped_claim_deliveries(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<DeliveryId>> {
        let mut writer = self.db.writer()?;
        let mut claimed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(sql::CLAIM_BATCH) {
            let mut stmt = q(sql::CLAIM).bind(fmt(until)).bind(fmt(now));
            for i in 0..sql::CLAIM_BATCH {
                stmt = stmt.bind(chunk.get(i).unwrap_or(&chunk[0]).to_string());
            }
            let rows: Vec<ClaimedRow> = writer.fetch_all(stmt).await?;
            for r in rows {
                claimed.push(DeliveryId(crate::rows::uuid(&r.0, "delivery_id")?));
            }
        }
        Ok(claimed)
    }

    async fn pending_attempt(&self, scope: &TenantScope, id: DeliveryId) -> Result<PendingAttempt> {
        let mut tx = self.db.read_scoped(scope).await?;
        let row: DeliveryRow = tx
            .fetch_one(
                q(sql::FIND_DELIVERY)
                    .bind(id.to_string())
                    .bind(scope.tenant_id().to_string()),
            )
            .await?;
        let body = row.body.clone();
        let delivery = Delivery::try_from(row)?;
        let keys = keys_in(&mut tx, scope, delivery.endpoint_id).await?;
        tx.commit().await?;
        Ok(PendingAttempt {
            delivery,
            body,
            keys,
        })
    }

    async fn record_attempt(&self, scope: &TenantScope, r: &AttemptRecord) -> Result<bool> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let (i, t, e, now) = (
            r.delivery.to_string(),
            scope.tenant_id().to_string(),
            r.endpoint.to_string(),
            fmt(time::now()),
        );
        let (status, code, error, next) = match &r.outcome {
            Attempt::Succeeded { status } => (
                DeliveryStatus::Succeeded,
                Some(i64::from(*status)),
                None,
                None,
            ),
            Attempt::Failed { status, error } => {
                let st = if r.next.is_some() {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Failed
                };
                (st, status.map(i64::from), Some(error.clone()), r.next)
            }
        };
        let n = tx
            .execute(
                q(sql::RECORD_ATTEMPT)
                    .bind(status.as_str())
                    .bind(code)
                    .bind(error)
                    .bind(next.map(fmt))
                    .bind(&i)
                    .bind(&t),
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        match next {
            Some(at) => {
                tx.execute(q(sql::RESCHEDULE).bind(&i).bind(fmt(at)))
                    .await?
            }
            None => tx.execute(q(sql::DEQUEUE).bind(&i)).await?,
        };
        // Only a change of the endpoint's state is written: a healthy endpoint's row is not
        // touched by its deliveries (they would all queue on that one row's lock).
        let mut disabled = false;
        match (&r.outcome, r.was_failing) {
            (Attempt::Succeeded { .. }, true) => {
                tx.execute(q(sql::ENDPOINT_OK).bind(&e).bind(&t)).await?;
            }
            (Attempt::Succeeded { .. }, false) => {}
            (Attempt::Failed { .. }, false) => {
                tx.execute(q(sql::ENDPOINT_FAILED).bind(&now).bind(&e).bind(&t))
                    .await?;
            }
            (Attempt::Failed { .. }, true) => {
                disabled = tx
                    .execute(
                        q(sql::DISABLE_IF_FAILING)
                            .bind(fmt(r.disable_before))
                            .bind(&now)
                            .bind(&e)
                            .bind(&t),
                    )
                    .await?
                    == 1;
                if disabled {
                    recount(&mut tx, &t).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(disabled)
    }

    async fn create_test_delivery(
        &self,
        scope: &TenantScope,
        endpoint: WebhookId,
        event: tenantd_core::ids::EventId,
        body: String,
    ) -> Result<DeliveryId> {
        let mut tx = self.db.begin_scoped(scope).await?;
        keys_in(&mut tx, scope, endpoint).await?;
        let id = DeliveryId::new();
        let (i, t, e, now) = (
            id.to_string(),
            scope.tenant_id().to_string(),
            endpoint.to_string(),
            fmt(time::now()),
        );
        tx.execute(
            q(sql::INSERT_DELIVERY)
                .bind(&i)
                .bind(&t)
                .bind(&e)
                .bind(event.to_string())
                .bind("webhook.test")
                .bind(body)
                .bind(&now),
        )
        .await?;
        tx.execute(q(sql::ENQUEUE).bind(&i).bind(&t).bind(&e).bind(&now))
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn unscoped_delivery_backlog(&self) -> Result<i64> {
        let crate::db::Int(n) = self.db.reader()?.fetch_one(q(sql::BACKLOG)).await?;
        Ok(n)
    }

    async fn retry_delivery(
        &self,
        scope: &TenantScope,
        endpoint: Option<WebhookId>,
        id: DeliveryId,
    ) -> Result<()> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let (i, t, now) = (
            id.to_string(),
            scope.tenant_id().to_string(),
            fmt(time::now()),
        );
        let row: DeliveryRow = tx
            .fetch_one(q(sql::FIND_DELIVERY).bind(&i).bind(&t))
            .await?;
        if endpoint.is_some_and(|e| e.to_string() != row.endpoint_id) {
            return Err(Error::NotFound);
        }
        tx.execute(q(sql::RETRY_DELIVERY).bind(&now).bind(&i).bind(&t))
            .await?;
        tx.execute(
            q(sql::ENQUEUE)
                .bind(&i)
                .bind(&t)
                .bind(&row.endpoint_id)
                .bind(&now),
        )
        .await?;
        tx.execute(q(sql::RESCHEDULE).bind(&i).bind(&now)).await?;
        tx.commit().await
    }
}
