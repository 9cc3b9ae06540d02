//! The catalog wrapped so that every change that can alter a resolved credential drops its
//! tenant here and announces it to the other nodes.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantd_core::Result;
use tenantd_core::access::Role;
use tenantd_core::audit::AuditDraft;
use tenantd_core::identity::{
    ApiKey, Invitation, Membership, NewInvitation, NewRefreshToken, RefreshOutcome, Session, User,
};
use tenantd_core::ids::{ApiKeyId, EventId, InvitationId, SessionId, TenantId, UserId};
use tenantd_core::store::{
    Accounts, CatalogStore, CopySnapshot, CopyStore, Counts, CredentialStore, Joiner, MemberStore,
    MoveRecord, MoveRecordStore, NewApiKey, NewSession, OutboxStore, Row, SigningKeyRecord,
    SigningKeyStore, Table, TenantOwner, TenantStore,
};
use tenantd_core::tenant::{NewTenant, Tenant, TenantPatch, TenantScope, TenantStatus};

use super::{Announcer, AuthCache, SessionContext};

/// The catalog, with every change that can alter a resolved credential invalidating its
/// tenant on this node and announcing it to the others.
pub struct InvalidatingCatalog {
    inner: Arc<dyn CatalogStore>,
    cache: Arc<AuthCache>,
    announcer: Option<Arc<Announcer>>,
}

impl InvalidatingCatalog {
    /// Wraps `inner`.
    pub fn new(
        inner: Arc<dyn CatalogStore>,
        cache: Arc<AuthCache>,
        announcer: Option<Arc<Announcer>>,
    ) -> Self {
        Self {
            inner,
            cache,
            announcer,
        }
    }

    /// After a committed change to `tenant`'s rows (`None`: to anything): drops it here at
    /// once and announces it to the other nodes in the background.
    fn changed(&self, tenant: Option<TenantId>) {
        match tenant {
            Some(t) => self.cache.invalidate_tenant(t),
            None => self.cache.invalidate_all(),
        }
        if let Some(a) = self.announcer.clone()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let payload = tenant.map_or_else(|| "*".to_owned(), |t| t.to_string());
            rt.spawn(async move { a.publish(payload).await });
        }
    }

    /// A guard for a change about to be made: if the request is dropped before the change
    /// returns (client gone, timeout), the commit may still have happened, so the tenant is
    /// invalidated anyway.
    fn pending(&self, tenant: Option<TenantId>) -> Pending<'_> {
        Pending {
            catalog: self,
            tenant,
            armed: true,
        }
    }
}

/// See [`InvalidatingCatalog::pending`].
struct Pending<'a> {
    catalog: &'a InvalidatingCatalog,
    tenant: Option<TenantId>,
    armed: bool,
}

impl Pending<'_> {
    /// The change returned: invalidate its tenant.
    fn done(mut self) {
        self.armed = false;
        self.catalog.changed(self.tenant);
    }

    /// The change returned and touched `tenant`, or nothing that needs invalidating.
    fn done_with(mut self, tenant: Option<TenantId>) {
        self.armed = false;
        if let Some(t) = tenant {
            self.catalog.changed(Some(t));
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.catalog.changed(self.tenant);
        }
    }
}

#[async_trait]
impl CatalogStore for InvalidatingCatalog {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// Status, plan and settings are part of a resolved tenant: their changes invalidate it.
#[async_trait]
impl TenantStore for InvalidatingCatalog {
    async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        self.inner.find_tenant(id).await
    }
    async fn find_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>> {
        self.inner.find_tenant_by_slug(slug).await
    }
    async fn list_tenants(&self, after: Option<TenantId>, limit: u32) -> Result<Vec<Tenant>> {
        self.inner.list_tenants(after, limit).await
    }
    async fn create_tenant(
        &self,
        tenant: NewTenant,
        owner: TenantOwner,
        session: Option<NewSession>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        // Nothing can have been resolved for a tenant that did not exist.
        self.inner
            .create_tenant(tenant, owner, session, outbox)
            .await
    }
    async fn update_tenant(
        &self,
        id: TenantId,
        patch: TenantPatch,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let pending = self.pending(Some(id));
        let r = self.inner.update_tenant(id, patch, outbox).await;
        pending.done();
        r
    }
    async fn set_tenant_status(
        &self,
        id: TenantId,
        status: TenantStatus,
        reason: Option<String>,
        purge_after: Option<DateTime<Utc>>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let pending = self.pending(Some(id));
        let r = self
            .inner
            .set_tenant_status(id, status, reason, purge_after, outbox)
            .await;
        pending.done();
        r
    }
    async fn set_tenant_plan(
        &self,
        id: TenantId,
        plan: &tenantd_core::tenant::PlanId,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let pending = self.pending(Some(id));
        let r = self.inner.set_tenant_plan(id, plan, outbox).await;
        pending.done();
        r
    }
    async fn claim_purge(
        &self,
        id: TenantId,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.inner.claim_purge(id, seen, until).await
    }
}

