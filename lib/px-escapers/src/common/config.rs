//! Readers for the keys several escaper types share (names and defaults from
//! g3proxy's reference): `tcp_connect`, `happy_eyeballs`, `tcp_keepalive`,
//! `tcp_misc_opts`, `udp_misc_opts`, `bind_ip`, `egress_network_filter`.
//!
//! ```yaml
//! tcp_connect: {max_retry: 2, each_timeout: 30s}
//! happy_eyeballs: {resolution_delay: 50ms, connection_attempt_delay: 250ms}
//! tcp_keepalive: 60s
//! tcp_misc_opts: {no_delay: true, mark: 100}
//! udp_misc_opts: {ttl: 64}
//! bind_ip: [192.0.2.10, 2001:db8::10]
//! egress_network_filter: {default: allow, allow: 127.0.0.1}
//! ```

use std::net::IpAddr;
use std::time::Duration;

use px_core::value::{AclAction, NetworkAcl};
use px_socket::{HappyEyeballs, TcpConnectConfig, TcpKeepaliveOpts, TcpMiscOpts, UdpMiscOpts};
use px_yaml::{ConfigError, MapReader, Val, Value, values};

use crate::common::egress::egress_filter;

/// The smallest `connection_attempt_delay` g3proxy allows.
const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(100);
/// The largest `connection_attempt_delay` g3proxy allows.
const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(2);

/// `tcp_connect`: a map with `max_retry` (2) and `each_timeout` (30s).
pub fn tcp_connect(v: &Val<'_>) -> Result<TcpConnectConfig, ConfigError> {
    let mut m = v.map()?;
    let mut cfg = TcpConnectConfig::default();
    if let Some(x) = m.get("max_retry") {
        cfg.max_retry = x.as_int()?;
    }
    if let Some(x) = m.get("each_timeout") {
        cfg.each_timeout = values::duration(&x)?;
        if cfg.each_timeout.is_zero() {
            return Err(x.err("each_timeout must not be 0"));
        }
    }
    m.finish()?;
    Ok(cfg)
}

/// `happy_eyeballs`: a map with `resolution_delay` (50ms),
/// `second_resolution_timeout` (2s), `first_address_family_count` (1) and
/// `connection_attempt_delay` (250ms, clamped to 100ms..=2s).
pub fn happy_eyeballs(v: &Val<'_>) -> Result<HappyEyeballs, ConfigError> {
    let mut m = v.map()?;
    let mut he = HappyEyeballs::default();
    if let Some(x) = m.get("resolution_delay") {
        he.resolution_delay = values::duration(&x)?;
    }
    if let Some(x) = m.get("second_resolution_timeout") {
        he.second_resolution_timeout = values::duration(&x)?;
    }
    if let Some(x) = m.get("first_address_family_count") {
        he.first_address_family_count = x.as_int()?;
    }
    if let Some(x) = m.get("connection_attempt_delay") {
        he.connection_attempt_delay =
            values::duration(&x)?.clamp(MIN_ATTEMPT_DELAY, MAX_ATTEMPT_DELAY);
    }
    m.finish()?;
    Ok(he)
}

/// `tcp_keepalive`: a bool (`enable`), a duration (`idle_time`, enabled), or a
/// map with `enable` (false), `idle_time` (60s), `probe_interval`, `probe_count`.
pub fn tcp_keepalive(v: &Val<'_>) -> Result<TcpKeepaliveOpts, ConfigError> {
    let mut ka = TcpKeepaliveOpts::default();
    match &v.node().value {
        Value::Bool(b) => {
            ka.enable = *b;
            return Ok(ka);
        }
        Value::Map(_) => {}
        _ => {
            ka.enable = true;
            ka.idle_time = values::duration(v)?;
            return Ok(ka);
        }
    }
    let mut m = v.map()?;
    if let Some(x) = m.get("enable") {
        ka.enable = x.as_bool()?;
    }
    if let Some(x) = m.get("idle_time") {
        ka.idle_time = values::duration(&x)?;
    }
    if let Some(x) = m.get("probe_interval") {
        ka.probe_interval = Some(values::duration(&x)?);
    }
    if let Some(x) = m.get("probe_count") {
        ka.probe_count = Some(x.as_int()?);
    }
    m.finish()?;
    Ok(ka)
}

/// The IP-level keys of the misc option maps: `ttl`/`time_to_live`,
/// `tos`/`type_of_service`, `mark`/`netfilter_mark`.
fn ip_opts(m: &mut MapReader<'_>) -> Result<UdpMiscOpts, ConfigError> {
    let ttl = m
        .get_any(&["ttl", "time_to_live"])
        .map(|x| x.as_int())
        .transpose()?;
    let tos = m
        .get_any(&["tos", "type_of_service"])
        .map(|x| x.as_int())
        .transpose()?;
    let mark = m
        .get_any(&["mark", "netfilter_mark"])
        .map(|x| x.as_int())
        .transpose()?;
    Ok(UdpMiscOpts { ttl, tos, mark })
}

