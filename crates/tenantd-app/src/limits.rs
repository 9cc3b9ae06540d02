//! Per-(tenant, action) rate limits: GCRA buckets from the `governor` crate, in process.
//!
//! Each bucket holds the tenant plan's per-minute allowance as its burst and refills
//! smoothly; a plan change replaces the bucket. One tenant's bucket never touches another's.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tenantd_core::ids::TenantId;

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
/// The buckets by key (`<tenant>:<action>`, or an address or account for sign-in
/// throttling), each with the allowance it was made for.
type Buckets = HashMap<String, (u32, Arc<Bucket>)>;

/// What a check reports, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct RateInfo {
    /// The allowance per minute.
    pub limit: u32,
    /// What is left of it now.
    pub remaining: u32,
    /// Seconds until the allowance is whole again.
    pub reset: u64,
    /// When refused: seconds until the next request may pass.
    pub retry_after: Option<u64>,
}

/// The in-process limiter.
pub struct Limiter {
    buckets: Mutex<Buckets>,
    clock: DefaultClock,
    /// Past this many keys the map is cleared (a spray of distinct keys cannot grow memory
    /// without bound; the cost is a fresh allowance for everyone at that moment).
    max_keys: usize,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::with_max_keys(usize::MAX)
    }
}

impl Limiter {
    /// A limiter that keeps at most `max_keys` buckets.
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            buckets: Mutex::default(),
            clock: DefaultClock::default(),
            max_keys,
        }
    }

    /// Drops the tenant's buckets; how many.
    pub fn forget(&self, tenant: TenantId) -> usize {
        let prefix = format!("{tenant}:");
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|k, _| !k.starts_with(&prefix));
        before - map.len()
    }

    /// Takes one request from the tenant's bucket for `action`, allowing `per_minute`.
    pub fn check(&self, tenant: TenantId, action: &'static str, per_minute: u32) -> RateInfo {
        self.check_key(&format!("{tenant}:{action}"), per_minute)
    }

    /// Takes one request from the bucket of `key`, allowing `per_minute`.
    pub fn check_key(&self, key: &str, per_minute: u32) -> RateInfo {
        let Some(n) = NonZeroU32::new(per_minute) else {
            return RateInfo {
                limit: 0,
                remaining: 0,
                reset: 60,
                retry_after: Some(60),
            };
        };
        let bucket = {
            let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= self.max_keys && !map.contains_key(key) {
                map.clear();
            }
            let entry = map
                .entry(key.to_owned())
                .or_insert_with(|| (per_minute, new_bucket(n)));
            if entry.0 != per_minute {
                *entry = (per_minute, new_bucket(n));
            }
            entry.1.clone()
        };
        let per_token_ms = 60_000 / u64::from(per_minute).max(1);
        match bucket.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = (u64::from(per_minute - remaining) * per_token_ms).div_ceil(1000);
                RateInfo {
                    limit: per_minute,
                    remaining,
                    reset,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let retry = wait.as_millis().div_ceil(1000).max(1) as u64;
                RateInfo {
                    limit: per_minute,
                    remaining: 0,
                    reset: 60,
                    retry_after: Some(retry),
                }
            }
        }
    }
}

fn new_bucket(n: NonZeroU32) -> Arc<Bucket> {
    Arc::new(
        RateLimiter::direct(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>(),
    )
}

/// The GCRA of [`Limiter`] as one atomic Redis script, so every API node draws from the same
/// bucket. Time is Redis's own (`TIME`), so nodes with drifting clocks still agree.
/// Returns `{allowed, retry_after_ms, remaining, reset_ms}`.
const GCRA_LUA: &str = r#"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local new_tat = tat + t
local allow_at = new_tat - period
if now_ms < allow_at then
  return {0, math.ceil(allow_at - now_ms), 0, math.ceil(tat - now_ms)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now_ms) + 1000)
return {1, 0, math.floor((now_ms - allow_at) / t), math.ceil(new_tat - now_ms)}
"#;

