//! Webhook rows.

use tenantd_core::Result;
use tenantd_core::ids::{DeliveryId, EventId, TenantId, WebhookId};
use tenantd_core::webhooks::{Delivery, DeliveryStatus, Endpoint, EndpointKeys, EndpointStatus};

use super::{bad, opt_ts, ts, uuid};
use crate::db::{Columns, Record};

/// A `webhook_endpoints` row, secrets included (sealed).
pub(crate) struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub events: String,
    pub description: Option<String>,
    pub status: String,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub secret: Vec<u8>,
    pub old_secret: Option<Vec<u8>>,
    pub old_secret_until: Option<String>,
}

impl Record for EndpointRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            url: r.text("url")?,
            events: r.text("events")?,
            description: r.opt_text("description")?,
            status: r.text("status")?,
            failing_since: r.opt_text("failing_since")?,
            created_at: r.text("created_at")?,
            secret: r.bytes("secret")?,
            old_secret: r.opt_bytes("old_secret")?,
            old_secret_until: r.opt_text("old_secret_until")?,
        })
    }
}

impl EndpointRow {
    /// The endpoint and, as of `now`, the secrets that sign.
    pub fn keys(self, now: chrono::DateTime<chrono::Utc>) -> Result<EndpointKeys> {
        let old_until = opt_ts(self.old_secret_until.as_deref(), "old_secret_until")?;
        let sealed_old_secret = self
            .old_secret
            .clone()
            .filter(|_| old_until.is_some_and(|u| u > now));
        let sealed_secret = self.secret.clone();
        Ok(EndpointKeys {
            endpoint: self.try_into()?,
            sealed_secret,
            sealed_old_secret,
        })
    }
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = tenantd_core::Error;

    fn try_from(r: EndpointRow) -> Result<Self> {
        Ok(Endpoint {
            id: WebhookId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            url: r.url,
            events: serde_json::from_str(&r.events).map_err(|_| bad("events"))?,
            description: r.description,
            status: EndpointStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            failing_since: opt_ts(r.failing_since.as_deref(), "failing_since")?,
            created_at: ts(&r.created_at, "created_at")?,
        })
    }
}

/// A `webhook_deliveries` row.
pub(crate) struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
}

impl Record for DeliveryRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            endpoint_id: r.text("endpoint_id")?,
            event_id: r.text("event_id")?,
            kind: r.text("type")?,
            body: r.text("body")?,
            status: r.text("status")?,
            attempts: r.int("attempts")?,
            last_status: r.opt_int("last_status")?,
            last_error: r.opt_text("last_error")?,
            next_attempt_at: r.opt_text("next_attempt_at")?,
            created_at: r.text("created_at")?,
        })
    }
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = tenantd_core::Error;

    fn try_from(r: DeliveryRow) -> Result<Self> {
        Ok(Delivery {
            id: DeliveryId(uuid(&r.id, "id")?),
            endpoint_id: WebhookId(uuid(&r.endpoint_id, "endpoint_id")?),
            event_id: EventId(uuid(&r.event_id, "event_id")?),
            kind: r.kind,
            status: DeliveryStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            next_attempt_at: opt_ts(r.next_attempt_at.as_deref(), "next_attempt_at")?,
            created_at: ts(&r.created_at, "created_at")?,
        })
    }
}

/// A `delivery_queue` row: which tenant's delivery to which endpoint.
pub(crate) struct QueueRow {
    pub delivery_id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
}

impl Record for QueueRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            delivery_id: r.text("delivery_id")?,
            tenant_id: r.text("tenant_id")?,
            endpoint_id: r.text("endpoint_id")?,
        })
    }
}

impl TryFrom<QueueRow> for (TenantId, DeliveryId, WebhookId) {
    type Error = tenantd_core::Error;

    fn try_from(r: QueueRow) -> Result<Self> {
        Ok((
            TenantId(uuid(&r.tenant_id, "tenant_id")?),
            DeliveryId(uuid(&r.delivery_id, "delivery_id")?),
            WebhookId(uuid(&r.endpoint_id, "endpoint_id")?),
        ))
    }
}

/// A delivery a claim leased.
pub(crate) struct ClaimedRow(pub String);

impl Record for ClaimedRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self(r.text("delivery_id")?))
    }
}
