//! The client's address: the TCP peer, or, when the peer is one of the operator's reverse proxies
//! (`PACKR_TRUSTED_PROXIES`), the address that proxy forwarded. Computed once per request by
//! [`ClientIpLayer`] and read by the rate limits, token CIDR allow-lists and the audit log alike.
//!
//! Forwarding headers are read right to left: each trusted proxy appends the address it received
//! the request from, so the rightmost address that is not a trusted proxy is the first one no
//! proxy of ours vouches for. Everything left of it was written by the client and is ignored.
//! `X-Forwarded-For` is read when present, else `Forwarded` (RFC 7239); a proxy that sets only
//! `Forwarded` must drop a client's `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;
use tower::{Layer, Service};

/// Forwarded addresses looked at, from the right; more hops than this are not a real proxy chain.
const MAX_HOPS: usize = 32;

/// The client's address, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client address of a request from `peer`: see the module documentation.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_chain(headers).into_iter().rev().take(MAX_HOPS) {
        // An entry that is no address ("unknown", an obfuscated node) came from a client the last
        // trusted hop did not name: that hop is as far as we can see.
        let Some(ip) = hop else { return client };
        client = ip.to_canonical();
        if !is_trusted(client, trusted) {
            return client;
        }
    }
    client
}

/// The forwarded addresses, left to right; `None` for an entry that is not an address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().map(|entry| parse_node(entry)).collect();
    }
    values("forwarded")
        .iter()
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then_some(value)
            })
        })
        .map(|node| node.and_then(parse_node))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, optionally quoted.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

/// Puts [`ClientIp`] on every request that came over TCP.
#[derive(Clone, Debug)]
pub struct ClientIpLayer {
    trusted: Arc<[IpNet]>,
}

impl ClientIpLayer {
    /// Trusting forwarding headers from peers in `trusted`.
    pub fn new(trusted: &[IpNet]) -> Self {
        Self {
            trusted: trusted.into(),
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> ClientIpService<S> {
        ClientIpService {
            trusted: Arc::clone(&self.trusted),
            inner,
        }
    }
}

/// The service of [`ClientIpLayer`].
#[derive(Clone, Debug)]
pub struct ClientIpService<S> {
    trusted: Arc<[IpNet]>,
    inner: S,
}

impl<S: Service<Request>> Service<Request> for ClientIpService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> S::Future {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        if let Some(peer) = peer {
            let ip = client_ip(peer, request.headers(), &self.trusted);
            request.extensions_mut().insert(ClientIp(ip));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn proxies() -> Vec<IpNet> {
        crate::config::parse_networks(["10.0.0.0/8", "fd00::/8"]).unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &spoofed, &proxies()),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("203.0.113.9"), &spoofed, &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &chain, &proxies()),
            ip("198.51.100.7")
        );
        // Several header lines are one list, in order.
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &split, &proxies()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let forwarded = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https, for=10.0.0.3"#,
        )]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &forwarded, &proxies()),
            ip("2001:db8::7")
        );
        let with_port = headers(&[("x-forwarded-for", "198.51.100.7:5000")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &with_port, &proxies()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn without_a_usable_address_the_last_trusted_hop_is_the_client() {
        let none = HeaderMap::new();
        assert_eq!(client_ip(ip("10.0.0.1"), &none, &proxies()), ip("10.0.0.1"));
        let garbage = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.0.0.9")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &garbage, &proxies()),
            ip("10.0.0.9")
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &all_trusted, &proxies()),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ipv4_mapped_peers_count_as_ipv4() {
        let chain = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &chain, &proxies()),
            ip("198.51.100.7")
        );
    }
}
