use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::ids::{EventId, TenantId};

/// What an audit event records. The set is closed: every action tenantd appends is a variant
/// here, its text written once, so a reader of the chain can look each one up and a typo
/// cannot invent a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An API key made. (`api_keys.create`)
    ApiKeyCreate,
    /// An API key revoked (by a member, or with its maker's membership). (`api_keys.revoke`)
    ApiKeyRevoke,
    /// A sign-in, successful or refused. (`auth.login`)
    Login,
    /// A session ended by its holder. (`auth.logout`)
    Logout,
    /// A password changed, or a change refused. (`auth.password_change`)
    PasswordChange,
    /// A spent refresh token presented again: its family revoked. (`auth.refresh_reuse`)
    RefreshReuse,
    /// A self-serve signup. (`auth.signup`)
    Signup,
    /// A session switched to another tenant of the user. (`auth.switch`)
    Switch,
    /// A file stored. (`files.create`)
    FileCreate,
    /// A file deleted. (`files.delete`)
    FileDelete,
    /// An invitation accepted. (`invitations.accept`)
    InvitationAccept,
    /// An invitation sent. (`invitations.create`)
    InvitationCreate,
    /// An account without a password (an imported member) set its first one through its
    /// one-time link. (`members.password_set`)
    PasswordSet,
    /// An invitation revoked. (`invitations.revoke`)
    InvitationRevoke,
    /// A member removed. (`members.remove`)
    MemberRemove,
    /// A member's role changed. (`members.update`)
    MemberUpdate,
    /// A request refused for its role's permissions. (`permission.denied`)
    PermissionDenied,
    /// A platform admin acting in another tenant (in both chains). (`platform.cross_tenant`)
    CrossTenant,
    /// A tenant created (in its chain and the platform's). (`tenant.create`)
    TenantCreate,
    /// A tenant soft-deleted. (`tenant.delete`)
    TenantDelete,
    /// A request naming a tenant other than its credential's, refused. (`tenant.mismatch`)
    TenantMismatch,
    /// A tenant's plan changed. (`tenant.plan`)
    TenantPlan,
    /// A suspended tenant reactivated. (`tenant.reactivate`)
    TenantReactivate,
    /// A tenant suspended. (`tenant.suspend`)
    TenantSuspend,
    /// A tenant's name, settings or branding changed. (`tenant.update`)
    TenantUpdate,
    /// A tenant's archive written (`tenantd tenant export`). (`tenant.exported`)
    TenantExported,
    /// A tenant put in place from an archive, after its chain as it was. (`tenant.imported`)
    TenantImported,
    /// A tenant put back to the state of its archive. (`tenant.restored`)
    TenantRestored,
    /// A tenant's data moved to another cell. (`tenant.moved`)
    TenantMoved,
    /// A deleted tenant's rows and blobs removed after its retention (in the platform's
    /// chain, with the counts). (`tenant.purged`)
    TenantPurged,
    /// A webhook endpoint made. (`webhooks.create`)
    WebhookCreate,
    /// A webhook endpoint changed. (`webhooks.update`)
    WebhookUpdate,
    /// A webhook endpoint deleted. (`webhooks.delete`)
    WebhookDelete,
    /// A webhook endpoint's secret rotated. (`webhooks.rotate_secret`)
    WebhookRotate,
    /// A webhook endpoint disabled after failing for five days. (`webhooks.disable`)
    WebhookDisable,
    /// An agent run admitted and queued. (`runs.queue`)
    RunQueue,
    /// An agent run cancelled. (`runs.cancel`)
    RunCancel,
    /// An agent run leased by a worker. (`runs.lease`)
    RunLease,
    /// A run whose lease expired, queued again. (`runs.requeue`)
    RunRequeue,
    /// A run that lost its lease `run_max_attempts` times. (`runs.expire`)
    RunExpire,
    /// A run completed by its worker without an error. (`runs.succeed`)
    RunSucceed,
    /// A run completed by its worker with an error. (`runs.fail`)
    RunFail,
    /// A run whose usage went past the tenant's token budget. (`runs.budget_exceeded`)
    RunBudgetExceeded,
    /// A quota crossed 80 % or 100 % of its limit (once per quota, threshold and month).
    /// (`quota.threshold`)
    QuotaThreshold,
    /// An item of a resource kind created (`<kind>.create`, e.g. `agents.create`).
    ResourceCreate(crate::resource::ResourceKind),
    /// An item changed (`<kind>.update`).
    ResourceUpdate(crate::resource::ResourceKind),
    /// An item deleted (`<kind>.delete`).
    ResourceDelete(crate::resource::ResourceKind),
}

