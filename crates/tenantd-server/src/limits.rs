//! Per-(tenant, action) rate limits: GCRA buckets from the `governor` crate, in process.
//!
//! Each bucket holds the tenant plan's per-minute allowance as its burst and refills
//! smoothly; a plan change replaces the bucket. One tenant's bucket never touches another's.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

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
