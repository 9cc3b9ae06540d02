//! The store traits. `tenantd-store` implements them for SQLite (and PostgreSQL); the server
//! holds them as `Arc<dyn CatalogStore>` / `Arc<dyn CellStore>`.
//!
//! Methods that change something take the audit events of that change and commit them in
//! the same transaction: in a cell they join the tenant's hash chain directly, in the catalog
//! they go to the outbox that the relay moves into the tenant's chain.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::Role;
use crate::audit::{AuditDraft, AuditEvent, AuditFilter};
use crate::error::Result;
use crate::identity::{
    ApiKey, Invitation, Membership, NewInvitation, NewRefreshToken, NewUser, RefreshOutcome,
    Session, User,
};
use crate::ids::{
    ApiKeyId, EventId, FileId, InvitationId, ResourceId, SessionId, TenantId, UserId,
};
use crate::resource::{
    FileMeta, ListQuery, NewFile, NewResource, Resource, ResourceKind, ResourcePatch,
};
use crate::tenant::{NewTenant, Tenant, TenantPatch, TenantScope, TenantStatus};

mod copy;
mod runs;
pub use copy::{
    Accounts, Catchup, Column, CopySnapshot, CopyStore, Counts, Kind, MoveRecord, MoveRecordStore,
    MoveStore, Row, Table, Value,
};
pub use runs::{LeaseStore, RunStore};

/// Who owns a tenant being created.
#[derive(Debug, Clone)]
pub enum TenantOwner {
    /// A new user (signup, bootstrap).
    NewUser(NewUser),
    /// A user that exists already.
    Existing(UserId),
    /// Nobody yet: an invitation with role `owner` (counted in `users`).
    Invite(NewInvitation),
}

/// Who accepts an invitation.
#[derive(Debug, Clone)]
pub enum Joiner {
    /// An existing user (who proved their password).
    Existing(UserId),
    /// A new user.
    New(NewUser),
}

/// A login session about to be created, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its id.
    pub id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The first refresh token of the family.
    pub refresh: NewRefreshToken,
}

/// An API key about to be stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The visible prefix.
    pub prefix: String,
    /// sha256 of the key, hex.
    pub key_hash: String,
    /// Who made it.
    pub created_by: Option<UserId>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token-signing key as stored: the Ed25519 seed and public key.
