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

/// Posts a delivery. Implemented at the edge (`tenantd-server`), over a real HTTP client.
#[async_trait]
pub trait Sender: Send + Sync + 'static {
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
