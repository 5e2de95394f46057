//! Typed readers for g3proxy's value types, accepting both the user guide's
//! spellings (`10M/s`, `proxy_protocol: v2`) and g3proxy's shipped ones (`80M`, `1MB`, `2`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use px_core::value::{
    AclAction, AclRule, HostAclSet, ListenConfig, NetworkAcl, PortAcl, SpeedLimit, UdpSpeedLimit,
};
use px_core::{Host, PickStrategy, QueryStrategy, ResolveStrategy, UpstreamAddr};

use crate::error::ConfigError;
use crate::node::Value;
use crate::reader::Val;

/// A duration: a bare number is seconds; strings take units (`200ms`, `30s`,
/// `1m`, `1h 30m`, `1d`), several at once.
pub fn duration(v: &Val<'_>) -> Result<Duration, ConfigError> {
    match &v.node().value {
        Value::Int(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        Value::Float(f) if *f >= 0.0 && f.is_finite() => Ok(Duration::from_secs_f64(*f)),
        Value::Str(s) => parse_duration(s).ok_or_else(|| v.err(format!("invalid duration {s:?}"))),
        _ => Err(v.err("expected a duration (`30s`, `1m`, or seconds)")),
    }
}

/// Parses a duration string; see [`duration`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ns" | "nsec" => 1e-9,
            "us" | "usec" | "µs" => 1e-6,
            "ms" | "msec" | "millis" => 1e-3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604800.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(num * secs);
    }
    Some(total)
}

/// A byte size: a bare number is bytes; `K`/`KB` are 1000, `Ki`/`KiB` 1024, and so on
/// for M, G, T.
pub fn size(v: &Val<'_>) -> Result<u64, ConfigError> {
    match &v.node().value {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::Str(s) => parse_size(s).ok_or_else(|| v.err(format!("invalid size {s:?}"))),
        _ => Err(v.err("expected a size (`512K`, `10M`, or bytes)")),
    }
}

/// Parses a size string; see [`size`].
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if num_len == 0 {
        return None;
    }
    let num: f64 = s[..num_len].parse().ok()?;
    let unit = s[num_len..].trim();
    let mult: f64 = match unit {
        "" | "B" | "b" => 1.0,
        "K" | "k" | "KB" | "kB" | "kb" => 1e3,
        "Ki" | "KiB" | "kiB" => 1024.0,
        "M" | "m" | "MB" | "mb" => 1e6,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "G" | "g" | "GB" | "gb" => 1e9,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" => 1e12,
        "Ti" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = num * mult;
    (v >= 0.0 && v < u64::MAX as f64).then_some(v.round() as u64)
}

/// A size that may carry a `/s` suffix (the user guide's `10M/s`): bytes per second.
fn size_per_sec(v: &Val<'_>) -> Result<(u64, bool), ConfigError> {
    if let Value::Str(s) = &v.node().value
        && let Some(base) = s.trim().strip_suffix("/s")
    {
        return parse_size(base)
            .map(|b| (b, true))
            .ok_or_else(|| v.err(format!("invalid speed {s:?}")));
    }
    size(v).map(|b| (b, false))
}

fn shift(v: &Val<'_>) -> Result<u8, ConfigError> {
    let s: u8 = v.as_int()?;
    if s > 12 {
        return Err(v.err("shift_millis must be in 0..=12"));
    }
    Ok(s)
}

/// Bytes per second as bytes per 2^10 ms slice.
fn per_slice(bytes_per_sec: u64) -> u64 {
    bytes_per_sec.saturating_mul(1024) / 1000
}

