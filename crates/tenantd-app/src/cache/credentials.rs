//! Resolved credentials (session or API key → tenant and live role) and verified access
//! tokens, kept per node for `auth_cache_ttl_ms`, invalidated by tenant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tenantd_core::Result;
use tenantd_core::access::Role;
use tenantd_core::identity::{ApiKey, Session};
use tenantd_core::ids::{SessionId, TenantId};
use tenantd_core::tenant::Tenant;

use crate::auth::keys::Claims;

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

#[cfg(test)]
mod tests {
    use tenantd_core::ids::ApiKeyId;
    use tenantd_core::tenant::TenantStatus;

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
                slug: tenantd_core::tenant::TenantSlug::parse("tee").expect("a slug"),
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