#[derive(Clone)]
pub struct SigningKeyRecord {
    /// The `kid`.
    pub kid: String,
    /// The private key as stored: sealed under the master key (the server seals and opens it;
    /// the store never sees it in clear, except a key from before sealing, sealed at start).
    pub private_key: Vec<u8>,
    /// The 32-byte public key.
    pub public_key: Vec<u8>,
    /// Creation time; the newest live key signs.
    pub created_at: DateTime<Utc>,
    /// After this, the key no longer verifies (set when it is rotated out).
    pub verify_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The control plane: tenants, users, memberships, invitations, keys, sessions, placements —
/// one database, reached through five capabilities, so code that needs one names only it
/// (the signing-key ring takes a [`SigningKeyStore`], the relay an [`OutboxStore`]) and the
/// server's credential-cache decorator wraps only the three whose changes alter a resolved
/// credential ([`TenantStore`], [`MemberStore`], [`CredentialStore`]).
#[async_trait]
pub trait CatalogStore:
    TenantStore
    + MemberStore
    + CredentialStore
    + SigningKeyStore
    + OutboxStore
    + CopyStore
    + MoveRecordStore
    + 'static
{
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
}

/// Tenants: lookup, creation with their owner, settings, status and plan.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// A tenant by id.
    async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>>;
    /// A tenant by slug.
    async fn find_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>>;
    /// Tenants ordered by id, after `after`.
    async fn list_tenants(&self, after: Option<TenantId>, limit: u32) -> Result<Vec<Tenant>>;
    /// Creates a tenant, its owner (or owner invitation) and optionally a session.
    /// `users` starts at 1. Slug taken → `Conflict{slug}`; email taken → `Conflict{email}`.
    async fn create_tenant(
        &self,
        tenant: NewTenant,
        owner: TenantOwner,
        session: Option<NewSession>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant>;
    /// Changes name, settings or branding.
    async fn update_tenant(
        &self,
        id: TenantId,
        patch: TenantPatch,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant>;
    /// Changes the status (suspend, reactivate, delete).
    async fn set_tenant_status(
        &self,
        id: TenantId,
        status: TenantStatus,
        reason: Option<String>,
        purge_after: Option<DateTime<Utc>>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant>;
    /// Changes the plan.
    async fn set_tenant_plan(
        &self,
        id: TenantId,
        plan: &crate::tenant::PlanId,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant>;
    /// Claims a deleted tenant's purge: moves its `purge_after` from `seen` to `until` if it
    /// is still deleted and still `seen` (one node of several wins; a purge that dies is due
    /// again at `until`).
    async fn claim_purge(
        &self,
        id: TenantId,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
}

/// Users, memberships and invitations (the `users` quota lives here).
#[async_trait]
pub trait MemberStore: Send + Sync {
    /// A user by id.
    async fn find_user(&self, id: UserId) -> Result<Option<User>>;
    /// A user by (normalised) email.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Remembers the tenant a user last logged into.
    async fn set_user_last_tenant(&self, user: UserId, tenant: TenantId) -> Result<()>;

    /// One membership.
    async fn find_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>>;
    /// A user's memberships, oldest first.
    async fn list_user_memberships(&self, user: UserId) -> Result<Vec<Membership>>;
    /// A tenant's members, oldest first.
    async fn list_members(&self, tenant: TenantId) -> Result<Vec<Membership>>;
    /// Changes a role; demoting the last owner → `Conflict{role}`.
    async fn update_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        outbox: Vec<AuditDraft>,
    ) -> Result<Membership>;
    /// Removes a member, revokes their sessions in the tenant and frees a `users` slot;
    /// removing the last owner → `Conflict{user_id}`.
    async fn remove_member(
        &self,
        tenant: TenantId,
        user: UserId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()>;
    /// Members plus pending, unexpired invitations (the `users` quota's usage).
    async fn users_used(&self, tenant: TenantId) -> Result<i64>;

    /// Stores an invitation if `users` has room under `limit` (expired ones are released
    /// first); full → `QuotaExceeded`.
    async fn create_invitation(
        &self,
        inv: NewInvitation,
        limit: Option<i64>,
        outbox: Vec<AuditDraft>,
    ) -> Result<Invitation>;
    /// A tenant's invitations, newest first.
    async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>>;
    /// Revokes a pending invitation and frees its slot.
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()>;
    /// Gives `user` (a member of `tenant` with no password) a one-time password link: its
    /// token's hash and expiry. Its earlier links stop working.
    async fn put_password_setup(
        &self,
        tenant: TenantId,
        user: UserId,
        token_hash: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()>;
    /// Uses a password link once: sets its account's password, which must still have none,
    /// and queues the records `outbox` makes for that account and tenant; them. Used, expired or unknown →
    /// `NotFound`.
    async fn use_password_setup(
        &self,
        token_hash: &str,
        password_hash: &str,
        outbox: SetupEvents,
    ) -> Result<(UserId, TenantId)>;
    /// A pending, unexpired invitation by token hash.
    async fn find_pending_invitation(&self, token_hash: &str) -> Result<Option<Invitation>>;
    /// Accepts a pending invitation exactly once: makes the membership (and the user) and a
    /// session. Already used, revoked or expired → `NotFound`; already a member → `Conflict`.
    async fn accept_invitation(
        &self,
        id: InvitationId,
        joiner: Joiner,
        session: NewSession,
        outbox: Vec<AuditDraft>,
    ) -> Result<()>;
}

/// The audit records of a password link's use, made once its account and tenant are known.
pub type SetupEvents = Box<dyn FnOnce(UserId, TenantId) -> Vec<AuditDraft> + Send>;

/// API keys, sessions, refresh-token families and passwords.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Stores an API key.
    async fn create_api_key(&self, key: NewApiKey, outbox: Vec<AuditDraft>) -> Result<ApiKey>;
    /// A tenant's keys (revoked ones included).
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>>;
    /// Revokes a key.
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()>;
    /// A key by hash.
    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>>;

    /// Creates a session and its first refresh token.
    async fn create_session(&self, session: NewSession, outbox: Vec<AuditDraft>) -> Result<()>;
    /// Spends a refresh token and stores the next one; a spent token revokes its family.
    async fn rotate_refresh(
        &self,
        token_hash: &str,
        next: NewRefreshToken,
    ) -> Result<RefreshOutcome>;
    /// A session.
    async fn find_session(&self, id: SessionId) -> Result<Option<Session>>;
    /// What an access token's request path needs, in one read: the session, the user's live
    /// role in the session's tenant, and that tenant. `None` when any of them is gone.
    async fn find_session_context(&self, id: SessionId) -> Result<Option<(Session, Role, Tenant)>>;
    /// The session a refresh token belongs to, without spending it.
    async fn find_refresh_session(&self, token_hash: &str) -> Result<Option<Session>>;
    /// Revokes a session and its refresh tokens.
    async fn revoke_session(&self, id: SessionId, outbox: Vec<AuditDraft>) -> Result<()>;
    /// Sets a user's password hash and ends every session of theirs but `keep` (their access
    /// and refresh tokens stop working), in one transaction. Returns the tenants of the
    /// sessions it ended.
    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: SessionId,
        outbox: Vec<AuditDraft>,
    ) -> Result<Vec<TenantId>>;
}

/// The token-signing keys (sealed private keys, public keys, rotation).
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every signing key.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Adds a signing key; the others stop verifying after `retire_others_at`.
    async fn insert_signing_key(
        &self,
        key: SigningKeyRecord,
        retire_others_at: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// Replaces a key's stored private key `old` by `new` (sealing a clear one); `false`
    /// when it no longer is `old` (another process sealed it first).
    async fn reseal_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool>;
}

/// The audit outbox: events of catalog changes, waiting for the relay to chain them.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Audit events waiting for the relay, oldest first.
    async fn pending_outbox(&self, limit: u32) -> Result<Vec<AuditDraft>>;
    /// Drops relayed events.
    async fn delete_outbox(&self, ids: &[EventId]) -> Result<()>;
}

/// A data-plane database: tenant-owned resources, files, quota counters and audit chains,
/// reached through three capabilities. Every method takes the [`TenantScope`] it acts in.
#[async_trait]
pub trait CellStore:
    ResourceStore
    + FileStore
    + AuditStore
    + EventStore
    + WebhookStore
    + RunStore
    + LeaseStore
    + MoveStore
    + 'static
{
    /// The cell's name.
    fn name(&self) -> &str;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;

    /// The tenant's quota counters in this cell.
    async fn counters(&self, scope: &TenantScope) -> Result<BTreeMap<String, i64>>;
}

/// Resources and their sharing.
/// Every method takes the [`TenantScope`] it acts in.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Creates a resource if its kind's counter has room under `limit`; full →
    /// `QuotaExceeded`; name taken → `Conflict{name}`.
    async fn create_resource(
        &self,
        scope: &TenantScope,
        new: NewResource,
        limit: Option<i64>,
        audit: AuditDraft,
    ) -> Result<Resource>;
    /// A resource the tenant owns or that is shared with it.
    async fn get_resource(
        &self,
        scope: &TenantScope,
        kind: ResourceKind,
        id: ResourceId,
    ) -> Result<Resource>;
    /// A page of resources the tenant owns or that are shared with it, ordered by id.
    async fn list_resources(
        &self,
        scope: &TenantScope,
        kind: ResourceKind,
        q: &ListQuery,
    ) -> Result<Vec<Resource>>;
    /// Changes a resource the tenant owns; wrong `if_version` → `PreconditionFailed`.
    async fn update_resource(
        &self,
        scope: &TenantScope,
        kind: ResourceKind,
        id: ResourceId,
        patch: ResourcePatch,
        audit: AuditDraft,
    ) -> Result<Resource>;
    /// Deletes a resource the tenant owns and frees its counter slot.
    async fn delete_resource(
        &self,
        scope: &TenantScope,
        kind: ResourceKind,
        id: ResourceId,
        audit: AuditDraft,
    ) -> Result<()>;
}

/// File records and upload reservations (the bytes are in the object store).
/// Every method takes the [`TenantScope`] it acts in.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Reserves a file's bytes against `storage_bytes` (full → `QuotaExceeded`) and records
    /// it as pending, noting the reservation until `expires_at` (past it, no request can
    /// still be storing the blob, so [`CellStore::unscoped_expired_uploads`] finds it).
    async fn reserve_file(
        &self,
        scope: &TenantScope,
        new: &NewFile,
        limit: Option<i64>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// Marks a reserved file stored, with its audit event.
    async fn complete_file(
        &self,
        scope: &TenantScope,
        id: FileId,
        audit: AuditDraft,
    ) -> Result<FileMeta>;
    /// Drops a reservation whose blob could not be stored, releasing its bytes.
    async fn abort_file(&self, scope: &TenantScope, id: FileId) -> Result<()>;
    /// Reservations past their deadline, in every tenant of the cell: what killed processes
    /// left. Ids only (no tenant data); each is released through [`CellStore::abort_file`]
    /// in its tenant's scope.
    async fn unscoped_expired_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(TenantId, FileId)>>;
    /// A stored file of the tenant.
    async fn get_file(&self, scope: &TenantScope, id: FileId) -> Result<FileMeta>;
    /// A page of the tenant's stored files, by id.
    async fn list_files(
        &self,
        scope: &TenantScope,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileMeta>>;
    /// Deletes a stored file's record and releases its bytes; the caller removes the blob.
    async fn delete_file(
        &self,
        scope: &TenantScope,
        id: FileId,
        audit: AuditDraft,
    ) -> Result<FileMeta>;
}

/// Each tenant's hash-chained audit trail.
/// Every method takes the [`TenantScope`] it acts in.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events to the tenant's chain, skipping ids already there (the relay's
    /// retries are idempotent).
    async fn append_audit(&self, scope: &TenantScope, events: Vec<AuditDraft>) -> Result<()>;
    /// A page of events, by `seq`.
    async fn list_audit(
        &self,
        scope: &TenantScope,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>>;
    /// The whole chain in `seq` order and the recorded head (`seq`, `hash`).
    async fn audit_chain(
        &self,
        scope: &TenantScope,
    ) -> Result<(Vec<AuditEvent>, Option<(i64, String)>)>;
}

/// Each tenant's event log. Events are appended by the cell itself, derived from the audit
/// events a change appends in its transaction (see `tenantd_core::events`); this capability
/// reads them, takes the relay's copies of lifecycle events into the platform's log, and
/// prunes what is past retention.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// A page of the scope's log, in `seq` order.
    async fn list_events(
        &self,
        scope: &TenantScope,
        filter: &crate::events::EventFilter,
    ) -> Result<Vec<crate::events::Event>>;
    /// Appends events to the scope's log (each `log` must be the scope's tenant), skipping
    /// ids already there.
    async fn append_events(
        &self,
        scope: &TenantScope,
        events: Vec<crate::events::EventDraft>,
    ) -> Result<()>;
    /// Deletes events that occurred before `before`, in every log of the cell (the retention
    /// job). Returns how many.
    async fn unscoped_prune_events(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Webhook endpoints and their deliveries. Deliveries are made by the cell when it appends an
/// event (one per matching active endpoint of the log's tenant, in that transaction); the
/// delivery job finds due ones across tenants by id (`unscoped_*`), claims each, and reads and
/// records it in its tenant's scope.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores an endpoint.
    async fn create_endpoint(
        &self,
        scope: &TenantScope,
        new: crate::webhooks::NewEndpoint,
    ) -> Result<crate::webhooks::Endpoint>;
    /// The tenant's endpoints.
    async fn list_endpoints(&self, scope: &TenantScope) -> Result<Vec<crate::webhooks::Endpoint>>;
    /// One endpoint with its sealed secrets; another tenant's is `NotFound`.
    async fn endpoint_keys(
        &self,
        scope: &TenantScope,
        id: crate::ids::WebhookId,
    ) -> Result<crate::webhooks::EndpointKeys>;
    /// Changes an endpoint (the whole new state).
    async fn update_endpoint(
        &self,
        scope: &TenantScope,
        endpoint: &crate::webhooks::Endpoint,
    ) -> Result<crate::webhooks::Endpoint>;
    /// Deletes an endpoint and its deliveries.
    async fn delete_endpoint(&self, scope: &TenantScope, id: crate::ids::WebhookId) -> Result<()>;
    /// A new sealed secret; the old one keeps signing until `old_until`.
    async fn rotate_secret(
        &self,
        scope: &TenantScope,
        id: crate::ids::WebhookId,
        sealed: Vec<u8>,
        old_until: DateTime<Utc>,
    ) -> Result<()>;
    /// An endpoint's deliveries, newest first.
    async fn list_deliveries(
        &self,
        scope: &TenantScope,
        id: crate::ids::WebhookId,
        limit: u32,
    ) -> Result<Vec<crate::webhooks::Delivery>>;
    /// Deliveries due at `now` and not leased, across tenants, leaving out the endpoints in
    /// `busy`: ids only, oldest due first.
    async fn unscoped_due_deliveries(
        &self,
        now: DateTime<Utc>,
        busy: &[crate::ids::WebhookId],
        limit: u32,
    ) -> Result<Vec<(TenantId, crate::ids::DeliveryId, crate::ids::WebhookId)>>;
    /// Leases those of `ids` still due and unleased until `until`; the ones leased (another
    /// node's are not among them).
    async fn unscoped_claim_deliveries(
        &self,
        ids: &[crate::ids::DeliveryId],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<crate::ids::DeliveryId>>;
    /// A delivery with its body and its endpoint, in one snapshot.
    async fn pending_attempt(
        &self,
        scope: &TenantScope,
        id: crate::ids::DeliveryId,
    ) -> Result<crate::webhooks::PendingAttempt>;
    /// Records an attempt: a success ends the delivery, a failure schedules the next attempt
    /// or ends it, and disables the endpoint when it has failed since before
    /// `disable_before`. Returns whether the endpoint was disabled by this attempt. A delivery
    /// deleted meanwhile (its endpoint was) records nothing.
    async fn record_attempt(
        &self,
        scope: &TenantScope,
        record: &crate::webhooks::AttemptRecord,
    ) -> Result<bool>;
    /// A delivery of a test event (`body`, not in the log) to one endpoint, due at once.
    async fn create_test_delivery(
        &self,
        scope: &TenantScope,
        endpoint: crate::ids::WebhookId,
        event: crate::ids::EventId,
        body: String,
    ) -> Result<crate::ids::DeliveryId>;
    /// Deliveries waiting in the cell's queue, across tenants (for `/metrics`).
    async fn unscoped_delivery_backlog(&self) -> Result<i64>;
    /// Makes a delivery due again now (an operator's retry); `endpoint`, when given, must be
    /// the delivery's (else `NotFound`).
    async fn retry_delivery(
        &self,
        scope: &TenantScope,
        endpoint: Option<crate::ids::WebhookId>,
        id: crate::ids::DeliveryId,
    ) -> Result<()>;
}
