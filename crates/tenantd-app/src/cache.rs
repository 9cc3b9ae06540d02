//! The request path's per-node cache of resolved credentials, and its invalidation.
//!
//! A request's credential resolves to a session (or API key), the live role and the tenant.
//! This node keeps that resolution for `auth_cache_ttl_ms`, keyed by session id or key hash.
//! Every entry depends on one tenant's rows only (its status and plan, its memberships, its
//! sessions and keys), so invalidation is by tenant:
//!
//! - [`InvalidatingCatalog`] wraps the catalog: every change that can alter a resolution bumps
//!   that tenant's generation on this node *after* the change commits, and announces it on the
//!   Redis channel [`CHANNEL`];
//! - [`subscribe`] applies the other nodes' announcements (and drops everything when it
//!   (re)connects, since it may have missed some);
//! - the TTL bounds whatever is left: an announcement lost while Redis was away, a change made
//!   by the CLI on a machine without `redis_url`.
//!
//! An entry is stored only if no invalidation at all happened while it was being read, so a
//! read that raced a change is used once and never cached. Entries carry the generation of
//! their tenant's stripe; a bump of the stripe makes them misses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenantd_core::Result;
use tenantd_core::access::Role;
use tenantd_core::audit::AuditDraft;
use tenantd_core::identity::{
    ApiKey, Invitation, Membership, NewInvitation, NewRefreshToken, RefreshOutcome, Session, User,
};
use tenantd_core::ids::{ApiKeyId, EventId, InvitationId, SessionId, TenantId, UserId};
use tenantd_core::store::{
    CatalogStore, Joiner, NewApiKey, NewSession, SigningKeyRecord, TenantOwner,
};
use tenantd_core::tenant::{NewTenant, Tenant, TenantPatch, TenantStatus};

use crate::auth::keys::Claims;

/// The Redis channel on which nodes announce changed tenants (payload: a tenant id, or `*`).
pub const CHANNEL: &str = "tenantd:invalidate";

/// The budget of each resolution cache, in (estimated) bytes.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// An entry's estimated size: the fixed part plus its tenant's JSON objects.
fn weight(t: &Tenant) -> u32 {
    let json = |v: &serde_json::Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    (1024 + json(&t.settings) + json(&t.branding)).min(u32::MAX as usize) as u32
}

/// Invalidation stripes: tenants hash onto them; a bump invalidates every tenant of a stripe.
const STRIPES: usize = 4096;

/// A session's resolution: the session, the user's live role and the tenant.
pub type SessionContext = (Session, Role, Tenant);

/// An API key's resolution: the key, its tenant, and its creator's live role there (`None`
/// for a key without a creator; a creator who left makes the key unresolvable).
#[derive(Debug, Clone)]
pub struct KeyContext {
    /// The key.
    pub key: ApiKey,
    /// Its tenant.
    pub tenant: Tenant,
    /// The live role of the user who made it, when it has a creator.
    pub creator_role: Option<Role>,
}

struct Entry<T> {
    value: Arc<T>,
    tenant: TenantId,
    generation: u64,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            tenant: self.tenant,
            generation: self.generation,
        }
    }
}

