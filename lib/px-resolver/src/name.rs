//! Query name checks shared by every resolver type.
//!
//! A name handed to a resolver is either an IP literal (answered at once for
//! the matching family) or a domain: ASCII letters, digits, `-` and `_` in
//! dot-separated labels of 1 to 63 characters, 253 characters at most, one
//! trailing dot allowed. Domains are lower-cased so `Example.COM.` and
//! `example.com` share one cache entry. Internationalized names must arrive in
//! their punycode (`xn--`) form. `localhost` and names under it are answered
//! with loopback addresses without asking any server (RFC 6761).
//!
//! No keys: this module has no configuration.

use std::net::IpAddr;

use px_core::{AddrFamily, ResolveError};

/// A checked query name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryName {
    /// An IP literal: no query needed.
    Ip(IpAddr),
    /// `localhost` or a name under it: loopback, never sent to DNS (RFC 6761 §6.3).
    Localhost,
    /// A normalized domain (lower case, no trailing dot).
    Domain(String),
}

/// Checks and normalizes a name; `InvalidName` when it cannot be a domain.
pub(crate) fn parse(name: &str) -> Result<QueryName, ResolveError> {
    let name = name.trim();
    let bare = name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(QueryName::Ip(ip));
    }
    let domain = name.strip_suffix('.').unwrap_or(name);
    if domain.is_empty() || domain.len() > 253 {
        return Err(ResolveError::InvalidName);
    }
    for label in domain.split('.') {
        let ok_len = !label.is_empty() && label.len() <= 63;
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_len || !ok_chars {
            return Err(ResolveError::InvalidName);
        }
    }
    let domain = domain.to_ascii_lowercase();
    if domain == "localhost" || domain.ends_with(".localhost") {
        return Ok(QueryName::Localhost);
    }
    Ok(QueryName::Domain(domain))
}

/// The loopback answer for `localhost` names.
pub(crate) fn localhost_answer(family: AddrFamily) -> Vec<IpAddr> {
    match family {
        AddrFamily::Ipv4 => vec![IpAddr::from([127, 0, 0, 1])],
        AddrFamily::Ipv6 => vec![IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])],
    }
}

/// The answer for an IP literal: itself when the family matches, else no address.
pub(crate) fn ip_answer(ip: IpAddr, family: AddrFamily) -> Result<Vec<IpAddr>, ResolveError> {
    match (ip, family) {
        (IpAddr::V4(_), AddrFamily::Ipv4) | (IpAddr::V6(_), AddrFamily::Ipv6) => Ok(vec![ip]),
        _ => Err(ResolveError::NotFound(ip.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn localhost_never_goes_to_dns() {
        assert_eq!(parse("localhost"), Ok(QueryName::Localhost));
        assert_eq!(parse("App.LocalHost."), Ok(QueryName::Localhost));
        assert_eq!(
            parse("localhost.example"),
            Ok(QueryName::Domain("localhost.example".into()))
        );
        assert_eq!(
            localhost_answer(AddrFamily::Ipv6),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn domains_are_normalized() {
        assert_eq!(
            parse("Example.COM.").unwrap(),
            QueryName::Domain("example.com".into())
        );
        assert_eq!(
            parse("_srv.a-b.test").unwrap(),
            QueryName::Domain("_srv.a-b.test".into())
        );
    }

    #[test]
    fn ip_literals_pass_through() {
        let ip: IpAddr = "::1".parse().unwrap();
        assert_eq!(parse("[::1]").unwrap(), QueryName::Ip(ip));
        assert_eq!(ip_answer(ip, AddrFamily::Ipv6).unwrap(), vec![ip]);
        assert!(matches!(
            ip_answer(ip, AddrFamily::Ipv4),
            Err(ResolveError::NotFound(_))
        ));
    }

    #[test]
    fn bad_names_are_rejected() {
        for bad in [
            "",
            ".",
            "a..b",
            "a b.com",
            "é.com",
            &"a".repeat(64),
            &"a.".repeat(130),
        ] {
            assert_eq!(parse(bad), Err(ResolveError::InvalidName), "{bad:?}");
        }
    }
}
