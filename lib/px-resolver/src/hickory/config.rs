//! Keys of the `hickory` resolver (see `doc/config/resolver/hickory.md`).
//!
//! ```yaml
//! resolver:
//!   - name: secure
//!     type: hickory
//!     server: 1.1.1.1 1.0.0.1
//!     encryption:                 # or just `encryption: dns-over-https`
//!       protocol: dns-over-tls
//!       tls_name: cloudflare-dns.com
//!     each_timeout: 3s
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use px_yaml::values::{self, parse_sockaddr};
use px_yaml::{ConfigError, MapReader, Val};
use rustls::pki_types::ServerName;

use super::tls::TlsClientConfig;
use crate::cache::CacheConfig;

/// An encrypted DNS transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// DNS over TLS (RFC 7858), port 853.
    Tls,
    /// DNS over HTTPS (RFC 8484, HTTP/2), port 443.
    Https,
    /// DNS over QUIC (RFC 9250), port 853.
    Quic,
}

/// The `encryption` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encryption {
    /// Transport.
    pub(crate) protocol: Protocol,
    /// Name to verify the server certificate against; the server IP when unset.
    pub(crate) tls_name: Option<String>,
    /// rustls client settings.
    pub(crate) tls: TlsClientConfig,
}

impl Encryption {
    /// The name the certificate of server `ip` must carry.
    pub(crate) fn server_name(&self, ip: IpAddr) -> Arc<str> {
        match &self.tls_name {
            Some(n) => Arc::from(n.as_str()),
            None => Arc::from(ip.to_string()),
        }
    }
}

/// Parsed `hickory` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HickoryConfig {
    /// Name servers, each with the port written next to it, if any.
    pub(crate) servers: Vec<(IpAddr, Option<u16>)>,
    /// Port for servers written without one.
    pub(crate) server_port: Option<u16>,
    /// Encrypted transport; plain UDP with TCP fallback when `None`.
    pub(crate) encryption: Option<Encryption>,
    /// TCP/TLS connect timeout.
    pub(crate) connect_timeout: Duration,
    /// Wait for one response.
    pub(crate) request_timeout: Duration,
    /// Attempts at one server.
    pub(crate) each_tries: usize,
    /// Bound on all attempts at one server.
    pub(crate) each_timeout: Duration,
    /// Delay before the next server is asked as well.
    pub(crate) retry_interval: Duration,
    /// Source address of queries.
    pub(crate) bind_ip: Option<IpAddr>,
    /// The common cache keys.
    pub(crate) cache: CacheConfig,
}

impl HickoryConfig {
    /// Reads every `hickory` key from the module map.
    pub(crate) fn read(map: &mut MapReader<'_>) -> Result<Self, ConfigError> {
        map.unimplemented(&["bind_interface", "tcp_misc_opts", "udp_misc_opts"])?;
        let cache = CacheConfig::read(map)?;
        let server_val = map.required("server")?;
        let mut c = HickoryConfig {
            servers: servers(&server_val)?,
            server_port: None,
            encryption: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            each_tries: 2,
            each_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            bind_ip: None,
            cache,
        };
        if let Some(v) = map.get("server_port") {
            let port: u16 = v.as_int()?;
            if port == 0 {
                return Err(v.err("server_port must not be 0"));
            }
            c.server_port = Some(port);
        }
        let top_tls_name = map.get("tls_name").map(|v| tls_name(&v)).transpose()?;
        if let Some(v) = map.get_any(&["encryption", "encrypt"]) {
            let mut e = encryption(&v)?;
            if e.tls_name.is_none() {
                e.tls_name = top_tls_name;
            }
            c.encryption = Some(e);
        } else if top_tls_name.is_some() {
            return Err(map.err("`tls_name` is only used with `encryption`"));
        }
        for (key, slot) in [
            ("connect_timeout", &mut c.connect_timeout),
            ("request_timeout", &mut c.request_timeout),
            ("each_timeout", &mut c.each_timeout),
        ] {
            if let Some(v) = map.get(key) {
                *slot = values::duration(&v)?;
                if slot.is_zero() {
                    return Err(v.err(format!("{key} must be greater than zero")));
                }
            }
        }
        if let Some(v) = map.get("retry_interval") {
            c.retry_interval = values::duration(&v)?;
        }
        if let Some(v) = map.get_any(&["each_tries", "retry_attempts"]) {
            c.each_tries = v.as_int()?;
            if c.each_tries == 0 {
                return Err(v.err("each_tries must be at least 1"));
            }
        }
        if let Some(v) = map.get("bind_ip") {
            let ip = values::ip_addr(&v)?;
            if let Some((s, _)) = c.servers.iter().find(|(s, _)| s.is_ipv4() != ip.is_ipv4()) {
                return Err(v.err(format!(
                    "bind_ip {ip} cannot reach name server {s} (other address family)"
                )));
            }
            c.bind_ip = Some(ip);
        }
        Ok(c)
    }
}