/// The per-node cache of resolved credentials.
pub struct AuthCache {
    enabled: bool,
    sessions: moka::sync::Cache<SessionId, Entry<SessionContext>>,
    /// Access tokens whose signature verified, by sha256 of the token: the claims and until
    /// when the verdict holds (expiry or the key's retirement). A pure function of the bytes
    /// and the key ring, so nothing but time invalidates it.
    verified: moka::sync::Cache<[u8; 32], (Arc<Claims>, i64)>,
    keys: moka::sync::Cache<String, Entry<KeyContext>>,
    stripes: Box<[AtomicU64]>,
    /// Bumped by every invalidation: a read that saw it move is not cached.
    changes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

impl AuthCache {
    /// A cache whose entries live at most `ttl` (zero: no caching at all).
    pub fn new(ttl: Duration) -> Self {
        let ttl_or_1ms = ttl.max(Duration::from_millis(1));
        Self {
            enabled: !ttl.is_zero(),
            // Weighed by bytes: a tenant's settings and branding may hold up to 64 KiB each,
            // and every session of that tenant holds its own copy.
            sessions: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, e: &Entry<SessionContext>| weight(&e.value.2))
                .time_to_live(ttl_or_1ms)
                .build(),
            keys: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, e: &Entry<KeyContext>| weight(&e.value.tenant))
                .time_to_live(ttl_or_1ms)
                .build(),
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl_or_1ms)
                .build(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            changes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    fn stripe(&self, tenant: TenantId) -> &AtomicU64 {
        let b = tenant.0.as_bytes();
        // The low bytes of a UUIDv7 are random.
        let i = u16::from_le_bytes([b[14], b[15]]) as usize % STRIPES;
        &self.stripes[i]
    }

    /// Forgets every resolution that depends on `tenant`.
    pub fn invalidate_tenant(&self, tenant: TenantId) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.stripe(tenant).fetch_add(1, Ordering::SeqCst);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        for s in self.stripes.iter() {
            s.fetch_add(1, Ordering::SeqCst);
        }
        self.sessions.invalidate_all();
        self.keys.invalidate_all();
        self.verified.invalidate_all();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn fresh<T>(&self, e: &Entry<T>) -> bool {
        self.stripe(e.tenant).load(Ordering::SeqCst) == e.generation
    }

    /// `(hits, misses, invalidations)` so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.invalidations.load(Ordering::Relaxed),
        )
    }

    /// The claims of an access token, from the cache of verified tokens or from `verify`
    /// (which returns them with the time, in seconds since the epoch, until which they hold).
    pub fn verified_token(
        &self,
        token: &str,
        verify: impl FnOnce() -> Result<(Claims, i64)>,
    ) -> Result<Arc<Claims>> {
        if !self.enabled {
            return verify().map(|(c, _)| Arc::new(c));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = tenantd_core::time::now().timestamp();
        if let Some((claims, until)) = self.verified.get(&digest)
            && now < until
        {
            return Ok(claims);
        }
        let (claims, until) = verify()?;
        let claims = Arc::new(claims);
        self.verified.insert(digest, (claims.clone(), until));
        Ok(claims)
    }

    /// The session's resolution, from the cache or from `load`.
    pub async fn session<F>(&self, id: SessionId, load: F) -> Result<Option<Arc<SessionContext>>>
    where
        F: Future<Output = Result<Option<SessionContext>>>,
    {
        self.resolve(&self.sessions, id, |v| v.2.id, load).await
    }

    /// The API key's resolution (by key hash), from the cache or from `load`.
    pub async fn key<F>(&self, key_hash: &str, load: F) -> Result<Option<Arc<KeyContext>>>
    where
        F: Future<Output = Result<Option<KeyContext>>>,
    {
        self.resolve(&self.keys, key_hash.to_owned(), |v| v.tenant.id, load)
            .await
    }

    async fn resolve<K, T, F>(
        &self,
        cache: &moka::sync::Cache<K, Entry<T>>,
        key: K,
        tenant_of: impl Fn(&T) -> TenantId,
        load: F,
    ) -> Result<Option<Arc<T>>>
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        T: Send + Sync + 'static,
        F: Future<Output = Result<Option<T>>>,
    {
        if self.enabled
            && let Some(e) = cache.get(&key)
            && self.fresh(&e)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(e.value));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let before = self.changes.load(Ordering::SeqCst);
        let Some(v) = load.await? else {
            return Ok(None);
        };
        let v = Arc::new(v);
        if let Some(e) = self.entry(before, tenant_of(&v), &v) {
            cache.insert(key, e);
        }
        Ok(Some(v))
    }

    /// An entry for a value read since `before`, unless something was invalidated meanwhile.
    fn entry<T>(&self, before: u64, tenant: TenantId, v: &Arc<T>) -> Option<Entry<T>> {
        if !self.enabled {
            return None;
        }
        let generation = self.stripe(tenant).load(Ordering::SeqCst);
        (self.changes.load(Ordering::SeqCst) == before).then(|| Entry {
            value: v.clone(),
            tenant,
            generation,
        })
    }
}