/// A TCP socket speed limit: a size (per 1024 ms, or per second with `/s`) for both
/// directions, or a map with `shift_millis`, `upload`/`north`, `download`/`south`.
pub fn tcp_speed_limit(v: &Val<'_>) -> Result<SpeedLimit, ConfigError> {
    if v.is_map() {
        let mut m = v.map()?;
        let shift_millis = match m.get_any(&["shift_millis", "shift"]) {
            Some(s) => shift(&s)?,
            None => 10,
        };
        let mut dir = |keys: &[&str]| -> Result<Option<u64>, ConfigError> {
            match m.get_any(keys) {
                Some(x) => {
                    let (b, ps) = size_per_sec(&x)?;
                    Ok(Some(if ps {
                        b.saturating_mul(1 << shift_millis) / 1000
                    } else {
                        b
                    }))
                }
                None => Ok(None),
            }
        };
        let upload = dir(&["upload", "north", "upload_bytes", "north_bytes"])?;
        let download = dir(&["download", "south", "download_bytes", "south_bytes"])?;
        m.finish()?;
        return Ok(SpeedLimit {
            shift_millis,
            upload,
            download,
        });
    }
    let (b, ps) = size_per_sec(v)?;
    let b = if ps { per_slice(b) } else { b };
    let limit = (b > 0).then_some(b);
    Ok(SpeedLimit {
        shift_millis: 10,
        upload: limit,
        download: limit,
    })
}

/// A UDP socket speed limit: a size for both directions' bytes, or a map with
/// `shift_millis`, `upload_bytes`, `download_bytes`, `upload_packets`, `download_packets`.
pub fn udp_speed_limit(v: &Val<'_>) -> Result<UdpSpeedLimit, ConfigError> {
    if v.is_map() {
        let mut m = v.map()?;
        let shift_millis = match m.get_any(&["shift_millis", "shift"]) {
            Some(s) => shift(&s)?,
            None => 10,
        };
        let mut bytes = |keys: &[&str]| -> Result<Option<u64>, ConfigError> {
            m.get_any(keys)
                .map(|x| size(&x))
                .transpose()
                .map(|o| o.filter(|b| *b > 0))
        };
        let upload_bytes = bytes(&["upload_bytes", "north_bytes", "upload", "north"])?;
        let download_bytes = bytes(&["download_bytes", "south_bytes", "download", "south"])?;
        let upload_packets = bytes(&["upload_packets", "north_packets"])?;
        let download_packets = bytes(&["download_packets", "south_packets"])?;
        m.finish()?;
        return Ok(UdpSpeedLimit {
            shift_millis,
            upload_bytes,
            download_bytes,
            upload_packets,
            download_packets,
        });
    }
    let (b, ps) = size_per_sec(v)?;
    let b = if ps { per_slice(b) } else { b };
    let limit = (b > 0).then_some(b);
    Ok(UdpSpeedLimit {
        shift_millis: 10,
        upload_bytes: limit,
        download_bytes: limit,
        upload_packets: None,
        download_packets: None,
    })
}

/// A rate: `1000/s`, `60/m`, `100/h`, or a bare count per second. Returns
/// (count, per interval).
pub fn rate(v: &Val<'_>) -> Result<(u64, Duration), ConfigError> {
    let text = v.as_text()?;
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => Duration::from_secs(1),
                "m" | "min" | "minute" => Duration::from_secs(60),
                "h" | "hour" => Duration::from_secs(3600),
                other => return Err(v.err(format!("invalid rate unit {other:?}"))),
            };
            (n.trim(), per)
        }
        None => (t, Duration::from_secs(1)),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| v.err(format!("invalid rate {text:?}")))?;
    if n == 0 {
        return Err(v.err("rate must not be 0"));
    }
    Ok((n, per))
}

fn env_or_literal<'s>(v: &Val<'_>, s: &'s str) -> Result<std::borrow::Cow<'s, str>, ConfigError> {
    match s.strip_prefix('$') {
        Some(var) => std::env::var(var)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| v.err(format!("environment variable {var} is not set"))),
        None => Ok(std::borrow::Cow::Borrowed(s)),
    }
}

/// Parses `ip:port`, `[v6]:port`, `[v4]:port` (the user guide writes `[127.0.0.1]:1234`),
/// a bare IP with `default_port`, or a bare port with `[::]`.
pub fn parse_sockaddr(s: &str, default_port: Option<u16>) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: IpAddr = ip.parse().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port?,
            None => return None,
        };
        return Some(SocketAddr::new(ip, port));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port?));
    }
    if let Ok(port) = s.parse::<u16>() {
        return Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    None
}