/// How long one Redis check may take before the node falls back to its own buckets.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a node without a Redis connection tries to make one.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

struct Shared {
    client: redis::Client,
    conn: Arc<tokio::sync::RwLock<Option<redis::aio::ConnectionManager>>>,
    last_attempt: Mutex<Option<Instant>>,
    script: redis::Script,
    /// Redis did not answer: checks use this node's buckets, with no Redis round trip, until
    /// the background probe hears it again.
    down: Arc<AtomicBool>,
    /// The first failure since the last success: Redis failing for [`DOWN_AFTER`] with no
    /// success between is taken for down (a timeout among successes under load is not).
    failing_since: Arc<Mutex<Option<Instant>>>,
}

/// How long Redis must fail, with no success between, to be taken for down.
const DOWN_AFTER: Duration = Duration::from_secs(1);

/// How often the probe asks a Redis that stopped answering.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Per-(tenant, action) rate limits: shared through Redis when `redis_url` is set, in process
/// otherwise. When Redis does not answer, each node falls back to its own buckets — never to
/// "no limit" — counts the fallback, and reports itself degraded until Redis answers again.
pub struct RateLimits {
    local: Limiter,
    shared: Option<Shared>,
    fallbacks: AtomicU64,
    limited: AtomicU64,
    last_failure: Mutex<Option<Instant>>,
}

impl RateLimits {
    /// In-process limits only.
    pub fn local() -> Self {
        Self {
            local: Limiter::default(),
            shared: None,
            fallbacks: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        }
    }

    /// Limits shared through the Redis at `url` (checked for form now, connected lazily).
    pub fn redis(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?;
        Ok(Self {
            shared: Some(Shared {
                client,
                conn: Arc::default(),
                last_attempt: Mutex::new(None),
                script: redis::Script::new(GCRA_LUA),
                down: Arc::default(),
                failing_since: Arc::default(),
            }),
            ..Self::local()
        })
    }

    /// Whether limits are meant to be shared (a `redis_url` is configured).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether Redis is known to be down, or the last few seconds saw a fall back to
    /// in-process buckets.
    pub fn degraded(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        shared.down.load(Ordering::Acquire)
            || self
                .last_failure
                .lock()
                .map(|l| l.is_some_and(|t| t.elapsed() < Duration::from_secs(5)))
                .unwrap_or(true)
    }

