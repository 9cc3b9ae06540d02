//! The HTTP client webhook deliveries go out through: reqwest on rustls, connecting only to the
//! address the app's guard checked (`resolve` pins the host to it, so no second DNS answer can
//! steer the connection), following no redirect, within the attempt's timeout.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tenantd_app::webhooks::Sender;

/// Posts deliveries.
pub struct HttpSender;

impl HttpSender {
    /// A sender; installs the TLS provider its clients use, if none is yet.
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self
    }
}

impl Default for HttpSender {
    fn default() -> Self {
        Self::new()
    }
}

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
        // One client per attempt: the pinned address is the client's, and an attempt's
        // connection must not be reused for another host's.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(host, addr)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("client: {e}"))?;
        let mut req = client.post(url).body(body);
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
