//! Request targets (RFC 9112 §3.2) and the authorities they name.
//!
//! A forward proxy sees three forms: absolute-form `http://host:port/path?q` for ordinary requests,
//! authority-form `host:port` (also `[v6]:port`) for CONNECT, and origin-form `/path` when a client
//! treats the proxy as the origin, in which case the `Host` header names the target. `*` (asterisk-form)
//! is kept for `OPTIONS *`. Domains are lower-cased in [`Host`] for filtering and lookup; the text the
//! client wrote is kept for the `Host` header a proxy forwards.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::method::Method;

/// Longest domain name accepted (RFC 1035 allows 253 characters plus an optional final dot).
const MAX_DOMAIN_LEN: usize = 255;

/// The host part of an authority.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A registered name, lower-cased.
    Domain(String),
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A host and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Authority {
    /// The host.
    pub host: Host,
    /// The port (never 0).
    pub port: u16,
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Authority {
    /// Parses `host[:port]`, `[v6][:port]`; `default_port` is used when the port is absent or empty.
    pub fn parse(s: &str, default_port: Option<u16>) -> Result<Self, &'static str> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or("unterminated IPv6 literal")?;
            let ip: Ipv6Addr = v6.parse().map_err(|_| "invalid IPv6 literal")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("garbage after IPv6 literal")?),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            };
            (parse_host(host)?, port)
        };
        let port = match port {
            None | Some("") => default_port.ok_or("missing port")?,
            Some(p) => parse_port(p)?,
        };
        Ok(Self { host, port })
    }
}

/// Parses a reg-name or an IPv4 literal.
fn parse_host(s: &str) -> Result<Host, &'static str> {
    if s.is_empty() {
        return Err("empty host");
    }
    if s.len() > MAX_DOMAIN_LEN {
        return Err("host name too long");
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s
            .parse::<Ipv4Addr>()
            .map(|a| Host::Ip(IpAddr::V4(a)))
            .map_err(|_| "invalid IPv4 literal");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err("invalid character in host name");
    }
    Ok(Host::Domain(s.to_ascii_lowercase()))
}

/// Parses a decimal port in 1..=65535.
fn parse_port(s: &str) -> Result<u16, &'static str> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid port");
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err("invalid port"),
        Ok(p) => Ok(p),
    }
}

/// The scheme of an absolute-form target, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
    /// Any other scheme (`ftp`, `ws`, ...), lower-cased.
    Other(String),
}

impl Scheme {
    /// Parses and lower-cases a scheme (RFC 3986 §3.1 syntax).
    fn parse(s: &str) -> Result<Self, &'static str> {
        let mut bytes = s.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err("invalid scheme");
        }
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "http" => Self::Http,
            "https" => Self::Https,
            _ => Self::Other(lower),
        })
    }

    /// The scheme's well-known port, if it has one.
    pub fn default_port(&self) -> Option<u16> {
        match self {
            Self::Http => Some(80),
            Self::Https => Some(443),
            Self::Other(s) => match s.as_str() {
                "ws" => Some(80),
                "wss" => Some(443),
                "ftp" => Some(21),
                _ => None,
            },
        }
    }

    /// The scheme as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Other(s) => s,
        }
    }
}

/// An absolute-form target split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsoluteUri {
    /// The scheme.
    pub scheme: Scheme,
    /// Host and port (the scheme's default port when none was written).
    pub authority: Authority,
    /// The authority as the client wrote it, without user info: the value of a forwarded `Host`.
    pub host_text: String,
    /// User info before `@`, if the client sent any (deprecated for http; never forwarded).
    pub userinfo: Option<String>,
    /// Path and query, `/` when empty; any fragment is dropped.
    pub path_and_query: String,
}

/// A parsed request-target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestTarget {
    /// `/path?query`: the target is named by the `Host` header.
    Origin(String),
    /// `scheme://authority/path?query`.
    Absolute(AbsoluteUri),
    /// `host:port`, only with CONNECT.
    Authority(Authority),
    /// `*`, only with OPTIONS.
    Asterisk,
}

