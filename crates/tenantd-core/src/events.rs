//! The event log: what happened to a tenant, in order, for the products built on tenantd.
//!
//! Every change that matters to a product writes an **audit** event in the change's own
//! transaction (directly into the cell's chain, or through the catalog's outbox); the event of
//! the log is derived from it when it is appended to the chain ([`from_audit`]), in that same
//! cell transaction. So an event exists exactly when its change committed, is appended once
//! (the chain skips an audit id it already holds), has the audit event's id, and moves with
//! the tenant together with its chain.
//!
//! Each tenant's log has its own order (`seq`, no gaps once committed, allocated under a lock
//! on the log's head row), which is what `GET /v1/events?after=` pages by. The platform
//! tenant's log also holds a copy of every tenant's lifecycle events (`tenant.*`), made by the
//! relay, so a platform admin follows them in one ordered stream.

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::AuditDraft;
use crate::ids::{EventId, TenantId};

/// Every event type this release writes.
pub const EVENT_TYPES: &[&str] = &[
    "tenant.created",
    "tenant.updated",
    "tenant.suspended",
    "tenant.reactivated",
    "tenant.deleted",
    "tenant.plan_changed",
    "member.added",
    "member.removed",
    "member.role_changed",
    "invitation.created",
    "invitation.accepted",
    "invitation.revoked",
    "api_key.created",
    "api_key.revoked",
    "file.created",
    "file.deleted",
    "quota.threshold",
    "webhook.disabled",
    "run.queued",
    "run.leased",
    "run.requeued",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "run.budget_exceeded",
    "run.expired",
];

/// Whether an event type is a tenant lifecycle event (copied into the platform tenant's log).
pub fn is_lifecycle(kind: &str) -> bool {
    kind.starts_with("tenant.")
}

/// An event about to be appended to a log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// Its id: the audit event's it was derived from (the platform copy of a lifecycle event
    /// has its own, derived from that one).
    pub id: EventId,
    /// Whose log it goes into.
    pub log: TenantId,
    /// The tenant it is about (the log's own tenant, except in the platform's copies).
    pub tenant_id: TenantId,
    /// Its type (`tenant.created`, …).
    pub kind: String,
    /// When the change happened (the audit event's `at`).
    pub occurred_at: String,
    /// What a consumer needs to act on it.
    pub data: Value,
}

/// An event as `GET /v1/events` and webhook deliveries show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its id; the same in every delivery of it (`webhook-id`).
    pub id: EventId,
    /// Its place in the log it was read from.
    pub seq: i64,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant it is about.
    pub tenant_id: TenantId,
    /// When the change happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// The change.
    pub data: Value,
}

/// A page request: events after `after`, of the given types (`None`: every type).
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// The last `seq` the reader has.
    pub after: i64,
    /// Only these types.
    pub types: Option<Vec<String>>,
    /// At most this many.
    pub limit: u32,
}

/// The events an audit draft records: those a product cares about, of a successful change,
/// written into the log of the tenant it is about. An accepted invitation is two events
/// (`invitation.accepted`, and `member.added` with an id derived from the first).
pub fn from_audit(d: &AuditDraft) -> Vec<EventDraft> {
    let Some(first) = primary(d) else {
        return Vec::new();
    };
    if first.kind == "invitation.accepted" {
        let mut data = first.data.clone();
        if let (Some(o), Some(user)) = (data.as_object_mut(), d.actor.strip_prefix("user:")) {
            o.insert("user_id".into(), Value::String(user.to_owned()));
        }
        let added = EventDraft {
            id: derived(first.id, "member.added"),
            kind: "member.added".into(),
            data,
            ..first.clone()
        };
        return vec![first, added];
    }
    vec![first]
}

fn primary(d: &AuditDraft) -> Option<EventDraft> {
    if d.outcome != "success" {
        return None;
    }
    let rid = d.resource_id.clone();
    let kind = match d.action.as_str() {
        "tenant.create" => "tenant.created",
        "tenant.update" => "tenant.updated",
        "tenant.suspend" => "tenant.suspended",
        "tenant.reactivate" => "tenant.reactivated",
        "tenant.delete" => "tenant.deleted",
        "tenant.plan" => "tenant.plan_changed",
        "members.update" => "member.role_changed",
        "members.remove" => "member.removed",
        "invitations.create" => "invitation.created",
        "invitations.accept" => "invitation.accepted",
        "invitations.revoke" => "invitation.revoked",
        "api_keys.create" => "api_key.created",
        "api_keys.revoke" => "api_key.revoked",
        "files.create" => "file.created",
        "files.delete" => "file.deleted",
        "quota.threshold" => "quota.threshold",
        "webhooks.disable" => "webhook.disabled",
        "runs.queue" => "run.queued",
        "runs.cancel" => "run.cancelled",
        "runs.lease" => "run.leased",
        "runs.requeue" => "run.requeued",
        "runs.expire" => "run.expired",
        "runs.succeed" => "run.succeeded",
        "runs.fail" => "run.failed",
        "runs.budget_exceeded" => "run.budget_exceeded",
        _ => return None,
    };
    // A tenant's lifecycle is logged in the tenant's own log; the copy of `tenant.create` in
    // the creating platform admin's chain is not another tenant's event (the relay copies
    // lifecycle events into the platform's log itself).
    if kind.starts_with("tenant.") && rid.as_deref() != Some(&d.tenant_id.to_string()) {
        return None;
    }
    let mut data = match &d.details {
        Value::Object(o) => Value::Object(o.clone()),
        _ => json!({}),
    };
    if let (Some(o), Some(r)) = (data.as_object_mut(), &rid) {
        let key = match kind.split('.').next() {
            Some("member") => "user_id",
            Some("tenant") => "tenant_id",
            Some("quota") => "quota",
            _ => "id",
        };
        o.entry(key).or_insert_with(|| Value::String(r.clone()));
    }
    if let Some(o) = data.as_object_mut() {
        o.insert("actor".into(), Value::String(d.actor.clone()));
    }
    Some(EventDraft {
        id: d.id,
        log: d.tenant_id,
        tenant_id: d.tenant_id,
        kind: kind.to_owned(),
        occurred_at: d.at.clone(),
        data,
    })
}

