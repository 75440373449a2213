//! Where deliveries may go. A hook URL is chosen by whoever administers hooks, but the request
//! comes from inside the registry's network, so by default it may not reach loopback, private,
//! link-local (cloud metadata), multicast or other special-purpose addresses: otherwise a hook
//! could probe and call internal services. `PACKR_WEBHOOK_ALLOWED_NETWORKS` opens chosen networks
//! (an on-premises CI, say).
//!
//! Literal addresses are checked when a hook is created and again before each attempt; host names
//! are checked after resolution, and the connection goes to the checked address itself, so a name
//! that resolves differently later (DNS rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

/// The addresses deliveries may be sent to.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allowed: Arc<[IpNet]>,
}

impl TargetPolicy {
    /// Internal addresses are refused unless one of `allowed` contains them.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: allowed.into(),
        }
    }

    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if internal_kind(ip).is_none() {
            return true;
        }
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }

    /// Why a literal address in a hook URL is refused, such as "a link-local address (cloud
    /// metadata services live there)"; `None` when it is permitted.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.permits(ip) {
            None
        } else {
            internal_kind(ip.to_canonical())
        }
    }
}

/// The address a URL host names literally, if it is one: `127.0.0.1`, `[::1]`, or one of the
/// shorthand IPv4 forms the system resolver reads as numbers without asking DNS (`127.1`,
/// `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse() {
        return Some(ip);
    }
    shorthand_ipv4(bare.strip_suffix('.').unwrap_or(bare)).map(IpAddr::V4)
}

/// Reads `inet_aton`'s forms: one to four parts in decimal, octal (`0` prefix) or hex (`0x`), the
/// last part filling the remaining bytes.
fn shorthand_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host.split('.').map(number).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|part| *part > 255) {
        return None;
    }
    let last_bits = 32 - 8 * head.len() as u32;
    if *last >= 1u64 << last_bits {
        return None;
    }
    let value = head.iter().enumerate().fold(*last, |value, (i, part)| {
        value | part << (24 - 8 * i as u32)
    });
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn number(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() || digits.len() > 11 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// What kind of internal address `ip` is, or `None` for an ordinary public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

const LOOPBACK: &str = "a loopback address";
const PRIVATE: &str = "a private-network address";
const LINK_LOCAL: &str = "a link-local address (cloud metadata services live there)";
const UNSPECIFIED: &str = "the unspecified address";
const MULTICAST: &str = "a multicast or broadcast address";
const RESERVED: &str = "a reserved special-purpose address";

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => UNSPECIFIED,
        (127, ..) => LOOPBACK,
        (10, ..) | (192, 168, _) => PRIVATE,
        (172, 16..=31, _) => PRIVATE,
        // Carrier-grade NAT (RFC 6598): inside a provider's network.
        (100, 64..=127, _) => PRIVATE,
        (169, 254, _) => LINK_LOCAL,
        (224..=239, ..) => MULTICAST,
        (255, 255, 255) if ip.is_broadcast() => MULTICAST,
        // 240/4 (future use), IETF assignments, documentation, benchmarking, 6to4 relays.
        (240..=255, ..)
        | (192, 0, 0 | 2)
        | (198, 51, 100)
        | (203, 0, 113)
        | (198, 18..=19, _)
        | (192, 88, 99) => RESERVED,
        _ => return None,
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some(UNSPECIFIED);
    }
    if ip.is_loopback() {
        return Some(LOOPBACK);
    }
    // Forms that carry an IPv4 address are judged by it (IPv4-mapped ones arrive canonical).
    if let Some(v4) = embedded_v4(ip) {
        return v4_kind(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        0xfc00..=0xfdff => PRIVATE,
        0xfe80..=0xfebf => LINK_LOCAL,
        // Site-local, deprecated but still routed inside some networks.
        0xfec0..=0xfeff => PRIVATE,
        0xff00..=0xffff => MULTICAST,
        // IPv4-compatible (::/96), NAT64 local use, discard-only, Teredo, documentation.
        0x0000 => RESERVED,
        0x0064 if s[1] == 0xff9b => RESERVED,
        0x0100 if s[1..4] == [0, 0, 0] => RESERVED,
        0x2001 if s[1] == 0 || s[1] == 0x0db8 => RESERVED,
        _ => return None,
    })
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4
/// (`2002:aabb:ccdd::`) address, which gateways forward to that IPv4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(tail(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(tail(hi, lo)),
        [0x2002, hi, lo, ..] => Some(tail(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let policy = TargetPolicy::default();
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.192",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "100::1",
        ] {
            assert!(!policy.permits(ip(text)), "{text} was permitted");
            assert!(policy.refusal(ip(text)).is_some(), "{text}");
        }
    }

    #[test]
    fn public_addresses_are_permitted() {
        let policy = TargetPolicy::default();
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
            "64:ff9b::808:808",
        ] {
            assert!(policy.permits(ip(text)), "{text} was refused");
        }
    }

    #[test]
    fn allowed_networks_open_internal_addresses_in_every_form() {
        let policy = TargetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("::1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
    }

    #[test]
    fn kinds_name_what_is_refused() {
        assert_eq!(internal_kind(ip("169.254.169.254")), Some(LINK_LOCAL));
        assert_eq!(internal_kind(ip("::ffff:127.0.0.1")), Some(LOOPBACK));
        assert_eq!(internal_kind(ip("10.0.0.1")), Some(PRIVATE));
    }

    #[test]
    fn literal_hosts_are_recognised_with_or_without_brackets() {
        assert_eq!(literal_ip("[::1]"), Some(ip("::1")));
        assert_eq!(literal_ip("10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(literal_ip("localhost"), None);
    }

    #[test]
    fn shorthand_ipv4_forms_are_read_as_the_resolver_reads_them() {
        for (host, expected) in [
            ("2130706433", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("169.254.43518", "169.254.169.254"),
            ("0xa9fea9fe", "169.254.169.254"),
            ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254"),
            ("10.0.0.1.", "10.0.0.1"),
            ("0", "0.0.0.0"),
        ] {
            assert_eq!(literal_ip(host), Some(ip(expected)), "{host}");
        }
        for host in [
            "example.com",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.16777216",
            "4294967296",
            "0x",
            "08.1.1.1",
            "1..1",
            "+1.1.1.1",
            "a.b",
            "",
        ] {
            assert_eq!(literal_ip(host), None, "{host}");
        }
    }
}
