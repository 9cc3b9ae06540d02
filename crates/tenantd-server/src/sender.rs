//! The HTTP client webhook deliveries go out through: reqwest on rustls, connecting only to the
//! address the app's guard checked (`resolve` pins the host to it, so no second DNS answer can
//! steer the connection), following no redirect, within the attempt's timeout. A client is
//! kept per host and address, so its connections are reused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tenantd_app::webhooks::Sender;

/// Clients kept at most (one per host and checked address); past this the set starts again.
const CLIENTS: usize = 1024;

/// Posts deliveries, through one client per host and checked address (its connections are
/// kept alive between attempts to that endpoint; a client never connects elsewhere).
#[derive(Default)]
pub struct HttpSender {
    clients: Mutex<HashMap<(String, SocketAddr), reqwest::Client>>,
}

impl HttpSender {
    /// A sender; installs the TLS provider its clients use, if none is yet.
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self::default()
    }

    /// The client pinned to `addr` for `host`, built once (building one loads the platform's
    /// trust roots, far dearer than an attempt).
    fn client(&self, host: &str, addr: SocketAddr) -> Result<reqwest::Client, String> {
        let key = (host.to_owned(), addr);
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(host, addr)
            .connect_timeout(TIMEOUT_CAP)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("client: {e}"))?;
        if let Ok(mut m) = self.clients.lock() {
            if m.len() >= CLIENTS {
                m.clear();
            }
            m.insert(key, client.clone());
        }
        Ok(client)
    }
}

/// The longest a connection may take to open (an attempt's own timeout bounds it further).
const TIMEOUT_CAP: Duration = Duration::from_secs(10);

#[async_trait]
impl Sender for HttpSender {
    async fn post(
        &self,
        url: &str,
        host: &str,
        addr: SocketAddr,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> std::result::Result<u16, String> {
        let mut req = self
            .client(host, addr)?
            .post(url)
            .timeout(timeout)
            .body(body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} s", timeout.as_secs())),
            Err(e) if e.is_connect() => Err("could not connect".into()),
            Err(e) => Err(format!("request failed: {e}")),
        }
    }
}