impl Action {
    /// The stored text.
    pub fn text(self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        let fixed = match self {
            Action::ApiKeyCreate => "api_keys.create",
            Action::ApiKeyRevoke => "api_keys.revoke",
            Action::Login => "auth.login",
            Action::Logout => "auth.logout",
            Action::PasswordChange => "auth.password_change",
            Action::RefreshReuse => "auth.refresh_reuse",
            Action::Signup => "auth.signup",
            Action::Switch => "auth.switch",
            Action::FileCreate => "files.create",
            Action::FileDelete => "files.delete",
            Action::InvitationAccept => "invitations.accept",
            Action::PasswordSet => "members.password_set",
            Action::InvitationCreate => "invitations.create",
            Action::InvitationRevoke => "invitations.revoke",
            Action::MemberRemove => "members.remove",
            Action::MemberUpdate => "members.update",
            Action::PermissionDenied => "permission.denied",
            Action::CrossTenant => "platform.cross_tenant",
            Action::TenantCreate => "tenant.create",
            Action::TenantDelete => "tenant.delete",
            Action::TenantMismatch => "tenant.mismatch",
            Action::TenantPlan => "tenant.plan",
            Action::TenantReactivate => "tenant.reactivate",
            Action::TenantSuspend => "tenant.suspend",
            Action::TenantUpdate => "tenant.update",
            Action::TenantExported => "tenant.exported",
            Action::TenantImported => "tenant.imported",
            Action::TenantRestored => "tenant.restored",
            Action::TenantMoved => "tenant.moved",
            Action::TenantPurged => "tenant.purged",
            Action::QuotaThreshold => "quota.threshold",
            Action::RunQueue => "runs.queue",
            Action::RunCancel => "runs.cancel",
            Action::RunLease => "runs.lease",
            Action::RunRequeue => "runs.requeue",
            Action::RunExpire => "runs.expire",
            Action::RunSucceed => "runs.succeed",
            Action::RunFail => "runs.fail",
            Action::RunBudgetExceeded => "runs.budget_exceeded",
            Action::WebhookCreate => "webhooks.create",
            Action::WebhookUpdate => "webhooks.update",
            Action::WebhookDelete => "webhooks.delete",
            Action::WebhookRotate => "webhooks.rotate_secret",
            Action::WebhookDisable => "webhooks.disable",
            Action::ResourceCreate(k) => return Cow::Owned(format!("{k}.create")),
            Action::ResourceUpdate(k) => return Cow::Owned(format!("{k}.update")),
            Action::ResourceDelete(k) => return Cow::Owned(format!("{k}.delete")),
        };
        Cow::Borrowed(fixed)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// The `prev_hash` of a tenant's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append: everything but its place in the chain.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    /// Its id, fixed before it is written so the outbox relay can append it idempotently.
    pub id: EventId,
    /// The tenant whose chain it joins.
    pub tenant_id: TenantId,
    /// `user:<id>`, `api_key:<id>`, `system` or `anonymous`.
    pub actor: String,
    /// What happened (`agents.create`, `auth.login`, ...).
    pub action: String,
    /// The kind of thing it happened to.
    pub resource: String,
    /// The thing's id.
    pub resource_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// When it happened (stored form, see [`crate::time::format`]).
    pub at: String,
    /// Anything else; never a secret.
    pub details: Value,
}

/// An event in a tenant's chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    /// Its id.
    pub id: EventId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what kind.
    pub resource: String,
    /// On which one.
    pub resource_id: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// The request.
    pub request_id: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// When.
    pub at: String,
    /// Details.
    pub details: Value,
    /// `sha256(prev_hash || canonical)`, hex.
    pub hash: String,
    /// The previous event's hash.
    pub prev_hash: String,
}

impl AuditEvent {
    /// Places a draft at `seq` after `prev_hash`.
    pub fn chain(draft: AuditDraft, seq: i64, prev_hash: &str) -> Self {
        let mut ev = AuditEvent {
            seq,
            id: draft.id,
            tenant_id: draft.tenant_id,
            actor: draft.actor,
            action: draft.action,
            resource: draft.resource,
            resource_id: draft.resource_id,
            outcome: draft.outcome,
            request_id: draft.request_id,
            ip: draft.ip,
            at: draft.at,
            details: draft.details,
            hash: String::new(),
            prev_hash: prev_hash.to_owned(),
        };
        ev.hash = ev.computed_hash();
        ev
    }

    /// The canonical form: a JSON object with sorted keys and no whitespace, of every field
    /// but the two hashes. `serde_json::Value` keeps objects sorted, so nested `details`
    /// are canonical too.
    pub fn canonical(&self) -> String {
        json!({
            "seq": self.seq,
            "id": self.id,
            "tenant_id": self.tenant_id,
            "actor": self.actor,
            "action": self.action,
            "resource": self.resource,
            "resource_id": self.resource_id,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "ip": self.ip,
            "at": self.at,
            "details": self.details,
        })
        .to_string()
    }

    /// `sha256(prev_hash || canonical)`, hex.
    pub fn computed_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(self.canonical().as_bytes());
        hex::encode(h.finalize())
    }
}

