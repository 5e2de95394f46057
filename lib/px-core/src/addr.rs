//! Target addresses as clients give them: an IP or a domain name, plus a port.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The host part of a target: an IP address or a (lower-cased) domain name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal IP address.
    Ip(IpAddr),
    /// A domain name, without a trailing dot, lower-cased.
    Domain(String),
}

impl Host {
    /// Parses a host as written in a URI authority or SOCKS request (`[::1]`, `1.2.3.4`, `name`).
    pub fn parse(s: &str) -> Option<Host> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let inner = s
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        if inner.len() != s.len() {
            // brackets around something that is not an IPv6 address
            return None;
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        if name.is_empty() || name.len() > 253 {
            return None;
        }
        let valid = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !valid {
            return None;
        }
        Some(Host::Domain(name.to_ascii_lowercase()))
    }

    /// The domain name, if this host is one.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Host::Domain(d) => Some(d),
            Host::Ip(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Domain(d) => f.write_str(d),
        }
    }
}

/// A target a client asked for: host and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamAddr {
    /// The host, IP or domain.
    pub host: Host,
    /// The TCP or UDP port.
    pub port: u16,
}

impl UpstreamAddr {
    /// Builds a target from a host and a port.
    pub fn new(host: Host, port: u16) -> Self {
        UpstreamAddr { host, port }
    }

    /// Builds a target from a socket address.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        UpstreamAddr {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// Parses `host:port`, `[v6]:port`, or `host` with `default_port` when given.
    pub fn parse(s: &str, default_port: Option<u16>) -> Option<Self> {
        let s = s.trim();
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Some(Self::from_socket_addr(sa));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest.split_once(']')?;
            let ip: IpAddr = ip.parse().ok()?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port?,
                None => return None,
            };
            return Some(UpstreamAddr::new(Host::Ip(ip), port));
        }
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port = p.parse().ok()?;
                Some(UpstreamAddr::new(Host::parse(h)?, port))
            }
            Some(_) => {
                // a bare IPv6 address without brackets
                let ip: IpAddr = s.parse().ok()?;
                Some(UpstreamAddr::new(Host::Ip(ip), default_port?))
            }
            None => Some(UpstreamAddr::new(Host::parse(s)?, default_port?)),
        }
    }

    /// The socket address, when the host is an IP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let a = UpstreamAddr::parse("Example.COM:80", None);
        assert_eq!(
            a,
            Some(UpstreamAddr::new(Host::Domain("example.com".into()), 80))
        );
        let b = UpstreamAddr::parse("[::1]:443", None);
        assert_eq!(b.map(|x| x.to_string()), Some("[::1]:443".to_string()));
        assert_eq!(
            UpstreamAddr::parse("example.com", Some(80)).map(|x| x.port),
            Some(80)
        );
        assert_eq!(UpstreamAddr::parse("example.com", None), None);
        assert_eq!(UpstreamAddr::parse("bad host:80", None), None);
        assert_eq!(UpstreamAddr::parse("[nope]:80", None), None);
        assert_eq!(
            UpstreamAddr::parse("::1", Some(1)).map(|x| x.to_string()),
            Some("[::1]:1".to_string())
        );
    }
}