/// A socket address (also `$ENV_VAR`), see [`parse_sockaddr`].
pub fn sockaddr(v: &Val<'_>, default_port: Option<u16>) -> Result<SocketAddr, ConfigError> {
    if let Value::Int(p) = v.node().value {
        let port = u16::try_from(p).map_err(|_| v.err("port out of range"))?;
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    let s = v.as_str()?;
    let s = env_or_literal(v, s)?;
    parse_sockaddr(&s, default_port).ok_or_else(|| v.err(format!("invalid socket address {s:?}")))
}

/// An IP address.
pub fn ip_addr(v: &Val<'_>) -> Result<IpAddr, ConfigError> {
    let s = v.as_text()?;
    s.trim()
        .parse()
        .map_err(|_| v.err(format!("invalid IP address {s:?}")))
}

/// An IP network in CIDR form, or a single address.
pub fn ip_net(v: &Val<'_>) -> Result<IpNet, ConfigError> {
    let s = v.as_text()?;
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| v.err(format!("invalid IP network {s:?}")))
}

/// A host: a domain or an IP address.
pub fn host(v: &Val<'_>) -> Result<Host, ConfigError> {
    let s = v.as_text()?;
    Host::parse(&s).ok_or_else(|| v.err(format!("invalid host {s:?}")))
}

/// An upstream `host:port` (the port may be defaulted).
pub fn upstream_addr(v: &Val<'_>, default_port: Option<u16>) -> Result<UpstreamAddr, ConfigError> {
    let s = v.as_text()?;
    UpstreamAddr::parse(&s, default_port)
        .ok_or_else(|| v.err(format!("invalid upstream address {s:?}")))
}

/// A TCP listen config: a port, an address string, or a map with `address`,
/// `backlog`, `ipv6_only`, `netfilter_mark`, `instance`, `scale` (instances
/// per available CPU: `0.5`, `50%`, `1/2`; `instance` is then the least
/// count) and `follow_cpu_affinity`.
pub fn listen(v: &Val<'_>) -> Result<ListenConfig, ConfigError> {
    if !v.is_map() {
        return Ok(ListenConfig::new(sockaddr(v, None)?));
    }
    let mut m = v.map()?;
    let address = sockaddr(&m.required("address")?, None)?;
    let mut cfg = ListenConfig::new(address);
    if let Some(b) = m.get("backlog") {
        let b: u32 = b.as_int()?;
        if b >= 8 {
            cfg.backlog = b;
        }
    }
    if let Some(b) = m.get("ipv6_only") {
        cfg.ipv6_only = b.as_bool()?;
    }
    if let Some(b) = m.get("netfilter_mark") {
        cfg.netfilter_mark = Some(b.as_int()?);
    }
    if let Some(b) = m.get("instance") {
        let n: usize = b.as_int()?;
        if n == 0 || n > 1024 {
            return Err(b.err("instance must be in 1..=1024"));
        }
        cfg.instance = n;
    }
    if let Some(x) = m.get("scale") {
        let scale = listen_scale(&x)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // g3: `instance` is the least value when `scale` is set
        let scaled = (cpus as f64 * scale).floor() as usize;
        cfg.instance = cfg.instance.max(scaled.min(1024));
    }
    if let Some(x) = m.get("follow_cpu_affinity") {
        cfg.follow_cpu_affinity = x.as_bool()?;
    }
    m.finish()?;
    Ok(cfg)
}

/// `scale` of a listen config: a float, `n%` or `n/d`, at least 0.
fn listen_scale(v: &Val<'_>) -> Result<f64, ConfigError> {
    let bad = || v.err("scale is a number, `n%` or `n/d` (e.g. 0.5, 50%, 1/2)");
    let f = match &v.node().value {
        Value::Str(s) => {
            let s = s.trim();
            if let Some(p) = s.strip_suffix('%') {
                p.trim().parse::<f64>().map_err(|_| bad())? / 100.0
            } else if let Some((n, d)) = s.split_once('/') {
                let n = n.trim().parse::<f64>().map_err(|_| bad())?;
                let d = d.trim().parse::<f64>().map_err(|_| bad())?;
                if d == 0.0 {
                    return Err(bad());
                }
                n / d
            } else {
                s.parse::<f64>().map_err(|_| bad())?
            }
        }
        _ => v.as_f64()?,
    };
    if !f.is_finite() || f < 0.0 {
        return Err(bad());
    }
    Ok(f)
}