/// Role changes and removals alter what a member's credentials grant.
#[async_trait]
impl MemberStore for InvalidatingCatalog {
    async fn find_user(&self, id: UserId) -> Result<Option<User>> {
        self.inner.find_user(id).await
    }
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.inner.find_user_by_email(email).await
    }
    async fn set_user_last_tenant(&self, user: UserId, tenant: TenantId) -> Result<()> {
        self.inner.set_user_last_tenant(user, tenant).await
    }
    async fn find_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>> {
        self.inner.find_membership(tenant, user).await
    }
    async fn list_user_memberships(&self, user: UserId) -> Result<Vec<Membership>> {
        self.inner.list_user_memberships(user).await
    }
    async fn list_members(&self, tenant: TenantId) -> Result<Vec<Membership>> {
        self.inner.list_members(tenant).await
    }
    async fn update_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        outbox: Vec<AuditDraft>,
    ) -> Result<Membership> {
        let pending = self.pending(Some(tenant));
        let r = self
            .inner
            .update_member_role(tenant, user, role, outbox)
            .await;
        pending.done();
        r
    }
    async fn remove_member(
        &self,
        tenant: TenantId,
        user: UserId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let pending = self.pending(Some(tenant));
        let r = self.inner.remove_member(tenant, user, outbox).await;
        pending.done();
        r
    }
    async fn users_used(&self, tenant: TenantId) -> Result<i64> {
        self.inner.users_used(tenant).await
    }
    async fn create_invitation(
        &self,
        inv: NewInvitation,
        limit: Option<i64>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Invitation> {
        self.inner.create_invitation(inv, limit, outbox).await
    }
    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>> {
        self.inner.list_invitations(tenant).await
    }
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        self.inner.revoke_invitation(tenant, id, outbox).await
    }
    async fn put_password_setup(
        &self,
        tenant: TenantId,
        user: UserId,
        token_hash: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.inner
            .put_password_setup(tenant, user, token_hash, expires_at)
            .await
    }
    async fn use_password_setup(
        &self,
        token_hash: &str,
        password_hash: &str,
        outbox: tenantd_core::store::SetupEvents,
    ) -> Result<(UserId, TenantId)> {
        self.inner
            .use_password_setup(token_hash, password_hash, outbox)
            .await
    }
    async fn find_pending_invitation(&self, token_hash: &str) -> Result<Option<Invitation>> {
        self.inner.find_pending_invitation(token_hash).await
    }
    async fn accept_invitation(
        &self,
        id: InvitationId,
        joiner: Joiner,
        session: NewSession,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        // A new membership and a new session: nothing resolved before can depend on them.
        self.inner
            .accept_invitation(id, joiner, session, outbox)
            .await
    }
}

/// Revoked keys and sessions, spent refresh families and changed passwords end credentials.
#[async_trait]
impl CredentialStore for InvalidatingCatalog {
    async fn create_api_key(&self, key: NewApiKey, outbox: Vec<AuditDraft>) -> Result<ApiKey> {
        self.inner.create_api_key(key, outbox).await
    }
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>> {
        self.inner.list_api_keys(tenant).await
    }
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let pending = self.pending(Some(tenant));
        let r = self.inner.revoke_api_key(tenant, id, outbox).await;
        pending.done();
        r
    }
    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        self.inner.find_api_key_by_hash(key_hash).await
    }
    async fn create_session(&self, session: NewSession, outbox: Vec<AuditDraft>) -> Result<()> {
        self.inner.create_session(session, outbox).await
    }
    async fn rotate_refresh(
        &self,
        token_hash: &str,
        next: NewRefreshToken,
    ) -> Result<RefreshOutcome> {
        // A reuse revokes the access tokens minted from the stolen token (`gen`); which
        // tenant is known only afterwards, so a cancelled call drops everything.
        let pending = self.pending(None);
        let r = self.inner.rotate_refresh(token_hash, next).await;
        match &r {
            Ok(RefreshOutcome::Reused(s)) => pending.done_with(Some(s.tenant_id)),
            _ => pending.done_with(None),
        }
        r
    }
    async fn find_session(&self, id: SessionId) -> Result<Option<Session>> {
        self.inner.find_session(id).await
    }
    async fn find_session_context(&self, id: SessionId) -> Result<Option<SessionContext>> {
        self.inner.find_session_context(id).await
    }
    async fn find_refresh_session(&self, token_hash: &str) -> Result<Option<Session>> {
        self.inner.find_refresh_session(token_hash).await
    }
    async fn revoke_session(&self, id: SessionId, outbox: Vec<AuditDraft>) -> Result<()> {
        let tenant = self.inner.find_session(id).await?.map(|s| s.tenant_id);
        let pending = self.pending(tenant);
        let r = self.inner.revoke_session(id, outbox).await;
        pending.done();
        r
    }
    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: SessionId,
        outbox: Vec<AuditDraft>,
    ) -> Result<Vec<TenantId>> {
        // The user's sessions may be in any tenant: until the change returns, any of them.
        let pending = self.pending(None);
        let r = self
            .inner
            .change_password(user, password_hash, keep, outbox)
            .await;
        match &r {
            Ok(tenants) => {
                pending.done_with(None);
                for t in tenants {
                    self.changed(Some(*t));
                }
            }
            Err(_) => pending.done(),
        }
        r
    }
}

