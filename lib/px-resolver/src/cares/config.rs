//! Keys of the `c-ares` resolver (see `doc/config/resolver/c-ares.md`).
//!
//! ```yaml
//! resolver:
//!   - name: default
//!     type: c-ares
//!     server: 223.5.5.5 223.6.6.6:53   # or a list; none: /etc/resolv.conf
//!     each_timeout: 2000               # ms
//!     each_tries: 3
//!     bind_ipv4: 192.168.10.1
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use px_yaml::values::{self, parse_duration, parse_sockaddr};
use px_yaml::{ConfigError, MapReader, Val, Value};

use crate::cache::CacheConfig;

/// Parsed `c-ares` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaresConfig {
    /// Name servers; empty means those of /etc/resolv.conf.
    pub(crate) servers: Vec<SocketAddr>,
    /// Timeout of the first try at each server.
    pub(crate) each_timeout: Duration,
    /// Tries per server.
    pub(crate) each_tries: u32,
    /// Cap on the growing retry timeout.
    pub(crate) max_timeout: Option<Duration>,
    /// UDP queries per ephemeral port before a new one is used.
    pub(crate) udp_max_queries: Option<u32>,
    /// Rotate among the servers.
    pub(crate) round_robin: bool,
    /// SO_SNDBUF of the query sockets.
    pub(crate) socket_send_buffer_size: Option<u32>,
    /// SO_RCVBUF of the query sockets.
    pub(crate) socket_recv_buffer_size: Option<u32>,
    /// Source address for IPv4 queries.
    pub(crate) bind_ipv4: Option<Ipv4Addr>,
    /// Source address for IPv6 queries.
    pub(crate) bind_ipv6: Option<Ipv6Addr>,
    /// The common cache keys.
    pub(crate) cache: CacheConfig,
}

impl Default for CaresConfig {
    fn default() -> Self {
        CaresConfig {
            servers: Vec::new(),
            each_timeout: Duration::from_millis(2000),
            each_tries: 3,
            max_timeout: None,
            udp_max_queries: None,
            round_robin: false,
            socket_send_buffer_size: None,
            socket_recv_buffer_size: None,
            bind_ipv4: None,
            bind_ipv6: None,
            cache: CacheConfig::default(),
        }
    }
}

impl CaresConfig {
    /// Reads every `c-ares` key from the module map.
    pub(crate) fn read(map: &mut MapReader<'_>) -> Result<Self, ConfigError> {
        let mut c = CaresConfig {
            cache: CacheConfig::read(map)?,
            ..CaresConfig::default()
        };
        if let Some(v) = map.get("server") {
            c.servers = servers(&v, 53)?;
        }
        if let Some(v) = map.get("each_timeout") {
            c.each_timeout = millis(&v)?;
            if c.each_timeout.is_zero() {
                return Err(v.err("each_timeout must be greater than zero"));
            }
        }
        if let Some(v) = map.get("each_tries") {
            c.each_tries = v.as_int()?;
            if c.each_tries == 0 {
                return Err(v.err("each_tries must be at least 1"));
            }
        }
        if let Some(v) = map.get("max_timeout") {
            let d = millis(&v)?;
            c.max_timeout = (!d.is_zero()).then_some(d);
        }
        if let Some(v) = map.get_any(&["udp_max_quires", "udp_max_queries"]) {
            let n: u32 = v.as_int()?;
            c.udp_max_queries = (n > 0).then_some(n);
        }
        if let Some(v) = map.get("round_robin") {
            c.round_robin = v.as_bool()?;
        }
        if let Some(v) = map.get("socket_send_buffer_size") {
            c.socket_send_buffer_size = Some(buffer_size(&v)?);
        }
        if let Some(v) = map.get("socket_recv_buffer_size") {
            c.socket_recv_buffer_size = Some(buffer_size(&v)?);
        }
        if let Some(v) = map.get("bind_ipv4") {
            match values::ip_addr(&v)? {
                IpAddr::V4(ip) => c.bind_ipv4 = Some(ip),
                IpAddr::V6(_) => return Err(v.err("bind_ipv4 must be an IPv4 address")),
            }
        }
        if let Some(v) = map.get("bind_ipv6") {
            match values::ip_addr(&v)? {
                IpAddr::V6(ip) if ip.to_ipv4_mapped().is_none() => c.bind_ipv6 = Some(ip),
                _ => return Err(v.err("bind_ipv6 must be an IPv6 address (not IPv4-mapped)")),
            }
        }
        Ok(c)
    }
}

/// Name servers written as one string of space-separated addresses or as a
/// list; each `ip`, `ip:port` or `[ipv6]:port`, `default_port` when none.
pub(crate) fn servers(v: &Val<'_>, default_port: u16) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::new();
    for item in v.list() {
        let text = item.as_text()?;
        for word in text.split_whitespace() {
            let sa = match parse_sockaddr(word, Some(default_port)) {
                Some(sa) if word.parse::<u16>().is_err() => sa,
                _ => return Err(item.err(format!("invalid name server address {word:?}"))),
            };
            if sa.ip().is_unspecified() || sa.ip().is_multicast() || sa.port() == 0 {
                return Err(item.err(format!("name server address {word:?} cannot be used")));
            }
            out.push(sa);
        }
    }
    if out.is_empty() {
        return Err(v.err("no name server address given"));
    }
    Ok(out)
}

