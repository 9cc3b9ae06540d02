//! Webhooks: the outbound guard and signing ([`outbound`]), and the delivery job
//! ([`delivery`]). Endpoints are managed by `services::webhooks`.
//!
//! The HTTP client is not here (this crate has no HTTP stack): the server hands one in as a
//! [`Sender`], which connects only to the address this module checked and follows no
//! redirect.

pub mod delivery;
pub mod outbound;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

/// The network a delivery goes out through: name resolution and posting. Implemented at the
/// edge (`tenantd-server`), over a real HTTP client.
#[async_trait]
pub trait Sender: Send + Sync + 'static {
    /// The addresses `host` resolves to (the system resolver unless overridden). Every one of
    /// them is checked by [`outbound::resolve`] before any is used.
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }

    /// POSTs `body` to `url`, connecting to `addr` only (the address the guard approved for
    /// its host), following no redirect, giving up after `timeout`. The status, or why none
    /// came.
    async fn post(
        &self,
        url: &str,
        host: &str,
        addr: SocketAddr,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, String>;
}

/// A sender for processes that never deliver (the CLI): every attempt fails, and is retried
/// by a serving node later.
pub struct NoSender;

#[async_trait]
impl Sender for NoSender {
    async fn post(
        &self,
        _: &str,
        _: &str,
        _: SocketAddr,
        _: &[(String, String)],
        _: Vec<u8>,
        _: Duration,
    ) -> Result<u16, String> {
        Err("this process does not deliver webhooks".into())
    }
}

/// Attempts made by this node since it started, by outcome (for `/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    succeeded: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl Stats {
    pub(crate) fn note(&self, ok: bool) {
        let c = if ok { &self.succeeded } else { &self.failed };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Attempts a receiver answered 2xx.
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Attempts that failed (a status, a timeout, a refused address).
    pub fn failed(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }
}
