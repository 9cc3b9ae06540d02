//! Outbound requests to URLs a tenant supplies (webhook endpoints today, per-tenant SSO
//! discovery later): which URLs and which addresses tenantd may contact.
//!
//! The rule, checked at registration and again before every connection: the URL is `https`
//! (`http` only when the deployment allows it), has no credentials, and every address its
//! host resolves to is a public unicast address — not loopback, private (RFC 1918), shared
//! (CGNAT), link-local (which holds the cloud metadata service, 169.254.169.254),
//! multicast, broadcast, unspecified, reserved or documentation space, nor an IPv6 unique
//! local, link-local, site-local, multicast or mapped/translated form of a blocked IPv4
//! address. The caller connects only to an address this module approved, follows no
//! redirect, and treats a failed resolution as a refusal.
//!
//! Host spellings are normalised by the WHATWG URL parser (`url`), so `http://2130706433/`,
//! `http://0x7f.1/` and `http://0177.0.0.1/` are all `127.0.0.1` here.
//!
//! This module does no I/O: resolution is the caller's (`tenantd-app`), so the rule can be
//! tested exhaustively without a network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::FieldError;

/// What a deployment allows beyond the default (both off in production).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// `http://` URLs (tests, closed networks).
    pub allow_http: bool,
    /// Loopback and private addresses (tests).
    pub allow_private: bool,
}

/// A URL that passed the syntactic checks: what to resolve and where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as it will be requested (normalised).
    pub url: String,
    /// The host to resolve (a name, or an IP literal).
    pub host: String,
    /// The port to connect to.
    pub port: u16,
    /// The address, when the host is an IP literal (no resolution needed).
    pub literal: Option<IpAddr>,
}

/// Checks a URL's form and, when its host is an address, the address: `field` names it in
/// the error.
pub fn check_url(raw: &str, policy: OutboundPolicy, field: &str) -> Result<Target, FieldError> {
    if raw.len() > 2048 {
        return Err(FieldError::new(field, "at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| FieldError::new(field, "not a URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(FieldError::new(field, "must be https")),
        _ => return Err(FieldError::new(field, "must be an https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(field, "must not carry credentials"));
    }
    let (host, literal) = match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d.is_empty() {
                return Err(FieldError::new(field, "has no host"));
            }
            if (d == "localhost" || d.ends_with(".localhost")) && !policy.allow_private {
                return Err(FieldError::new(field, "must not point at this machine"));
            }
            (d, None)
        }
        Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
        Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
        None => return Err(FieldError::new(field, "has no host")),
    };
    if let Some(ip) = literal {
        check_address(ip, policy).map_err(|why| FieldError::new(field, why))?;
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| FieldError::new(field, "has no port"))?;
    Ok(Target {
        url: url.to_string(),
        host,
        port,
        literal,
    })
}

/// Whether tenantd may connect to `ip`; the reason when not.
pub fn check_address(ip: IpAddr, policy: OutboundPolicy) -> Result<(), &'static str> {
    match blocked(ip) {
        None => Ok(()),
        Some(_) if policy.allow_private => Ok(()),
        Some(why) => Err(why),
    }
}

/// Why an address is not a public unicast one, if it is not.
pub fn blocked(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => blocked_v4(a),
        IpAddr::V6(a) => blocked_v6(a),
    }
}

fn blocked_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, o2, _] = a.octets();
    let why = if a.is_unspecified() || o0 == 0 {
        "an unspecified address"
    } else if a.is_loopback() {
        "a loopback address"
    } else if a.is_private() {
        "a private address"
    } else if o0 == 100 && (64..128).contains(&o1) {
        "a shared (CGNAT) address"
    } else if a.is_link_local() {
        "a link-local address (where cloud metadata services live)"
    } else if a.is_multicast() {
        "a multicast address"
    } else if a.is_broadcast()
        || o0 >= 240
        || (o0, o1, o2) == (192, 0, 0)
        || (o0, o1, o2) == (192, 0, 2)
        || (o0, o1, o2) == (198, 51, 100)
        || (o0, o1, o2) == (203, 0, 113)
        || (o0, o1, o2) == (192, 88, 99)
        || (o0 == 198 && (o1 == 18 || o1 == 19))
    {
        "a reserved address"
    } else {
        return None;
    };
    Some(why)
}

fn blocked_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    // Forms that carry an IPv4 address: judged by it.
    if let Some(v4) = a.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !a.is_unspecified() && !a.is_loopback() {
        // IPv4-compatible (deprecated): ::a.b.c.d
        return blocked_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
        .or(Some("a deprecated IPv4-compatible address"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64 (64:ff9b::/96): the IPv4 address it translates to.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return blocked_v4(v4);
    }
    if s[0] == 0x2002 {
        // 6to4 (2002::/16): the IPv4 address in bits 16–48.
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return blocked_v4(v4);
    }
    let why = if a.is_unspecified() {
        "an unspecified address"
    } else if a.is_loopback() {
        "a loopback address"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a unique local address"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "a Teredo address"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "a discard-only address"
    } else {
        return None;
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: OutboundPolicy = OutboundPolicy {
        allow_http: false,
        allow_private: false,
    };

    #[test]
    fn every_private_spelling_is_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0x7f.0.0.1/",
            "https://0177.0.0.1/",
            "https://0/",
            "https://0.0.0.0/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[::127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://LOCALHOST./",
        ] {
            assert!(check_url(url, STRICT, "url").is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn public_https_urls_pass_and_the_rest_of_the_form_is_checked() {
        let t = check_url("https://hooks.example.com:8443/in?x=1", STRICT, "url").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.literal),
            ("hooks.example.com", 8443, None)
        );
        let t = check_url("https://93.184.216.34/", STRICT, "url").unwrap();
        assert_eq!(t.literal, Some("93.184.216.34".parse().unwrap()));
        assert!(check_url("https://[2606:4700::1111]/", STRICT, "url").is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad, STRICT, "url").is_err(), "{bad} was accepted");
        }
        let open = OutboundPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(check_url("http://127.0.0.1:9000/hook", open, "url").is_ok());
    }

    #[test]
    fn addresses_are_judged_whatever_their_form() {
        for ip in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"] {
            assert_eq!(blocked(ip.parse().unwrap()), None, "{ip}");
        }
        for ip in [
            "127.0.0.53",
            "10.1.2.3",
            "169.254.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "fe80::abcd",
            "198.18.0.1",
            "192.0.2.1",
        ] {
            assert!(blocked(ip.parse().unwrap()).is_some(), "{ip}");
        }
    }
}