/// A millisecond count: a bare number is milliseconds, a string may carry a
/// unit (`2s`, `500ms`).
pub(crate) fn millis(v: &Val<'_>) -> Result<Duration, ConfigError> {
    match &v.node().value {
        Value::Int(i) if *i >= 0 => Ok(Duration::from_millis(*i as u64)),
        Value::Float(f) if *f >= 0.0 && f.is_finite() => Ok(Duration::from_secs_f64(f / 1000.0)),
        Value::Str(s) => {
            let s = s.trim();
            if let Ok(ms) = s.parse::<u64>() {
                return Ok(Duration::from_millis(ms));
            }
            parse_duration(s).ok_or_else(|| v.err(format!("invalid milliseconds value {s:?}")))
        }
        _ => Err(v.err("expected milliseconds (a number) or a duration string")),
    }
}

fn buffer_size(v: &Val<'_>) -> Result<u32, ConfigError> {
    let n = values::size(v)?;
    u32::try_from(n).map_err(|_| v.err(format!("buffer size {n} is out of range")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use px_yaml::load_str;

    use super::*;

    fn read(yaml: &str) -> Result<CaresConfig, ConfigError> {
        let node = load_str(yaml, Path::new("r.yaml")).unwrap();
        let mut map = Val::root(&node, "resolver[c]").map().unwrap();
        let c = CaresConfig::read(&mut map)?;
        map.finish()?;
        Ok(c)
    }

    #[test]
    fn defaults_use_resolv_conf() {
        let c = read("{}").unwrap();
        assert_eq!(c, CaresConfig::default());
        assert!(c.servers.is_empty());
    }

    #[test]
    fn server_string_and_list() {
        let c = read("server: 223.5.5.5 223.6.6.6:5353  [::1]:54 2001:db8::1\n").unwrap();
        let want: Vec<SocketAddr> = vec![
            "223.5.5.5:53".parse().unwrap(),
            "223.6.6.6:5353".parse().unwrap(),
            "[::1]:54".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
        ];
        assert_eq!(c.servers, want);
        let c = read("server:\n  - 223.5.5.5\n  - '[::1]:54'\n").unwrap();
        assert_eq!(c.servers, vec![want[0], want[2]]);
    }

    #[test]
    fn every_key() {
        let c = read(
            "server: 127.0.0.1\neach_timeout: 500\neach_tries: 2\nmax_timeout: 3s\n\
             udp_max_quires: 100\nround_robin: true\nsocket_send_buffer_size: 64K\n\
             socket_recv_buffer_size: 131072\nbind_ipv4: 127.0.0.1\nbind_ipv6: ::1\n\
             negative_ttl: 5\n",
        )
        .unwrap();
        assert_eq!(c.each_timeout, Duration::from_millis(500));
        assert_eq!(c.each_tries, 2);
        assert_eq!(c.max_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.udp_max_queries, Some(100));
        assert!(c.round_robin);
        assert_eq!(c.socket_send_buffer_size, Some(64_000));
        assert_eq!(c.socket_recv_buffer_size, Some(131_072));
        assert_eq!(c.bind_ipv4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(c.bind_ipv6, Some(Ipv6Addr::LOCALHOST));
        assert_eq!(c.cache.negative_min_ttl, 5);
        let c = read("udp_max_queries: 0\nmax_timeout: 0\neach_timeout: 1.5s\n").unwrap();
        assert_eq!((c.udp_max_queries, c.max_timeout), (None, None));
        assert_eq!(c.each_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = read("each_tries: 1\nserver: 1.2.3.4 nope\n").unwrap_err();
        assert_eq!((e.line, e.key_path.as_str()), (2, "resolver[c].server"));
        assert!(e.message.contains("\"nope\""), "{e}");
        let e = read("server:\n  - 1.2.3.4\n  - 0.0.0.0\n").unwrap_err();
        assert_eq!((e.line, e.key_path.as_str()), (3, "resolver[c].server[1]"));
        let e = read("server: 53\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = read("bind_ipv4: ::1\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[c].bind_ipv4");
        let e = read("bind_ipv6: ::ffff:1.2.3.4\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[c].bind_ipv6");
        let e = read("each_tries: 0\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[c].each_tries");
        let e = read("each_timeout: soon\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[c].each_timeout");
        let e = read("round_robin: maybe\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[c].round_robin");
        let e = read("server: 1.2.3.4\nbogus: 1\n").unwrap_err();
        assert_eq!((e.line, e.key_path.as_str()), (2, "resolver[c].bogus"));
    }
}