/// The result of verifying a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Verification {
    /// Every event is in place and unaltered.
    Ok {
        /// Always true.
        ok: bool,
        /// How many events.
        events: i64,
        /// The last hash.
        head: String,
    },
    /// The first event that is altered, missing or out of place.
    Broken {
        /// Always false.
        ok: bool,
        /// Its seq.
        first_bad_seq: i64,
    },
}

/// Verifies a tenant's events in `seq` order against the recorded head (`seq`, `hash`) of
/// the chain, which catches a removed tail.
pub fn verify<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    head: Option<(i64, &str)>,
) -> Verification {
    let mut expected = 1i64;
    let mut prev = GENESIS_HASH.to_owned();
    for ev in events {
        if ev.seq != expected || ev.prev_hash != prev || ev.computed_hash() != ev.hash {
            return Verification::Broken {
                ok: false,
                first_bad_seq: expected,
            };
        }
        prev = ev.hash.clone();
        expected += 1;
    }
    let count = expected - 1;
    let broken = |first_bad_seq| Verification::Broken {
        ok: false,
        first_bad_seq,
    };
    match head {
        // Rows were removed from the end.
        Some((seq, _)) if count < seq => broken(count + 1),
        // Rows were added past the recorded head.
        Some((seq, _)) if count > seq => broken(seq + 1),
        // The last row was altered and re-hashed.
        Some((_, hash)) if count > 0 && hash != prev => broken(count),
        // Events with no recorded head: the head itself was removed.
        None if count > 0 => broken(1),
        _ => Verification::Ok {
            ok: true,
            events: count,
            head: prev,
        },
    }
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact resource kind.
    pub resource: Option<String>,
    /// At or after (stored form).
    pub from: Option<String>,
    /// Before (stored form).
    pub to: Option<String>,
    /// Events after this seq.
    pub after_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

#[cfg(test)]
mod action_tests {
    use super::Action;
    use crate::resource::ResourceKind;

    #[test]
    fn an_action_is_stored_as_its_text() {
        assert_eq!(Action::TenantCreate.text(), "tenant.create");
        assert_eq!(
            Action::ResourceDelete(ResourceKind::Agents).text(),
            "agents.delete"
        );
        assert_eq!(Action::CrossTenant.to_string(), "platform.cross_tenant");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn draft(tenant: TenantId, n: u32) -> AuditDraft {
        AuditDraft {
            id: EventId::new(),
            tenant_id: tenant,
            actor: format!("user:{n}"),
            action: "agents.create".into(),
            resource: "agents".into(),
            resource_id: Some(n.to_string()),
            outcome: "success".into(),
            request_id: None,
            ip: Some("127.0.0.1".into()),
            at: "2026-11-23T10:00:00.000000Z".into(),
            details: json!({"b": n, "a": [1, {"z": 1, "y": 2}]}),
        }
    }

    fn chain(n: u32) -> Vec<AuditEvent> {
        let t = TenantId::new();
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|i| {
                let ev = AuditEvent::chain(draft(t, i), i as i64, &prev);
                prev = ev.hash.clone();
                ev
            })
            .collect()
    }

    fn head(evs: &[AuditEvent]) -> Option<(i64, &str)> {
        evs.last().map(|e| (e.seq, e.hash.as_str()))
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let ev = &chain(1)[0];
        let c = ev.canonical();
        assert!(c.starts_with("{\"action\":"));
        assert!(c.contains("{\"y\":2,\"z\":1}"));
    }

    proptest! {
        #[test]
        fn any_single_edit_delete_or_swap_is_found_at_its_seq(n in 2u32..30, pick in 0usize..1000, op in 0u8..4) {
            let mut evs = chain(n);
            let recorded = evs.last().map(|e| (e.seq, e.hash.clone())).unwrap();
            let i = pick % evs.len();
            let expect = match op {
                0 => { evs[i].details = json!({"tampered": true}); i as i64 + 1 }
                1 => { evs.remove(i); i as i64 + 1 }
                2 => {
                    let j = (i + 1) % evs.len();
                    let (a, b) = (i.min(j), i.max(j));
                    let (sa, sb) = (evs[a].seq, evs[b].seq);
                    evs.swap(a, b);
                    evs[a].seq = sa; evs[b].seq = sb;
                    a as i64 + 1
                }
                _ => {
                    // Re-hashing an edited event breaks the link to the next one (or the head).
                    evs[i].actor = "user:evil".into();
                    evs[i].hash = evs[i].computed_hash();
                    if i + 1 == evs.len() { i as i64 + 1 } else { i as i64 + 2 }
                }
            };
            let v = verify(&evs, Some((recorded.0, recorded.1.as_str())));
            prop_assert_eq!(v, Verification::Broken { ok: false, first_bad_seq: expect });
        }

        #[test]
        fn untouched_chains_verify(n in 0u32..30) {
            let evs = chain(n);
            let ok = matches!(verify(&evs, head(&evs)), Verification::Ok { events, .. } if events == n as i64);
            prop_assert!(ok);
        }
    }
}