/// Signing keys and the outbox pass through: no resolved credential depends on them (the key
/// ring reloads itself).
#[async_trait]
impl SigningKeyStore for InvalidatingCatalog {
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.inner.list_signing_keys().await
    }
    async fn insert_signing_key(
        &self,
        key: SigningKeyRecord,
        retire_others_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.inner.insert_signing_key(key, retire_others_at).await
    }
    async fn reseal_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        self.inner.reseal_signing_key(kid, old, new).await
    }
}

/// A move's freeze and switch change the tenant's status and cell: dropped at once.
#[async_trait]
impl MoveRecordStore for InvalidatingCatalog {
    async fn insert_move(&self, m: &MoveRecord) -> Result<()> {
        self.inner.insert_move(m).await
    }
    async fn latest_move(&self, tenant: TenantId) -> Result<Option<MoveRecord>> {
        self.inner.latest_move(tenant).await
    }
    async fn update_move(&self, m: &MoveRecord) -> Result<()> {
        self.inner.update_move(m).await
    }
    async fn lease_move(&self, id: &str, runner: &str, until: &str, now: &str) -> Result<bool> {
        self.inner.lease_move(id, runner, until, now).await
    }
    async fn release_move(&self, id: &str, runner: &str) -> Result<()> {
        self.inner.release_move(id, runner).await
    }
    async fn open_moves(&self) -> Result<Vec<(MoveRecord, Option<String>)>> {
        self.inner.open_moves().await
    }
    async fn claim_cell(
        &self,
        cell: &tenantd_core::tenant::CellName,
        tenant: TenantId,
    ) -> Result<()> {
        self.inner.claim_cell(cell, tenant).await
    }
    async fn release_cell(
        &self,
        cell: &tenantd_core::tenant::CellName,
        tenant: TenantId,
    ) -> Result<()> {
        self.inner.release_cell(cell, tenant).await
    }
    async fn move_status(&self, m: &MoveRecord, status: TenantStatus) -> Result<()> {
        let pending = self.pending(Some(m.tenant_id));
        let r = self.inner.move_status(m, status).await;
        pending.done();
        r
    }
    async fn switch_move(
        &self,
        m: &MoveRecord,
        region: Option<&str>,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let pending = self.pending(Some(m.tenant_id));
        let r = self.inner.switch_move(m, region, outbox).await;
        pending.done();
        r
    }
}

/// A copy's inserts and removals change accounts and memberships: every credential of the
/// tenant is dropped (a removal also drops accounts, hence everything).
#[async_trait]
impl CopyStore for InvalidatingCatalog {
    fn copy_tables(&self) -> &'static [Table] {
        self.inner.copy_tables()
    }
    async fn copy_snapshot(&self, scope: &TenantScope) -> Result<Box<dyn CopySnapshot>> {
        self.inner.copy_snapshot(scope).await
    }
    async fn copy_insert(
        &self,
        scope: &TenantScope,
        parts: Vec<(&'static Table, Vec<Row>)>,
    ) -> Result<()> {
        let pending = self.pending(Some(scope.tenant_id()));
        let r = self.inner.copy_insert(scope, parts).await;
        pending.done();
        r
    }
    async fn copy_counts(&self, scope: &TenantScope) -> Result<Counts> {
        self.inner.copy_counts(scope).await
    }
    async fn copy_remove(&self, scope: &TenantScope, accounts: Accounts) -> Result<Counts> {
        let pending = self.pending(None);
        let r = self.inner.copy_remove(scope, accounts).await;
        pending.done();
        r
    }
}

#[async_trait]
impl OutboxStore for InvalidatingCatalog {
    async fn pending_outbox(&self, limit: u32) -> Result<Vec<AuditDraft>> {
        self.inner.pending_outbox(limit).await
    }
    async fn delete_outbox(&self, ids: &[EventId]) -> Result<()> {
        self.inner.delete_outbox(ids).await
    }
}
