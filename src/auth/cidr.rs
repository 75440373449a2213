//! CIDR allow-lists: the networks a token may be used from.

use std::net::IpAddr;

use ipnet::IpNet;

use super::AuthError;

/// At most this many networks per token.
const MAX_NETWORKS: usize = 64;

/// The networks a token may be used from (IPv4 and IPv6); empty means from anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(Vec<IpNet>);

/// Parses one network like `10.0.0.0/8` or `2001:db8::/32`; a bare address stands for itself
/// alone, and host bits are dropped (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_network(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .ok()
        .map(|network| network.trunc())
}

impl CidrList {
    /// Parses entries like `10.0.0.0/8` or `2001:db8::/32`; a bare address stands for itself
    /// alone. Host bits are dropped, so `10.1.2.3/8` is kept as `10.0.0.0/8`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AuthError> {
        if entries.len() > MAX_NETWORKS {
            return Err(AuthError::Invalid(format!(
                "a token may list at most {MAX_NETWORKS} networks, not {}",
                entries.len()
            )));
        }
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            let network = parse_network(entry).ok_or_else(|| {
                AuthError::Invalid(format!(
                    "`{entry}` is not a network like 10.0.0.0/8, 192.168.1.7/32 or 2001:db8::/32"
                ))
            })?;
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        Ok(Self(networks))
    }

    /// Whether no network is listed (the token works from anywhere).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request from `ip` may use the token; an unknown address is refused unless the
    /// list is empty. IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`) count as their IPv4 address.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(ip) = ip.map(|ip| ip.to_canonical()) else {
            return false;
        };
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The networks as text (`10.0.0.0/8`), as stored and shown.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_empty_list_allows_every_address_and_none() {
        let any = CidrList::default();
        assert!(any.allows(ip("10.1.2.3")));
        assert!(any.allows(None));
    }

    #[test]
    fn listed_networks_allow_only_their_addresses() {
        let list = CidrList::parse(&["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]).unwrap();
        assert!(list.allows(ip("10.200.0.1")));
        assert!(list.allows(ip("2001:db8::1")));
        assert!(list.allows(ip("192.168.1.7")));
        assert!(!list.allows(ip("192.168.1.8")));
        assert!(!list.allows(ip("127.0.0.1")));
        assert!(!list.allows(None));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let list = CidrList::parse(&["127.0.0.1/32"]).unwrap();
        assert!(list.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn entries_are_normalised_and_bad_ones_refused() {
        let list = CidrList::parse(&[" 10.1.2.3/8", "10.0.0.0/8", "::1"]).unwrap();
        assert_eq!(list.to_strings(), ["10.0.0.0/8", "::1/128"]);
        let err = CidrList::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        assert!(CidrList::parse(&["localhost"]).is_err());
    }
}