/// `tcp_misc_opts`: `no_delay`, `mss`/`max_segment_size` and the IP-level keys.
pub fn tcp_misc_opts(v: &Val<'_>) -> Result<TcpMiscOpts, ConfigError> {
    let mut m = v.map()?;
    let no_delay = m.get("no_delay").map(|x| x.as_bool()).transpose()?;
    let mss = m
        .get_any(&["mss", "max_segment_size"])
        .map(|x| x.as_int())
        .transpose()?;
    let ip = ip_opts(&mut m)?;
    m.finish()?;
    Ok(TcpMiscOpts {
        no_delay,
        mss,
        ttl: ip.ttl,
        tos: ip.tos,
        mark: ip.mark,
    })
}

/// `udp_misc_opts`: the IP-level keys.
pub fn udp_misc_opts(v: &Val<'_>) -> Result<UdpMiscOpts, ConfigError> {
    let mut m = v.map()?;
    let opts = ip_opts(&mut m)?;
    m.finish()?;
    Ok(opts)
}

/// `bind_ip`: one IP or a list, split into (IPv4, IPv6); unspecified and
/// multicast addresses are refused.
pub fn bind_ips(v: &Val<'_>) -> Result<(Vec<IpAddr>, Vec<IpAddr>), ConfigError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let items = v.list();
    if items.is_empty() {
        return Err(v.err("expected an IP address or a list of them"));
    }
    for item in items {
        let ip = values::ip_addr(&item)?.to_canonical();
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(item.err(format!("{ip} can not be a bind address")));
        }
        let list = if ip.is_ipv4() { &mut v4 } else { &mut v6 };
        if !list.contains(&ip) {
            list.push(ip);
        }
    }
    Ok((v4, v6))
}

/// `egress_network_filter` (alias `egress_net_filter`): the user's rule, or
/// none, plus the built-in forbidden networks of [`crate::common::egress`].
/// Giving both spellings is an error.
pub fn egress_network_filter(m: &mut MapReader<'_>) -> Result<NetworkAcl, ConfigError> {
    let a = m.get("egress_network_filter");
    let b = m.get("egress_net_filter");
    let user = match (a, b) {
        (Some(_), Some(b)) => {
            return Err(b.err("egress_network_filter is given twice (also as egress_net_filter)"));
        }
        (Some(v), None) | (None, Some(v)) => Some(values::network_acl(&v, AclAction::Forbid)?),
        (None, None) => None,
    };
    Ok(egress_filter(user))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn node(text: &str) -> px_yaml::Node {
        px_yaml::load_str(text, Path::new("e.yaml")).unwrap()
    }

    #[test]
    fn keepalive_forms() {
        let n = node("true");
        assert!(tcp_keepalive(&Val::root(&n, "k")).unwrap().enable);
        let n = node("30s");
        let k = tcp_keepalive(&Val::root(&n, "k")).unwrap();
        assert!(k.enable);
        assert_eq!(k.idle_time, Duration::from_secs(30));
        let n = node("{enable: true, probe_interval: 5s, probe_count: 3}");
        let k = tcp_keepalive(&Val::root(&n, "k")).unwrap();
        assert_eq!(
            (k.probe_interval, k.probe_count),
            (Some(Duration::from_secs(5)), Some(3))
        );
        let n = node("{enable: true, bogus: 1}");
        assert!(tcp_keepalive(&Val::root(&n, "k")).is_err());
    }

    #[test]
    fn attempt_delay_is_clamped() {
        let n = node("{connection_attempt_delay: 10ms}");
        let he = happy_eyeballs(&Val::root(&n, "h")).unwrap();
        assert_eq!(he.connection_attempt_delay, MIN_ATTEMPT_DELAY);
        let n = node("{connection_attempt_delay: 1m}");
        let he = happy_eyeballs(&Val::root(&n, "h")).unwrap();
        assert_eq!(he.connection_attempt_delay, MAX_ATTEMPT_DELAY);
    }

    #[test]
    fn misc_opts_aliases() {
        let n = node(
            "{no_delay: false, max_segment_size: 1400, time_to_live: 9, type_of_service: 4, netfilter_mark: 7}",
        );
        let o = tcp_misc_opts(&Val::root(&n, "o")).unwrap();
        assert_eq!(
            o,
            TcpMiscOpts {
                no_delay: Some(false),
                mss: Some(1400),
                ttl: Some(9),
                tos: Some(4),
                mark: Some(7)
            }
        );
        let n = node("{tos: 300}");
        assert!(udp_misc_opts(&Val::root(&n, "o")).is_err());
    }

    #[test]
    fn bind_ip_forms() {
        let n = node("192.0.2.1");
        assert_eq!(bind_ips(&Val::root(&n, "b")).unwrap().0.len(), 1);
        let n = node("[192.0.2.1, '2001:db8::1', 192.0.2.2]");
        let (v4, v6) = bind_ips(&Val::root(&n, "b")).unwrap();
        assert_eq!((v4.len(), v6.len()), (2, 1));
        let n = node("[0.0.0.0]");
        assert!(bind_ips(&Val::root(&n, "b")).is_err());
    }
}
