//! A webhook receiver on loopback (what it saw, how it answers) and the endpoint helpers the
//! webhook tests share.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{Signed, TestApp};

/// What a receiver saw, and how it answers.
#[derive(Default)]
pub struct Seen {
    pub deliveries: Vec<(HeaderMap, Vec<u8>)>,
    /// Answer 500 to this many requests first.
    pub fail_first: usize,
    /// Never answer.
    pub hang: bool,
    /// Answer after this long.
    pub delay: Duration,
}

/// A receiver on loopback; its URL.
pub async fn receiver(seen: Arc<Mutex<Seen>>) -> String {
    receiver_on(seen, 0).await
}

/// A receiver on loopback at `port` (0: any); its URL.
pub async fn receiver_on(seen: Arc<Mutex<Seen>>, port: u16) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let (hang, fail, delay) = {
                    let mut s = seen.lock().unwrap();
                    s.deliveries.push((headers, body.to_vec()));
                    let fail = s.fail_first > 0;
                    if fail {
                        s.fail_first -= 1;
                    }
                    (s.hang, fail, s.delay)
                };
                tokio::time::sleep(delay).await;
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

pub async fn endpoint(app: &TestApp, a: &Signed, url: &str, events: Value) -> (String, String) {
    let r = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&a.token),
            Some(json!({"url": url, "events": events})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

/// Waits until `seen` holds `n` deliveries.
pub async fn wait_for(
    seen: &Arc<Mutex<Seen>>,
    n: usize,
    within: Duration,
) -> Vec<(HeaderMap, Vec<u8>)> {
    let deadline = Instant::now() + within;
    loop {
        let got = seen.lock().unwrap().deliveries.clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} deliveries arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn open_policy(c: &mut tenantd_server::config::Config) {
    c.webhook_policy = tenantd_core::net::OutboundPolicy {
        allow_http: true,
        allow_private: true,
    };
}