impl RequestTarget {
    /// Parses a request-target for the given method.
    pub fn parse(method: &Method, s: &str) -> Result<Self, &'static str> {
        if *method == Method::Connect {
            return Authority::parse(s, None).map(Self::Authority);
        }
        if s == "*" {
            return Ok(Self::Asterisk);
        }
        if s.starts_with('/') {
            return Ok(Self::Origin(strip_fragment(s).to_owned()));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or("unrecognised request-target form")?;
        let scheme = Scheme::parse(scheme)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (auth_text, tail) = rest.split_at(end);
        let (userinfo, host_text) = match auth_text.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, auth_text),
        };
        let authority = Authority::parse(host_text, scheme.default_port())?;
        let tail = strip_fragment(tail);
        let path_and_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(Self::Absolute(AbsoluteUri {
            scheme,
            authority,
            host_text: host_text.to_owned(),
            userinfo,
            path_and_query,
        }))
    }
}

/// Drops a `#fragment`, which clients must not send but some do.
fn strip_fragment(s: &str) -> &str {
    s.split_once('#').map_or(s, |(a, _)| a)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dom(d: &str, port: u16) -> Authority {
        Authority {
            host: Host::Domain(d.into()),
            port,
        }
    }

    #[test]
    fn authority_forms() {
        assert_eq!(
            Authority::parse("Example.COM:443", None),
            Ok(dom("example.com", 443))
        );
        assert_eq!(
            Authority::parse("[::1]:8080", None).unwrap().host,
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(Authority::parse("[::1]", Some(80)).unwrap().port, 80);
        assert_eq!(
            Authority::parse("1.2.3.4:1", None).unwrap().to_string(),
            "1.2.3.4:1"
        );
        assert_eq!(
            Authority::parse("[2001:db8::1]:1", None)
                .unwrap()
                .to_string(),
            "[2001:db8::1]:1"
        );
        assert_eq!(Authority::parse("a:", Some(80)), Ok(dom("a", 80)));
        for bad in [
            "",
            ":80",
            "a",
            "a:0",
            "a:65536",
            "a:+1",
            "a:8x",
            "::1:80",
            "[::1",
            "[zz]:1",
            "[::1]x",
            "a b:1",
            "a/b:1",
            "1.2.3.400:1",
            "a@b:1",
        ] {
            assert!(Authority::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn absolute_form() {
        let t = RequestTarget::parse(&Method::Get, "HTTP://User:pw@Example.com:8080/a/b?x=1#frag")
            .unwrap();
        let RequestTarget::Absolute(u) = t else {
            unreachable!()
        };
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.authority, dom("example.com", 8080));
        assert_eq!(u.host_text, "Example.com:8080");
        assert_eq!(u.userinfo.as_deref(), Some("User:pw"));
        assert_eq!(u.path_and_query, "/a/b?x=1");

        let RequestTarget::Absolute(u) = RequestTarget::parse(&Method::Get, "http://h?q").unwrap()
        else {
            unreachable!()
        };
        assert_eq!((u.authority.port, u.path_and_query.as_str()), (80, "/?q"));
        let RequestTarget::Absolute(u) =
            RequestTarget::parse(&Method::Get, "https://[::1]").unwrap()
        else {
            unreachable!()
        };
        assert_eq!((u.authority.port, u.path_and_query.as_str()), (443, "/"));
        assert!(RequestTarget::parse(&Method::Get, "gopher://h/").is_err());
        assert!(RequestTarget::parse(&Method::Get, "gopher://h:70/").is_ok());
        assert!(RequestTarget::parse(&Method::Get, "1http://h/").is_err());
        assert!(RequestTarget::parse(&Method::Get, "http:///x").is_err());
    }

    #[test]
    fn other_forms() {
        assert_eq!(
            RequestTarget::parse(&Method::Get, "/p?q#f"),
            Ok(RequestTarget::Origin("/p?q".into()))
        );
        assert_eq!(
            RequestTarget::parse(&Method::Options, "*"),
            Ok(RequestTarget::Asterisk)
        );
        assert_eq!(
            RequestTarget::parse(&Method::Connect, "h:443"),
            Ok(RequestTarget::Authority(dom("h", 443)))
        );
        assert!(RequestTarget::parse(&Method::Connect, "h").is_err());
        assert!(RequestTarget::parse(&Method::Connect, "http://h:1/").is_err());
        assert!(RequestTarget::parse(&Method::Get, "h:80").is_err());
    }
}