/// `ip` (or, as an extension, `ip:port`) items, space separated or a list.
fn servers(v: &Val<'_>) -> Result<Vec<(IpAddr, Option<u16>)>, ConfigError> {
    let mut out = Vec::new();
    for item in v.list() {
        let text = item.as_text()?;
        for word in text.split_whitespace() {
            let bare = word.trim_start_matches('[').trim_end_matches(']');
            let server = if let Ok(ip) = bare.parse::<IpAddr>() {
                (ip, None)
            } else {
                match parse_sockaddr(word, None) {
                    Some(sa) if word.parse::<u16>().is_err() => (sa.ip(), Some(sa.port())),
                    _ => return Err(item.err(format!("invalid name server address {word:?}"))),
                }
            };
            if server.0.is_unspecified() || server.0.is_multicast() || server.1 == Some(0) {
                return Err(item.err(format!("name server address {word:?} cannot be used")));
            }
            out.push(server);
        }
    }
    if out.is_empty() {
        return Err(v.err("no name server address given"));
    }
    Ok(out)
}

fn protocol(v: &Val<'_>, s: &str) -> Result<Option<Protocol>, ConfigError> {
    match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "dns-over-tls" | "dot" | "tls" => Ok(Some(Protocol::Tls)),
        "dns-over-https" | "doh" | "https" => Ok(Some(Protocol::Https)),
        "dns-over-quic" | "doq" | "quic" => Ok(Some(Protocol::Quic)),
        "dns-over-http/3" | "doh3" | "h3" => {
            Err(v.err("dns-over-http/3 is known to g3proxy but not implemented yet by this proxy"))
        }
        _ => Ok(None),
    }
}

fn tls_name(v: &Val<'_>) -> Result<String, ConfigError> {
    let s = v.as_text()?;
    let s = s.trim();
    ServerName::try_from(s.to_string()).map_err(|_| v.err(format!("invalid tls name {s:?}")))?;
    Ok(s.to_string())
}

/// `encryption`: a protocol name (the user guide's form), a tls name (g3proxy's
/// short form, meaning DNS over TLS), or a map with `protocol`, `tls_name`
/// and `tls_client`.
fn encryption(v: &Val<'_>) -> Result<Encryption, ConfigError> {
    if !v.is_map() {
        let text = v.as_text()?;
        if let Some(p) = protocol(v, &text)? {
            return Ok(Encryption {
                protocol: p,
                tls_name: None,
                tls: TlsClientConfig::default(),
            });
        }
        return Ok(Encryption {
            protocol: Protocol::Tls,
            tls_name: Some(tls_name(v)?),
            tls: TlsClientConfig::default(),
        });
    }
    let mut map = v.map()?;
    let mut e = Encryption {
        protocol: Protocol::Tls,
        tls_name: None,
        tls: TlsClientConfig::default(),
    };
    if let Some(pv) = map.get("protocol") {
        let text = pv.as_text()?;
        e.protocol = protocol(&pv, &text)?
            .ok_or_else(|| pv.err(format!("unknown dns encryption protocol {text:?}")))?;
    }
    if let Some(nv) = map.get("tls_name") {
        e.tls_name = Some(tls_name(&nv)?);
    }
    if let Some(tv) = map.get("tls_client") {
        e.tls = TlsClientConfig::read(&tv)?;
    }
    map.finish()?;
    Ok(e)
}

