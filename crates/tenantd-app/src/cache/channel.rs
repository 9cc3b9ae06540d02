//! The Redis channel on which nodes announce the tenants they changed, and hear the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tenantd_core::ids::TenantId;

use super::AuthCache;

/// The Redis channel on which nodes announce changed tenants (payload: a tenant id, or `*`).
pub const CHANNEL: &str = "tenantd:invalidate";

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

    pub(super) async fn publish(&self, payload: String) {
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
