//! Where a webhook may be sent: `http` or `https` URLs whose host resolves only to public
//! addresses, unless `STOCKCART_WEBHOOK_ALLOW_PRIVATE=true`. The check runs at registration
//! (to refuse early, 422 `invalid_url`) and again in the HTTP client's resolver on every
//! connection, so the address checked is the address connected to: a DNS answer that
//! changes after registration (rebinding) cannot reach an internal address.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    Url,
};

pub const MAX_URL: usize = 2048;

/// Loopback, private, link-local, unspecified and other addresses that are not the public
/// internet (IPv4-mapped IPv6 addresses are judged by their IPv4 address).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they embed.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_internal(IpAddr::V4(std::net::Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                )));
            }
            if s[0] == 0x2002 {
                return is_internal(IpAddr::V4(std::net::Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                )));
            }
            let first = s[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Parses and checks a URL a client wants deliveries sent to; the error is for the client.
pub async fn check_url(raw: &str, allow_internal: bool) -> Result<Url, String> {
    if raw.len() > MAX_URL {
        return Err(format!("url is longer than {MAX_URL} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("url does not parse: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("url must be http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry credentials".into());
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("url has no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("the host {host:?} does not resolve"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("the host {host:?} does not resolve"));
    }
    if !allow_internal {
        if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
            return Err(format!(
                "the host resolves to {}, a loopback, private or link-local address (STOCKCART_WEBHOOK_ALLOW_PRIVATE is off)",
                bad.ip()
            ));
        }
    }
    Ok(url)
}

/// Whether a URL with an IP address for its host may be sent to (the resolver never sees those).
pub fn literal_allowed(url: &Url, allow_internal: bool) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => allow_internal || !is_internal(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => allow_internal || !is_internal(IpAddr::V6(ip)),
        _ => true,
    }
}

/// The HTTP client's resolver: resolves, then drops internal addresses (unless allowed); the
/// client connects only to what is left.
pub struct GuardedResolver {
    pub allow_internal: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_internal = self.allow_internal;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|a| allow_internal || !is_internal(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{} resolves only to internal addresses", name.as_str()).into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub fn resolver(allow_internal: bool) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { allow_internal })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_refused_for_scheme_credentials_and_internal_hosts() {
        assert!(check_url("ftp://example.com/x", true).await.is_err());
        assert!(check_url("http://user:pw@127.0.0.1/", true).await.is_err());
        assert!(check_url("http://127.0.0.1:9/hook", false).await.is_err());
        assert!(check_url("http://[::1]:9/hook", false).await.is_err());
        assert!(check_url("http://localhost:9/hook", false).await.is_err());
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
    }
}