/// Announces invalidations to the other nodes through Redis.
pub struct Announcer {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    failures: AtomicU64,
}

/// How often a subscribed node checks that its channel still answers.
const PING_EVERY: Duration = Duration::from_secs(5);

/// How long an announcement may take; past it the other nodes rely on their TTL.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

impl Announcer {
    /// An announcer on the Redis at `url` (connected lazily).
    pub fn new(url: &str) -> std::result::Result<Self, String> {
        Ok(Self {
            client: redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?,
            conn: tokio::sync::Mutex::new(None),
            failures: AtomicU64::new(0),
        })
    }

    /// Announcements that could not be sent.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    async fn publish(&self, payload: String) {
        let sent: std::result::Result<(), String> = async {
            // The lock only hands out the (multiplexed) connection; sends run concurrently.
            let mut conn = {
                let mut slot = self.conn.lock().await;
                match slot.as_ref() {
                    Some(c) => c.clone(),
                    None => {
                        let c = tokio::time::timeout(
                            PUBLISH_TIMEOUT,
                            self.client.get_multiplexed_async_connection(),
                        )
                        .await
                        .map_err(|_| "connect timed out".to_owned())?
                        .map_err(|e| e.to_string())?;
                        *slot = Some(c.clone());
                        c
                    }
                }
            };
            tokio::time::timeout(
                PUBLISH_TIMEOUT,
                redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(&payload)
                    .query_async::<i64>(&mut conn),
            )
            .await
            .map_err(|_| "publish timed out".to_owned())?
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = sent {
            *self.conn.lock().await = None;
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "could not announce a cache invalidation through redis; other nodes rely on their cache TTL");
        }
    }
}

