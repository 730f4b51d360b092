//! Where webhooks may go. A webhook URL is chosen by a tenant, so without these rules it would
//! let anyone with an API key make this service call internal services (cloud metadata, admin
//! ports, databases). URLs are checked when they are saved; every address a host name resolves
//! to is checked again right before connecting (see the sender in `jobs`), and redirects are
//! never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::DomainError;

pub const MAX_URL_LEN: usize = 2048;

/// The one switch: loopback targets (and plain `http` to them) for development and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_loopback: bool,
}

impl TargetPolicy {
    /// Whether a connection to `ip` is allowed; the error says why not.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if ip.is_loopback() {
            return if self.allow_loopback {
                Ok(())
            } else {
                Err(format!("{ip} is a loopback address"))
            };
        }
        match forbidden_range(ip) {
            Some(range) => Err(format!("{ip} is a {range} address")),
            None => Ok(()),
        }
    }

    /// Checks a URL as saved: absolute `https` (or `http` to a loopback address when allowed),
    /// a host, no credentials, no fragment, and no literal address outside the public internet.
    /// Host names are not resolved here: DNS answers change, so the sender checks them at each
    /// attempt.
    pub fn check_url(&self, raw: &str) -> Result<Url, DomainError> {
        let bad = |m: &str| DomainError::invalid("url", m);
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(bad("must be at most 2048 characters"));
        }
        let url = Url::parse(raw).map_err(|_| bad("must be an absolute URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain credentials"));
        }
        if url.fragment().is_some() {
            return Err(bad("must not contain a fragment"));
        }
        let host = url.host().ok_or_else(|| bad("must name a host"))?;
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        match url.scheme() {
            "https" => {}
            "http"
                if self.allow_loopback && literal.is_some_and(|ip| canonical(ip).is_loopback()) => {
            }
            "http" if self.allow_loopback && is_localhost(&host) => {}
            _ => return Err(bad("must use https")),
        }
        if let Some(ip) = literal {
            self.check_ip(ip)
                .map_err(|why| bad(&format!("must not point to an internal address ({why})")))?;
        }
        Ok(url)
    }
}

fn is_localhost(host: &Host<&str>) -> bool {
    matches!(host, Host::Domain(d) if d.eq_ignore_ascii_case("localhost"))
}

/// IPv4 addresses wrapped in IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are
/// judged as the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The name of the non-public range `ip` belongs to, if any (loopback is decided by the caller).
fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() || a >= 240 => "reserved",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (192, 0, 0) => "IETF protocol assignment",
        (198, 18..=19, _) => "benchmarking",
        _ if ip.is_documentation() => "documentation",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match first {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_multicast() => "multicast",
        _ if first & 0xfe00 == 0xfc00 => "private (unique local)",
        _ if first & 0xffc0 == 0xfe80 => "link-local",
        _ if first & 0xffc0 == 0xfec0 => "site-local",
        0x2001 if ip.segments()[1] == 0x0db8 => "documentation",
        // Teredo (2001::/32) tunnels to an IPv4 address carried in the address itself.
        0x2001 if ip.segments()[1] == 0 => "Teredo",
        // Local-use NAT64 (64:ff9b:1::/48, RFC 8215) reaches whatever IPv4 network the
        // operator's translator serves, private ones included.
        0x64 if ip.segments()[1] == 0xff9b && ip.segments()[2] == 1 => "local-use NAT64",
        // IPv4-compatible (deprecated) and 6to4 addresses embed an IPv4 address we would
        // otherwise have to judge too; nothing legitimate needs them for webhooks.
        0 => "IPv4-compatible",
        0x2002 => "6to4",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_loopback: false,
    };
    const DEV: TargetPolicy = TargetPolicy {
        allow_loopback: true,
    };

    #[test]
    fn internal_addresses_are_refused_whatever_the_policy() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(STRICT.check_ip(ip).is_err(), "{ip}");
            assert!(DEV.check_ip(ip).is_err(), "{ip}");
        }
    }

    #[test]
    fn loopback_only_when_allowed() {
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(STRICT.check_ip(ip).is_err(), "{ip}");
            assert!(DEV.check_ip(ip).is_ok(), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(STRICT.check_ip(ip.parse().unwrap()).is_ok(), "{ip}");
        }
    }

    #[test]
    fn urls_need_https_a_host_and_a_public_literal() {
        assert!(STRICT.check_url("https://hooks.example.com/in").is_ok());
        assert!(STRICT.check_url("https://93.184.216.34:8443/in").is_ok());
        for bad in [
            "http://hooks.example.com/in",
            "ftp://hooks.example.com/in",
            "hooks.example.com/in",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://10.0.0.1/in",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/",
            "https://[::ffff:192.168.0.1]/",
            "https://127.0.0.1/",
            "http://127.0.0.1:8080/",
            "http://localhost:8080/",
        ] {
            let err = STRICT.check_url(bad).unwrap_err();
            assert!(
                matches!(err, DomainError::InvalidInput { ref field, .. } if field == "url"),
                "{bad}"
            );
        }
        let long = format!("https://x.example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(STRICT.check_url(&long).is_err());
    }

    #[test]
    fn development_policy_admits_plain_http_to_loopback_only() {
        assert!(DEV.check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(DEV.check_url("http://[::1]:8080/hook").is_ok());
        assert!(DEV.check_url("http://localhost:8080/hook").is_ok());
        assert!(DEV.check_url("http://hooks.example.com/").is_err());
        assert!(DEV.check_url("http://10.0.0.1/").is_err());
        assert!(DEV.check_url("https://192.168.0.10/").is_err());
    }
}
