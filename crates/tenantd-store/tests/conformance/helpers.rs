//! Builders of valid inputs (as the server makes them), paging, and assertions on outcomes.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantd_core::access::Role;
use tenantd_core::audit::{AuditDraft, AuditEvent, GENESIS_HASH, Verification, verify};
use tenantd_core::identity::{Email, NewInvitation, NewRefreshToken, NewUser};
use tenantd_core::ids::{EventId, FileId, InvitationId, ResourceId, SessionId, TenantId, UserId};
use tenantd_core::resource::{
    ListQuery, NewFile, NewResource, Resource, ResourceKind, ResourceName, SharedFilter, Sharing,
    Spec,
};
use tenantd_core::store::*;
use tenantd_core::tenant::{DisplayName, NewTenant, TenantScope, TenantSlug, TenantType};
use tenantd_core::{Error, Result, time};

/// 32 hex digits, new every call.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A tenant of the `free` plan in `cell`, with a fresh slug.
pub fn new_tenant(cell: &str) -> NewTenant {
    NewTenant {
        id: TenantId::new(),
        slug: TenantSlug::parse(&format!("c-{}", unique())).expect("a valid slug"),
        name: DisplayName::parse("Conformance tenant", "name").expect("a valid name"),
        kind: TenantType::Client,
        plan: "free".into(),
        region: None,
        cell: cell.into(),
        dedicated: false,
        settings: json!({}),
    }
}

/// A fresh email address.
pub fn fresh_email(label: &str) -> Email {
    Email::parse(&format!("{label}-{}@conformance.test", unique()), "email").expect("an email")
}

/// A new user with a fresh email and no password.
pub fn new_user(label: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: fresh_email(label),
        name: format!("{label} user"),
        password_hash: None,
    }
}

/// An invitation to `tenant` for a fresh email.
pub fn invitation(tenant: TenantId, label: &str, role: Role) -> NewInvitation {
    NewInvitation {
        id: InvitationId::new(),
        tenant_id: tenant,
        email: fresh_email(label),
        role,
        token_hash: unique(),
        expires_at: later(),
        created_by: None,
    }
}

/// A session of `user` in `tenant`, with a fresh first refresh token.
pub fn session(user: UserId, tenant: TenantId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id: user,
        tenant_id: tenant,
        refresh: NewRefreshToken {
            token_hash: unique(),
            expires_at: later(),
        },
    }
}

/// A day from now.
pub fn later() -> DateTime<Utc> {
    time::now() + chrono::Duration::days(1)
}

/// An hour from now: an upload reservation's deadline.
pub fn expires() -> DateTime<Utc> {
    time::now() + chrono::Duration::hours(1)
}

/// An audit event of `tenant`, as the server builds one.
pub fn draft(tenant: TenantId, action: &str) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: tenant,
        actor: format!("user:{tenant}"),
        action: action.to_owned(),
        resource: action.split('.').next().unwrap_or("test").to_owned(),
        resource_id: None,
        outcome: "success".into(),
        request_id: Some(unique()),
        ip: Some("192.0.2.1".into()),
        at: time::format(time::now()),
        details: json!({"via": "conformance", "action": action}),
    }
}

/// A private resource with a small spec.
pub fn new_resource(kind: ResourceKind, name: &str) -> NewResource {
    NewResource {
        id: ResourceId::new(),
        kind,
        name: ResourceName::parse(name).expect("a valid name"),
        spec: Spec::parse(json!({"name": name})).expect("a valid spec"),
        sharing: Sharing::private(),
        created_by: "user:conformance".into(),
    }
}

/// A file of `size` bytes about to be reserved.
pub fn new_file(name: &str, size: i64) -> NewFile {
    NewFile {
        id: FileId::new(),
        name: ResourceName::parse(name).expect("a valid name"),
        size,
        sha256: format!("{size:064x}"),
        content_type: "application/octet-stream".into(),
        created_by: "user:conformance".into(),
    }
}

/// Every page of a listing, checking each page's size and that ids strictly increase across
/// pages (no item twice, none out of order).
pub async fn list_all(
    cell: &Arc<dyn CellStore>,
    scope: &TenantScope,
    kind: ResourceKind,
    shared: SharedFilter,
    name: Option<&str>,
    page: u32,
) -> Result<Vec<Resource>, String> {
    let mut out: Vec<Resource> = Vec::new();
    let mut after = None;
    for _ in 0..10_000 {
        let q = ListQuery {
            limit: page,
            after,
            name: name.map(str::to_owned),
            shared,
        };
        let batch = cell
            .list_resources(scope, kind, &q)
            .await
            .map_err(|e| format!("list_resources({kind}, {shared}): {e:?}"))?;
        ensure!(
            batch.len() <= page as usize,
            "a page of {page} held {} items",
            batch.len()
        );
        let full = batch.len() == page as usize;
        for r in batch {
            if let Some(last) = out.last() {
                ensure!(
                    r.id > last.id,
                    "listing out of order or repeated: {} after {}",
                    r.id,
                    last.id
                );
            }
            out.push(r);
        }
        if !full {
            return Ok(out);
        }
        after = out.last().map(|r| r.id);
    }
    Err("the listing never ended".into())
}

/// Asserts a chain is whole: seq from 1, each `prev_hash` the previous `hash` (the first the
/// genesis hash), each hash recomputable, the head the last event, and `verify` agrees.
#[track_caller]
pub fn assert_linked(events: &[AuditEvent], head: Option<&(i64, String)>) {
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "seq of event {}", e.id);
        assert_eq!(e.prev_hash, prev, "prev_hash of seq {}", e.seq);
        assert_eq!(e.hash, e.computed_hash(), "hash of seq {}", e.seq);
        prev = e.hash.clone();
    }
    match head {
        None => assert!(events.is_empty(), "events but no head"),
        Some((seq, hash)) => {
            assert_eq!(*seq, events.len() as i64, "head seq");
            assert_eq!(hash, &prev, "head hash");
        }
    }
    let v = verify(events, head.map(|(s, h)| (*s, h.as_str())));
    assert!(
        matches!(v, Verification::Ok { events: n, .. } if n == events.len() as i64),
        "verify: {v:?}"
    );
}

#[track_caller]
pub fn assert_not_found<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(Error::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_forbidden<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(Error::Forbidden(_)) => {}
        other => panic!("{what}: expected Forbidden (read-only), got {other:?}"),
    }
}

#[track_caller]
pub fn assert_conflict<T: Debug>(r: Result<T>, field: &str, what: &str) {
    match r {
        Err(Error::Conflict { field: f, .. }) if f == field => {}
        other => panic!("{what}: expected Conflict on {field}, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_quota<T: Debug>(
    r: Result<T>,
    quota: &str,
    current: i64,
    limit: i64,
    requested: i64,
    what: &str,
) {
    match r {
        Err(Error::QuotaExceeded {
            resource: res,
            current: c,
            limit: l,
            requested: q,
        }) => assert_eq!(
            (res.as_str(), c, l, q),
            (quota, current, limit, requested),
            "{what}: (quota, current, limit, requested)"
        ),
        other => panic!("{what}: expected QuotaExceeded on {quota}, got {other:?}"),
    }
}

/// The runtime a property test drives its cases on (two workers, like the checks).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