/// The socket address `ip` is queried at.
pub(crate) fn server_addr(c: &HickoryConfig, ip: IpAddr, port: Option<u16>) -> SocketAddr {
    let default = match c.encryption.as_ref().map(|e| e.protocol) {
        None => 53,
        Some(Protocol::Tls | Protocol::Quic) => 853,
        Some(Protocol::Https) => 443,
    };
    SocketAddr::new(ip, port.or(c.server_port).unwrap_or(default))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use px_yaml::load_str;

    use super::*;

    fn read(yaml: &str) -> Result<HickoryConfig, ConfigError> {
        let node = load_str(yaml, Path::new("r.yaml")).unwrap();
        let mut map = Val::root(&node, "resolver[h]").map().unwrap();
        let c = HickoryConfig::read(&mut map)?;
        map.finish()?;
        Ok(c)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let c = read("server: 1.1.1.1\n").unwrap();
        assert_eq!(c.servers, vec![(ip("1.1.1.1"), None)]);
        assert_eq!(c.encryption, None);
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.each_tries, 2);
        assert_eq!(c.each_timeout, Duration::from_secs(5));
        assert_eq!(c.retry_interval, Duration::from_secs(1));
        assert_eq!(server_addr(&c, ip("1.1.1.1"), None).port(), 53);
        assert_eq!(c.cache, CacheConfig::default());
    }

    #[test]
    fn every_key() {
        let c = read(
            "server: [1.1.1.1, '::1', '127.0.0.1:5353']\nserver_port: 54\n\
             encryption: {protocol: doh, tls_name: dns.example}\nconnect_timeout: 1s\n\
             request_timeout: 2s\neach_tries: 3\neach_timeout: 4s\nretry_interval: 100ms\n\
             positive_min_ttl: 1\n",
        )
        .unwrap();
        assert_eq!(
            c.servers,
            vec![
                (ip("1.1.1.1"), None),
                (ip("::1"), None),
                (ip("127.0.0.1"), Some(5353))
            ]
        );
        assert_eq!(c.server_port, Some(54));
        let e = c.encryption.clone().unwrap();
        assert_eq!(
            (e.protocol, e.tls_name.as_deref()),
            (Protocol::Https, Some("dns.example"))
        );
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.request_timeout, Duration::from_secs(2));
        assert_eq!(c.each_tries, 3);
        assert_eq!(c.each_timeout, Duration::from_secs(4));
        assert_eq!(c.retry_interval, Duration::from_millis(100));
        assert_eq!(c.cache.positive_min_ttl, 1);
        assert_eq!(server_addr(&c, ip("1.1.1.1"), None).port(), 54);
        assert_eq!(server_addr(&c, ip("127.0.0.1"), Some(5353)).port(), 5353);
        let c = read("server: 10.0.0.1 10.0.0.2\nbind_ip: 10.0.0.9\nretry_attempts: 1\n").unwrap();
        assert_eq!(c.bind_ip, Some(ip("10.0.0.9")));
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.each_tries, 1);
    }

    #[test]
    fn encryption_forms() {
        let enc = |y: &str| {
            read(&format!("server: 1.1.1.1\n{y}"))
                .unwrap()
                .encryption
                .unwrap()
        };
        let e = enc("encryption: dns-over-https\n");
        assert_eq!((e.protocol, e.tls_name.clone()), (Protocol::Https, None));
        assert_eq!(&*e.server_name(ip("1.1.1.1")), "1.1.1.1");
        for (word, p) in [
            ("DoT", Protocol::Tls),
            ("quic", Protocol::Quic),
            ("dns_over_quic", Protocol::Quic),
        ] {
            assert_eq!(enc(&format!("encryption: {word}\n")).protocol, p);
        }
        let e = enc("encryption: dns-over-tls\ntls_name: one.one.one.one\n");
        assert_eq!(e.tls_name.as_deref(), Some("one.one.one.one"));
        let e = enc("encrypt: cloudflare-dns.com\n");
        assert_eq!(
            (e.protocol, e.tls_name.as_deref()),
            (Protocol::Tls, Some("cloudflare-dns.com"))
        );
        let e = enc("encryption:\n  tls_name: a.test\n  tls_client:\n    no_session_cache: true\n");
        assert!(e.tls.no_session_cache);
        let c = read("server: 1.1.1.1\nencryption: doq\n").unwrap();
        assert_eq!(server_addr(&c, ip("1.1.1.1"), None).port(), 853);
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = read("each_tries: 1\n").unwrap_err();
        assert!(e.message.contains("server"), "{e}");
        let e = read("server: 1.1.1.1 bogus\n").unwrap_err();
        assert_eq!((e.line, e.key_path.as_str()), (1, "resolver[h].server"));
        let e = read("server:\n  - 1.1.1.1\n  - 224.0.0.1\n").unwrap_err();
        assert_eq!((e.line, e.key_path.as_str()), (3, "resolver[h].server[1]"));
        let e = read("server: 1.1.1.1\nencryption: h3\n").unwrap_err();
        assert!(e.message.contains("not implemented"), "{e}");
        let e = read("server: 1.1.1.1\nencryption:\n  protocol: smoke-signals\n").unwrap_err();
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (3, "resolver[h].encryption.protocol")
        );
        let e = read("server: 1.1.1.1\nencryption:\n  tls_name: 'bad name!'\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[h].encryption.tls_name");
        let e = read("server: 1.1.1.1\nencryption:\n  colour: blue\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[h].encryption.colour");
        let e = read("server: 1.1.1.1\ntls_name: a.test\n").unwrap_err();
        assert!(e.message.contains("encryption"), "{e}");
        let e = read("server: 1.1.1.1\nbind_ip: '::1'\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[h].bind_ip");
        let e = read("server: 1.1.1.1\nbind_interface: eth0\n").unwrap_err();
        assert!(e.message.contains("not implemented"), "{e}");
        let e = read("server: 1.1.1.1\nserver_port: 0\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[h].server_port");
        let e = read("server: 1.1.1.1\n\neach_timeout: 0\n").unwrap_err();
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (3, "resolver[h].each_timeout")
        );
        let e = read("server: 1.1.1.1\neach_tries: 0\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[h].each_tries");
    }
}