/// The platform log's copy of a lifecycle event: the same change, its own id (derived, so a
/// relay retry makes the same copy and the log skips it).
pub fn platform_copy(e: &EventDraft, platform: TenantId) -> EventDraft {
    EventDraft {
        id: derived(e.id, "platform-copy"),
        log: platform,
        ..e.clone()
    }
}

/// An id derived from another (the same every time), for the second event of one change.
fn derived(id: EventId, what: &str) -> EventId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{what}:{id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    // The source's time (its first 48 bits, a v7 id's milliseconds), so every event id sorts
    // by time and retention can prune by id (see `first_id_at`).
    b[..6].copy_from_slice(&id.0.as_bytes()[..6]);
    // A version-8 (custom) UUID, so it can never equal a generated v7 id.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    EventId(uuid::Uuid::from_bytes(b))
}

/// The smallest id an event made at `at` or later can have: event ids begin with their
/// time in milliseconds (v7, and derived ids keep their source's), so every event before `at`
/// has a smaller id (in the text form too, which sorts like the bytes).
pub fn first_id_at(at: chrono::DateTime<chrono::Utc>) -> EventId {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    EventId(uuid::Uuid::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_id_sorts_after_the_floor_of_its_time_and_before_the_next() {
        let made = EventId::new();
        let ms = i64::try_from(made.0.get_timestamp().unwrap().to_unix().0).unwrap() * 1000
            + i64::from(made.0.get_timestamp().unwrap().to_unix().1 / 1_000_000);
        let at = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let later = at + chrono::Duration::milliseconds(1);
        for id in [
            made,
            derived(made, "member.added"),
            derived(made, "platform-copy"),
        ] {
            let text = id.to_string();
            assert!(first_id_at(at).to_string() <= text, "{text}");
            assert!(text < first_id_at(later).to_string(), "{text}");
        }
        assert_eq!(made.0.get_version_num(), 7);
        assert_eq!(derived(made, "member.added").0.get_version_num(), 8);
    }

    fn draft(action: &str, tenant: TenantId, rid: Option<String>, outcome: &str) -> AuditDraft {
        AuditDraft {
            id: EventId::new(),
            tenant_id: tenant,
            actor: "user:x".into(),
            action: action.into(),
            resource: "x".into(),
            resource_id: rid,
            outcome: outcome.into(),
            request_id: None,
            ip: None,
            at: "2026-12-01T00:00:00.000000Z".into(),
            details: json!({"slug": "acme"}),
        }
    }

    #[test]
    fn successful_changes_become_events_in_the_log_of_the_tenant_they_are_about() {
        let t = TenantId::new();
        let e = from_audit(&draft("tenant.suspend", t, Some(t.to_string()), "success")).remove(0);
        assert_eq!(
            (e.kind.as_str(), e.log, e.tenant_id),
            ("tenant.suspended", t, t)
        );
        assert_eq!(e.data["tenant_id"], t.to_string());
        // The platform's own audit copy of another tenant's creation is not its event.
        let p = TenantId::new();
        assert!(from_audit(&draft("tenant.create", p, Some(t.to_string()), "success")).is_empty());
        assert!(from_audit(&draft("auth.login", t, None, "success")).is_empty());
        assert!(from_audit(&draft("files.create", t, None, "denied")).is_empty());
        let joined = from_audit(&draft("invitations.accept", t, Some("i".into()), "success"));
        let kinds: Vec<&str> = joined.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["invitation.accepted", "member.added"]);
        assert_eq!(joined[1].data["user_id"], "x");
        let copy = platform_copy(&e, p);
        assert_eq!((copy.log, copy.tenant_id), (p, t));
        assert_ne!(copy.id, e.id);
        assert_eq!(
            platform_copy(&e, p).id,
            copy.id,
            "a retry makes the same copy"
        );
    }
}