fn action_key(v: &Val<'_>, key: &str) -> Result<AclAction, ConfigError> {
    AclAction::parse(key).ok_or_else(|| v.err(format!("unknown ACL action `{key}`")))
}

/// Generic ACL rule reader: a map with `default` and action keys holding one
/// record or a list, or bare record(s) meaning "permit these, forbid the rest".
fn acl_rule<T>(
    v: &Val<'_>,
    default_missed: AclAction,
    record: &dyn Fn(&Val<'_>) -> Result<T, ConfigError>,
) -> Result<AclRule<T>, ConfigError> {
    if v.is_map() {
        let mut m = v.map()?;
        let missed = match m.get("default") {
            Some(d) => {
                let s = d.as_str()?;
                action_key(&d, s)?
            }
            None => default_missed,
        };
        let mut records = Vec::new();
        for (key, val) in m.rest() {
            let action = action_key(&val, &crate::reader::normalize_key(&key))?;
            for item in val.list() {
                records.push((record(&item)?, action));
            }
        }
        return Ok(AclRule { missed, records });
    }
    let mut records = Vec::new();
    for item in v.list() {
        records.push((record(&item)?, AclAction::Permit));
    }
    Ok(AclRule {
        missed: AclAction::Forbid,
        records,
    })
}

/// A network ACL rule (`ingress_network_filter`, `egress_network_filter`).
/// `default_missed` is the type's documented default when `default` is omitted.
pub fn network_acl(v: &Val<'_>, default_missed: AclAction) -> Result<NetworkAcl, ConfigError> {
    let rule = acl_rule(v, default_missed, &ip_net)?;
    Ok(NetworkAcl {
        missed: rule.missed,
        records: rule.records,
    })
}

/// Parses a port or range text: `80`, `8000-8080`, `80,443,8000-8080`.
fn port_ranges(v: &Val<'_>) -> Result<Vec<(u16, u16)>, ConfigError> {
    let text = v.as_text()?;
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let range = match part.split_once('-') {
            Some((a, b)) => {
                let a: u16 = a
                    .trim()
                    .parse()
                    .map_err(|_| v.err(format!("invalid port {a:?}")))?;
                let b: u16 = b
                    .trim()
                    .parse()
                    .map_err(|_| v.err(format!("invalid port {b:?}")))?;
                if b < a {
                    return Err(v.err(format!("invalid port range {part:?}")));
                }
                (a, b)
            }
            None => {
                let p: u16 = part
                    .parse()
                    .map_err(|_| v.err(format!("invalid port {part:?}")))?;
                (p, p)
            }
        };
        out.push(range);
    }
    if out.is_empty() {
        return Err(v.err("empty port list"));
    }
    Ok(out)
}

/// An exact port ACL rule (`dst_port_filter`).
pub fn port_acl(v: &Val<'_>) -> Result<PortAcl, ConfigError> {
    let rule = acl_rule(v, AclAction::Forbid, &port_ranges)?;
    let mut records = Vec::new();
    for (ranges, action) in rule.records {
        for (a, b) in ranges {
            records.push((a, b, action));
        }
    }
    Ok(PortAcl {
        missed: rule.missed,
        records,
    })
}

