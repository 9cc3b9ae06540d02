//! Webhook endpoints and their deliveries: what a tenant subscribes to, and the state of each
//! event's delivery to each endpoint.
//!
//! A delivery is made in the transaction that appends its event to the log (one per matching
//! active endpoint), so it exists exactly when the event does; the delivery job then posts it
//! (Standard Webhooks), retrying on [`RETRY_SCHEDULE`], until the endpoint answers 2xx or the
//! schedule is spent. An endpoint whose deliveries have failed for [`DISABLE_AFTER`] is
//! disabled.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::FieldError;
use crate::events::EVENT_TYPES;
use crate::ids::{DeliveryId, EventId, TenantId, WebhookId};

/// Waits before the 2nd, 3rd, … attempt: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const RETRY_SCHEDULE: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// An endpoint failing for this long (every delivery in between failed) is disabled.
pub const DISABLE_AFTER: Duration = Duration::days(5);

/// How long an old secret keeps signing beside a rotated one.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

/// When to try again after `attempts` failed attempts; `None` when the schedule is spent.
pub fn retry_after(attempts: i64) -> Option<Duration> {
    let i = usize::try_from(attempts - 1).ok()?;
    RETRY_SCHEDULE.get(i).map(|s| Duration::seconds(*s))
}

/// Parses an endpoint's subscription: event types, or `*` for every type.
pub fn parse_events(list: &[String]) -> Result<Vec<String>, FieldError> {
    if list.is_empty() || list.len() > EVENT_TYPES.len() + 1 {
        return Err(FieldError::new("events", "1 or more event types, or \"*\""));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(FieldError::new(
                format!("events[{i}]"),
                format!("not an event type; one of: * {}", EVENT_TYPES.join(" ")),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// Whether a subscription takes an event type.
pub fn subscribes(events: &[String], kind: &str) -> bool {
    events.iter().any(|e| e == "*" || e == kind)
}

/// An endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    /// Deliveries are made.
    Active,
    /// Failed for five days (or switched off): no new deliveries.
    Disabled,
}

impl EndpointStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A webhook endpoint (its secrets are never part of it).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its id.
    pub id: WebhookId,
    /// The tenant whose events it receives.
    pub tenant_id: TenantId,
    /// Where deliveries go.
    pub url: String,
    /// The event types it takes (`*`: every type).
    pub events: Vec<String>,
    /// The owner's note.
    pub description: Option<String>,
    /// Active or disabled.
    pub status: EndpointStatus,
    /// Since when every delivery has failed (`None`: the last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An endpoint about to be stored.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its id.
    pub id: WebhookId,
    /// Checked URL.
    pub url: String,
    /// Parsed subscription.
    pub events: Vec<String>,
    /// Note.
    pub description: Option<String>,
    /// The signing secret, sealed under the master key.
    pub sealed_secret: Vec<u8>,
}

/// An endpoint with what signing needs (sealed secrets), for the delivery job.
#[derive(Debug, Clone)]
pub struct EndpointKeys {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The current secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// The previous secret, sealed, while it still signs (24 h after a rotation).
    pub sealed_old_secret: Option<Vec<u8>>,
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// The schedule is spent (or the endpoint was disabled).
    Failed,
}

impl DeliveryStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// The event (`webhook-id` on every attempt).
    pub event_id: EventId,
    /// The event's type.
    #[serde(rename = "event_type")]
    pub kind: String,
    /// Its state.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// The last attempt's HTTP status, if it got one.
    pub last_status: Option<i64>,
    /// The last attempt's error (a status, a timeout, a refused address).
    pub last_error: Option<String>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the event was made.
    pub created_at: DateTime<Utc>,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// A 2xx.
    Succeeded {
        /// The status.
        status: u16,
    },
    /// Anything else: a status, a timeout, a refused address, a connection error.
    Failed {
        /// The status, if the endpoint answered.
        status: Option<u16>,
        /// What went wrong, for the delivery log.
        error: String,
    },
}

/// What an attempt needs: the delivery, its body and its endpoint with the secrets that sign.
#[derive(Debug, Clone)]
pub struct PendingAttempt {
    /// The delivery.
    pub delivery: Delivery,
    /// The event as `GET /v1/events` shows it.
    pub body: String,
    /// Its endpoint.
    pub keys: EndpointKeys,
}

/// A finished attempt, as the delivery job records it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Its endpoint.
    pub endpoint: WebhookId,
    /// Whether the endpoint was failing when the attempt began (only a change is written).
    pub was_failing: bool,
    /// What came of it.
    pub outcome: Attempt,
    /// The next attempt (`None`: the delivery ends).
    pub next: Option<DateTime<Utc>>,
    /// An endpoint failing since before this is disabled.
    pub disable_before: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_contracts_and_ends() {
        let waits: Vec<i64> = (1..=8)
            .map_while(retry_after)
            .map(|d| d.num_seconds())
            .collect();
        assert_eq!(waits, RETRY_SCHEDULE);
        assert!(retry_after(8).is_none());
        assert!(subscribes(&["*".into()], "tenant.created"));
        assert!(!subscribes(&["member.added".into()], "tenant.created"));
        assert!(parse_events(&["nope".into()]).is_err());
        assert_eq!(
            parse_events(&["file.created".into(), "file.created".into()]).unwrap(),
            ["file.created"]
        );
    }
}