    /// How many checks fell back to in-process buckets.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// How many requests were refused.
    pub fn refused(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Redis did not answer: from now on checks skip it, and a background task probes it
    /// every second until it answers (then the next check uses it again).
    fn mark_down(shared: &Shared) {
        if shared.down.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("redis does not answer; rate limits use this node's buckets until it does");
        let (client, down, conn, failing) = (
            shared.client.clone(),
            shared.down.clone(),
            shared.conn.clone(),
            shared.failing_since.clone(),
        );
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let answered = tokio::time::timeout(REDIS_TIMEOUT * 2, async {
                    let mut c = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<String>(&mut c).await
                })
                .await;
                if matches!(answered, Ok(Ok(_))) {
                    // A fresh connection for the next check: the old one may be half-open.
                    *conn.write().await = None;
                    if let Ok(mut l) = failing.lock() {
                        *l = None;
                    }
                    down.store(false, Ordering::Release);
                    tracing::info!("redis answers again; rate limits are shared again");
                    return;
                }
            }
        });
    }

    /// Takes one request from the tenant's bucket for `action`.
    pub async fn check(&self, tenant: TenantId, action: &'static str, per_minute: u32) -> RateInfo {
        let info = match &self.shared {
            Some(shared) if per_minute > 0 && shared.down.load(Ordering::Acquire) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.local.check(tenant, action, per_minute)
            }
            Some(shared) if per_minute > 0 => {
                match self.check_redis(shared, tenant, action, per_minute).await {
                    Ok(info) => info,
                    Err(e) => {
                        self.fallbacks.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = self.last_failure.lock() {
                            *l = Some(Instant::now());
                        }
                        tracing::debug!(error = %e, "redis rate limit unavailable; using this node's buckets");
                        let failing_long = shared
                            .failing_since
                            .lock()
                            .map(|mut l| l.get_or_insert_with(Instant::now).elapsed() >= DOWN_AFTER)
                            .unwrap_or(true);
                        if failing_long {
                            Self::mark_down(shared);
                        }
                        self.local.check(tenant, action, per_minute)
                    }
                }
            }
            _ => self.local.check(tenant, action, per_minute),
        };
        if info.retry_after.is_some() {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        info
    }

    async fn connection(&self, shared: &Shared) -> Result<redis::aio::ConnectionManager, String> {
        if let Some(c) = shared.conn.read().await.as_ref() {
            return Ok(c.clone());
        }
        {
            let mut last = shared.last_attempt.lock().map_err(|_| "lock".to_owned())?;
            if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                return Err("no connection to redis yet".into());
            }
            *last = Some(Instant::now());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            REDIS_TIMEOUT * 4,
            redis::aio::ConnectionManager::new_with_config(shared.client.clone(), config),
        )
        .await
        .map_err(|_| "redis connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        *shared.conn.write().await = Some(c.clone());
        Ok(c)
    }

    /// Removes the tenant's buckets (at its purge): this node's, and its keys in Redis
    /// (`SCAN` by the tenant's prefix, then `UNLINK`); how many Redis keys went.
    pub async fn forget(&self, tenant: TenantId) -> Result<u64, String> {
        self.local.forget(tenant);
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        let mut conn = self.connection(shared).await?;
        let pattern = format!("tenantd:rl:{tenant}:*");
        let (mut cursor, mut removed) = (0u64, 0u64);
        loop {
            let (next, keys): (u64, Vec<String>) = tokio::time::timeout(
                REDIS_TIMEOUT * 4,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await
            .map_err(|_| "redis timed out".to_owned())?
            .map_err(|e| e.to_string())?;
            if !keys.is_empty() {
                let n: u64 = tokio::time::timeout(
                    REDIS_TIMEOUT * 4,
                    redis::cmd("UNLINK").arg(&keys).query_async(&mut conn),
                )
                .await
                .map_err(|_| "redis timed out".to_owned())?
                .map_err(|e| e.to_string())?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn check_redis(
        &self,
        shared: &Shared,
        tenant: TenantId,
        action: &'static str,
        per_minute: u32,
    ) -> Result<RateInfo, String> {
        let mut conn = self.connection(shared).await?;
        let mut inv = shared.script.key(format!("tenantd:rl:{tenant}:{action}"));
        inv.arg(60_000u64).arg(per_minute);
        let (allowed, retry_ms, remaining, reset_ms): (i64, i64, i64, i64) =
            tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async(&mut conn))
                .await
                .map_err(|_| "redis timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        if let Ok(mut l) = self.last_failure.lock() {
            *l = None;
        }
        if let Ok(mut l) = shared.failing_since.lock() {
            *l = None;
        }
        let secs = |ms: i64| (ms.max(0) as u64).div_ceil(1000);
        Ok(RateInfo {
            limit: per_minute,
            remaining: remaining.clamp(0, i64::from(per_minute)) as u32,
            reset: secs(reset_ms),
            retry_after: (allowed == 0).then(|| secs(retry_ms).max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_its_allowance_then_refuses_with_retry_after() {
        let l = Limiter::default();
        let t = TenantId::new();
        let admitted = (0..130)
            .filter(|_| l.check(t, "api_requests", 100).retry_after.is_none())
            .count();
        assert_eq!(admitted, 100);
        let refused = l.check(t, "api_requests", 100);
        assert!(refused.retry_after.is_some_and(|s| s >= 1));
        // A neighbour is untouched.
        let other = l.check(TenantId::new(), "api_requests", 100);
        assert_eq!((other.retry_after, other.remaining), (None, 99));
    }
}