/// A destination host ACL set (`dst_host_filter_set`) with `exact`/`exact_match`,
/// `child`/`child_match`, `regex`/`regex_match`, `subnet`/`subnet_match`.
pub fn host_acl_set(v: &Val<'_>) -> Result<HostAclSet, ConfigError> {
    let mut m = v.map()?;
    let mut set = HostAclSet::default();
    if let Some(x) = m.get_any(&["exact_match", "exact"]) {
        set.exact = Some(acl_rule(&x, AclAction::Forbid, &host)?);
    }
    if let Some(x) = m.get_any(&["child_match", "child"]) {
        set.child = Some(acl_rule(&x, AclAction::Forbid, &|r: &Val<'_>| {
            let s = r.as_text()?;
            let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
            if s.is_empty() || s.starts_with('.') {
                return Err(r.err(format!("invalid domain {s:?}")));
            }
            Ok(s)
        })?);
    }
    if let Some(x) = m.get_any(&["regex_match", "regex"]) {
        set.regex = Some(acl_rule(&x, AclAction::Forbid, &|r: &Val<'_>| {
            let s = r.as_text()?;
            regex::Regex::new(&s).map_err(|e| r.err(format!("invalid regex: {e}")))
        })?);
    }
    if let Some(x) = m.get_any(&["subnet_match", "subnet"]) {
        set.subnet = Some(network_acl(&x, AclAction::Forbid)?);
    }
    m.finish()?;
    Ok(set)
}

