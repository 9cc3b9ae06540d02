//! The outbound guard at delivery time, and Standard Webhooks signatures.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenantd_core::net::{OutboundPolicy, Target, check_address, check_url};

/// Checks a URL and resolves its host, checking **every** address it resolves to (one bad
/// address refuses the URL: a resolver answering a public and a private address cannot steer
/// a request inward); the address to connect to, or why not. A resolution error refuses.
pub async fn resolve(
    net: &dyn super::Sender,
    url: &str,
    policy: OutboundPolicy,
) -> Result<(Target, SocketAddr), String> {
    let target = check_url(url, policy, "url").map_err(|e| format!("url: {}", e.message))?;
    if let Some(ip) = target.literal {
        return Ok((target.clone(), SocketAddr::new(ip, target.port)));
    }
    let addrs: Vec<SocketAddr> = net
        .lookup(&target.host, target.port)
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
    let Some(first) = addrs.first().copied() else {
        return Err(format!("{} resolves to no address", target.host));
    };
    for a in &addrs {
        check_address(a.ip(), policy)
            .map_err(|why| format!("{} resolves to {why}", target.host))?;
    }
    Ok((target, first))
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes (the form Standard
/// Webhooks gives), and those bytes.
pub fn new_secret() -> Result<(String, Vec<u8>), tenantd_core::Error> {
    let mut b = vec![0u8; 32];
    getrandom::fill(&mut b).map_err(|e| tenantd_core::Error::Internal(format!("rng: {e}")))?;
    Ok((format!("whsec_{}", STANDARD.encode(&b)), b))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under `key`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::super::NoSender;
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_after_resolution_and_literals_without_it() {
        let strict = OutboundPolicy::default();
        for url in [
            "https://localhost/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://2130706433/",
        ] {
            assert!(resolve(&NoSender, url, strict).await.is_err(), "{url}");
        }
        // A name that resolves to loopback (the resolver answers it without a network).
        let e = resolve(&NoSender, "https://localhost.:8443/x", strict)
            .await
            .unwrap_err();
        assert!(e.contains("url") || e.contains("loopback"), "{e}");
        let open = OutboundPolicy {
            allow_http: true,
            allow_private: true,
        };
        let (t, a) = resolve(&NoSender, "http://127.0.0.1:9/hook", open)
            .await
            .unwrap();
        assert_eq!((t.port, a.to_string().as_str()), (9, "127.0.0.1:9"));
    }

    #[test]
    fn the_signature_is_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