/// Applies the other nodes' announcements to `cache` until the process ends: reconnects
/// after a failure, and drops everything on each (re)connection, since announcements may have
/// been missed while it was away. `subscribed` says whether it is listening now.
pub async fn subscribe(url: String, cache: Arc<AuthCache>, subscribed: Arc<AtomicBool>) {
    use futures_util::StreamExt;
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    loop {
        let started = Instant::now();
        let connected =
            tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await;
        match connected.unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis connect timed out",
            )))
        }) {
            Ok(mut pubsub) => {
                if pubsub.subscribe(CHANNEL).await.is_ok() {
                    subscribed.store(true, Ordering::SeqCst);
                    cache.invalidate_all();
                    let (mut sink, mut messages) = pubsub.split();
                    let mut tick = tokio::time::interval(PING_EVERY);
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            msg = messages.next() => {
                                let Some(msg) = msg else { break };
                                let payload: String = msg.get_payload().unwrap_or_default();
                                match TenantId::parse(&payload, "tenant") {
                                    Ok(t) => cache.invalidate_tenant(t),
                                    Err(_) => cache.invalidate_all(),
                                }
                            }
                            _ = tick.tick() => {
                                // A half-open connection delivers nothing and reports nothing:
                                // ask, and reconnect if Redis does not answer.
                                let alive = tokio::time::timeout(
                                    Duration::from_secs(2),
                                    sink.ping::<redis::Value>(),
                                )
                                .await;
                                if !matches!(alive, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                }
                subscribed.store(false, Ordering::SeqCst);
                cache.invalidate_all();
                tracing::warn!("lost the redis invalidation channel; reconnecting");
            }
            Err(e) => {
                subscribed.store(false, Ordering::SeqCst);
                tracing::debug!(error = %e, "redis invalidation channel unavailable");
            }
        }
        if started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

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
        plan: &str,
        outbox: Vec<AuditDraft>,
    ) -> Result<Tenant> {
        let pending = self.pending(Some(id));
        let r = self.inner.set_tenant_plan(id, plan, outbox).await;
        pending.done();
        r
    }
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
    async fn pending_outbox(&self, limit: u32) -> Result<Vec<AuditDraft>> {
        self.inner.pending_outbox(limit).await
    }
    async fn delete_outbox(&self, ids: &[EventId]) -> Result<()> {
        self.inner.delete_outbox(ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(tenant: TenantId) -> KeyContext {
        let now = tenantd_core::time::now();
        KeyContext {
            key: ApiKey {
                id: ApiKeyId::new(),
                tenant_id: tenant,
                name: "k".into(),
                role: Role::Member,
                prefix: "tdk_x".into(),
                created_by: None,
                created_at: now,
                expires_at: None,
                revoked_at: None,
            },
            tenant: Tenant {
                id: tenant,
                slug: "t".into(),
                name: "T".into(),
                kind: tenantd_core::tenant::TenantType::Client,
                plan: "free".into(),
                status: TenantStatus::Active,
                status_reason: None,
                region: None,
                cell: "default".into(),
                settings: serde_json::json!({}),
                branding: serde_json::json!({}),
                created_at: now,
                updated_at: now,
                deleted_at: None,
                purge_after: None,
            },
            creator_role: None,
        }
    }

    #[tokio::test]
    async fn a_resolution_is_reused_until_its_tenant_is_invalidated() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let (a, b) = (TenantId::new(), TenantId::new());
        let load = |t| async move { Ok(Some(ctx(t))) };
        cache.key("ka", load(a)).await.unwrap();
        cache.key("kb", load(b)).await.unwrap();
        let gone = || async { panic!("should have come from the cache") };
        cache.key("ka", gone()).await.unwrap();
        assert_eq!(cache.stats().0, 1);
        cache.invalidate_tenant(a);
        // a's entry is a miss now; b's (on another stripe, almost surely) is not affected
        // unless both hash onto one stripe.
        let reloaded = cache.key("ka", async { Ok(None) }).await.unwrap();
        assert!(
            reloaded.is_none(),
            "an invalidated entry must be read again"
        );
        if cache.stripe(a).as_ptr() != cache.stripe(b).as_ptr() {
            cache.key("kb", gone()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_read_that_raced_a_change_is_used_once_and_not_kept() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let a = TenantId::new();
        let c = &cache;
        let v = cache
            .key("ka", async move {
                // The change commits (and invalidates) while this read is in flight.
                c.invalidate_tenant(a);
                Ok(Some(ctx(a)))
            })
            .await
            .unwrap();
        assert!(v.is_some());
        let again = cache.key("ka", async { Ok(None) }).await.unwrap();
        assert!(again.is_none(), "the raced read must not have been cached");
    }

    #[test]
    fn a_verified_token_is_reused_only_for_the_same_bytes_and_until_its_verdict_ends() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let now = tenantd_core::time::now().timestamp();
        let claims = |sub: &str| Claims {
            sub: sub.into(),
            tid: String::new(),
            role: "owner".into(),
            sid: String::new(),
            iss: "tenantd".into(),
            aud: "tenantd".into(),
            exp: now + 60,
            iat: now,
            jti: String::new(),
            r#gen: 0,
        };
        let a = cache
            .verified_token("token-a", || Ok((claims("a"), now + 60)))
            .unwrap();
        assert_eq!(a.sub, "a");
        let again = cache
            .verified_token("token-a", || panic!("should come from the cache"))
            .unwrap();
        assert_eq!(again.sub, "a");
        // Other bytes are verified on their own, and their failure is not cached.
        let bad = cache.verified_token("token-b", || {
            Err(tenantd_core::Error::Unauthenticated("invalid access token"))
        });
        assert!(bad.is_err());
        // A verdict that has ended (expiry, or the key's retirement) is verified again.
        cache
            .verified_token("token-c", || Ok((claims("c"), now - 1)))
            .unwrap();
        let refused = cache.verified_token("token-c", || {
            Err(tenantd_core::Error::Unauthenticated("invalid access token"))
        });
        assert!(refused.is_err());
    }

    #[tokio::test]
    async fn a_zero_ttl_caches_nothing() {
        let cache = AuthCache::new(Duration::ZERO);
        let a = TenantId::new();
        cache
            .key("ka", async move { Ok(Some(ctx(a))) })
            .await
            .unwrap();
        assert!(cache.key("ka", async { Ok(None) }).await.unwrap().is_none());
    }
}