/// A resolve strategy: `IPv4First` | `IPv6First` | `IPv4Only` | `IPv6Only`, or a map
/// with `query` and `pick` (`first` | `random`).
pub fn resolve_strategy(v: &Val<'_>) -> Result<ResolveStrategy, ConfigError> {
    fn query(v: &Val<'_>) -> Result<QueryStrategy, ConfigError> {
        let s = v.as_str()?;
        match crate::reader::normalize_type(s).as_str() {
            "ipv4first" => Ok(QueryStrategy::Ipv4First),
            "ipv6first" => Ok(QueryStrategy::Ipv6First),
            "ipv4only" => Ok(QueryStrategy::Ipv4Only),
            "ipv6only" => Ok(QueryStrategy::Ipv6Only),
            _ => Err(v.err(format!(
                "invalid resolve strategy {s:?} (IPv4First, IPv6First, IPv4Only, IPv6Only)"
            ))),
        }
    }
    if !v.is_map() {
        return Ok(ResolveStrategy {
            query: query(v)?,
            pick: PickStrategy::First,
        });
    }
    let mut m = v.map()?;
    let mut rs = ResolveStrategy::default();
    if let Some(q) = m.get("query") {
        rs.query = query(&q)?;
    }
    if let Some(p) = m.get("pick") {
        rs.pick = match p.as_str()?.to_ascii_lowercase().as_str() {
            "first" => PickStrategy::First,
            "random" => PickStrategy::Random,
            other => return Err(p.err(format!("invalid pick strategy {other:?}"))),
        };
    }
    m.finish()?;
    Ok(rs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;
    use crate::node::load_str;

    fn val(text: &str) -> crate::node::Node {
        load_str(text, Path::new("v.yaml")).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_duration("1h 30m 71s"),
            Some(Duration::from_secs(5471))
        );
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_duration("10x"), None);
        let n = val("10");
        assert_eq!(
            duration(&Val::root(&n, "t")).unwrap(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512K"), Some(512_000));
        assert_eq!(parse_size("1MB"), Some(1_000_000));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("80M"), Some(80_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1Q"), None);
    }

    #[test]
    fn speed_limits_both_spellings() {
        let n = val("10M/s");
        let a = tcp_speed_limit(&Val::root(&n, "t")).unwrap();
        assert_eq!(a.shift_millis, 10);
        assert_eq!(a.upload, Some(10_240_000));
        let n = val("80M");
        let b = tcp_speed_limit(&Val::root(&n, "t")).unwrap();
        assert_eq!(b.download, Some(80_000_000));
        let n = val("{shift: 8, north: 1000, south_bytes: 2K}");
        let c = tcp_speed_limit(&Val::root(&n, "t")).unwrap();
        assert_eq!(
            (c.shift_millis, c.upload, c.download),
            (8, Some(1000), Some(2000))
        );
        let n = val("{shift: 8, bogus: 1}");
        assert!(tcp_speed_limit(&Val::root(&n, "t")).is_err());
    }

    #[test]
    fn sockaddrs() {
        assert_eq!(
            parse_sockaddr("[127.0.0.1]:1234", None),
            Some("127.0.0.1:1234".parse().unwrap())
        );
        assert_eq!(
            parse_sockaddr("[::]:8080", None),
            Some("[::]:8080".parse().unwrap())
        );
        assert_eq!(
            parse_sockaddr("8080", None),
            Some("[::]:8080".parse().unwrap())
        );
        assert_eq!(
            parse_sockaddr("1.2.3.4", Some(53)),
            Some("1.2.3.4:53".parse().unwrap())
        );
        assert_eq!(parse_sockaddr("1.2.3.4", None), None);
        let n = val("{address: \"127.0.0.1:80\", backlog: 100}");
        let l = listen(&Val::root(&n, "listen")).unwrap();
        assert_eq!(l.backlog, 100);
        let n = val("8080");
        assert_eq!(
            listen(&Val::root(&n, "listen")).unwrap().address.port(),
            8080
        );
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (scale, want) in [("1", cpus), ("'100%'", cpus), ("'2/1'", 2 * cpus), ("0", 1)] {
            let n = val(&format!(
                "{{address: 80, scale: {scale}, follow_cpu_affinity: true}}"
            ));
            let l = listen(&Val::root(&n, "listen")).unwrap();
            assert_eq!(l.instance, want, "{scale}");
            assert!(l.follow_cpu_affinity);
        }
        let n = val("{address: 80, instance: 3, scale: 1/1000}");
        assert_eq!(listen(&Val::root(&n, "listen")).unwrap().instance, 3);
        for bad in ["x", "'1/0'", "-1", "'%'"] {
            let n = val(&format!("{{address: 80, scale: {bad}}}"));
            assert!(listen(&Val::root(&n, "listen")).is_err(), "{bad}");
        }
    }

    #[test]
    fn acls() {
        let n = val("{default: allow, deny: [127.0.0.1, 10.0.0.0/8]}");
        let a = network_acl(&Val::root(&n, "f"), AclAction::Forbid).unwrap();
        assert_eq!(a.check("10.1.1.1".parse().unwrap()), AclAction::Forbid);
        assert_eq!(a.check("8.8.8.8".parse().unwrap()), AclAction::Permit);
        let n = val("[80, 443, '8000-8080']");
        let p = port_acl(&Val::root(&n, "p")).unwrap();
        assert!(p.check(443).permits());
        assert!(p.check(8001).permits());
        assert!(!p.check(22).permits());
        let n = val("{exact: [ipinfo.io, 1.1.1.1], child: ipip.net, regex: 'lum[a-z]*[.]com$'}");
        let s = host_acl_set(&Val::root(&n, "h")).unwrap();
        assert!(s.check(&Host::Domain("myip.ipip.net".into())).permits());
        assert!(s.check(&Host::Ip("1.1.1.1".parse().unwrap())).permits());
        assert!(!s.check(&Host::Domain("evil.com".into())).permits());
        let n = val("{bogus: [1.2.3.4]}");
        assert!(network_acl(&Val::root(&n, "f"), AclAction::Forbid).is_err());
    }

    #[test]
    fn strategies_and_rates() {
        let n = val("IPv6First");
        assert_eq!(
            resolve_strategy(&Val::root(&n, "r")).unwrap().query,
            QueryStrategy::Ipv6First
        );
        let n = val("{query: ipv4only, pick: random}");
        let r = resolve_strategy(&Val::root(&n, "r")).unwrap();
        assert_eq!(
            (r.query, r.pick),
            (QueryStrategy::Ipv4Only, PickStrategy::Random)
        );
        let n = val("1000/s");
        assert_eq!(
            rate(&Val::root(&n, "r")).unwrap(),
            (1000, Duration::from_secs(1))
        );
        let n = val("5/m");
        assert_eq!(
            rate(&Val::root(&n, "r")).unwrap().1,
            Duration::from_secs(60)
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
            let _ = parse_sockaddr(&s, Some(1));
        }
    }
}
