//! `stat:`: where the StatsD metrics go (g3proxy's statsd client config).
//! Read at start only: a reload does not change it.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `target` | map | | `udp:` (as `target_udp`) or `unix:` (as `target_unix`) |
//! | `target_udp` | socket address, or map `address` (default `127.0.0.1:8125`) + `bind_ip` | `127.0.0.1:8125` | a StatsD server on UDP |
//! | `target_unix` | absolute path, or map `path` | | a StatsD server on a Unix datagram socket |
//! | `prefix` | metric name | `g3proxy` | prepended to every metric name, with a dot |
//! | `emit_interval` (alias `emit_duration`) | duration | `200ms` | how often every counter is read and sent |
//!
//! ```yaml
//! stat:
//!   target:
//!     udp: 127.0.0.1:8125
//!   prefix: g3proxy
//!   emit_duration: 200ms
//! ```

use std::path::PathBuf;

use px_core::stats::statsd::DEFAULT_UDP_ADDR;
use px_core::stats::{StatsdConfig, StatsdTarget};
use px_yaml::{ConfigError, Val, values};

/// A metric name or prefix: letters, digits, `-`, `_`, `.`, `/` (OpenTSDB's set).
fn metric_name(v: &Val<'_>) -> Result<String, ConfigError> {
    let s = v.as_text()?;
    if s.is_empty() {
        return Err(v.err("a metric name must not be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        return Err(v.err(format!(
            "invalid character {c:?} in metric name {s:?} (letters, digits, -, _, ., / only)"
        )));
    }
    Ok(s)
}

/// `target_udp`: an address, or `{address, bind_ip}`.
fn udp_target(v: &Val<'_>) -> Result<StatsdTarget, ConfigError> {
    if !v.is_map() {
        return Ok(StatsdTarget::Udp {
            addr: values::sockaddr(v, Some(8125))?,
            bind_ip: None,
        });
    }
    let mut m = v.map()?;
    let addr = match m.get("address") {
        Some(a) => values::sockaddr(&a, Some(8125))?,
        None => DEFAULT_UDP_ADDR,
    };
    let bind_ip = m.get("bind_ip").map(|b| values::ip_addr(&b)).transpose()?;
    m.finish()?;
    Ok(StatsdTarget::Udp { addr, bind_ip })
}

/// `target_unix`: an absolute path, or `{path}`.
fn unix_target(v: &Val<'_>) -> Result<StatsdTarget, ConfigError> {
    let (at, path) = if v.is_map() {
        let mut m = v.map()?;
        let p = m.required("path")?;
        let text = p.as_text()?;
        m.finish()?;
        (p, text)
    } else {
        (v.clone(), v.as_text()?)
    };
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(at.err(format!(
            "the StatsD socket path must be absolute: {}",
            path.display()
        )));
    }
    Ok(StatsdTarget::Unix(path))
}

/// Parses the `stat:` section (`stat: ~` takes every default).
pub fn parse(v: &Val<'_>) -> Result<StatsdConfig, ConfigError> {
    let mut cfg = StatsdConfig::default();
    if v.is_null() {
        return Ok(cfg);
    }
    let mut m = v.map()?;
    let mut targets = Vec::new();
    if let Some(t) = m.get("target") {
        let mut tm = t.map()?;
        if let Some(u) = tm.get("udp") {
            targets.push((u.clone(), udp_target(&u)?));
        }
        if let Some(u) = tm.get("unix") {
            targets.push((u.clone(), unix_target(&u)?));
        }
        tm.finish()?;
    }
    if let Some(u) = m.get("target_udp") {
        targets.push((u.clone(), udp_target(&u)?));
    }
    if let Some(u) = m.get("target_unix") {
        targets.push((u.clone(), unix_target(&u)?));
    }
    if let Some((at, _)) = targets.get(1) {
        return Err(at.err("stat: set one target (udp or unix), not several"));
    }
    if let Some((_, t)) = targets.pop() {
        cfg.target = t;
    }
    if let Some(p) = m.get("prefix") {
        cfg.prefix = metric_name(&p)?;
    }
    if let Some(d) = m.get_any(&["emit_interval", "emit_duration"]) {
        let interval = values::duration(&d)?;
        if interval.is_zero() {
            return Err(d.err("emit interval must be greater than 0"));
        }
        cfg.emit_interval = interval;
    }
    m.finish()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn read(text: &str) -> Result<StatsdConfig, ConfigError> {
        let n = px_yaml::load_str(text, Path::new("main.yaml")).unwrap();
        parse(&Val::root(&n, "stat"))
    }

    #[test]
    fn user_guide_form() {
        let c =
            read("{target: {udp: 127.0.0.1:9125}, prefix: g3proxy, emit_duration: 100ms}").unwrap();
        assert_eq!(
            c.target,
            StatsdTarget::Udp {
                addr: "127.0.0.1:9125".parse().unwrap(),
                bind_ip: None
            }
        );
        assert_eq!(c.prefix, "g3proxy");
        assert_eq!(c.emit_interval, Duration::from_millis(100));
    }

    #[test]
    fn defaults() {
        let c = read("~").unwrap();
        assert_eq!(c, StatsdConfig::default());
        assert_eq!(c.emit_interval, Duration::from_millis(200));
        assert_eq!(
            c.target,
            StatsdTarget::Udp {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8125),
                bind_ip: None
            }
        );
        assert_eq!(read("{}").unwrap(), StatsdConfig::default());
    }

    #[test]
    fn other_forms() {
        let c = read("{target_udp: {address: '[::1]:8126', bind_ip: '::1'}, emit_interval: 1s}")
            .unwrap();
        assert_eq!(
            c.target,
            StatsdTarget::Udp {
                addr: "[::1]:8126".parse().unwrap(),
                bind_ip: Some("::1".parse().unwrap())
            }
        );
        assert_eq!(c.emit_interval, Duration::from_secs(1));
        let c = read("{target_udp: {bind_ip: 127.0.0.1}}").unwrap();
        assert!(matches!(c.target, StatsdTarget::Udp { addr, .. } if addr.port() == 8125));
        let c = read("{target_unix: /run/statsd.sock, prefix: edge.proxy-1}").unwrap();
        assert_eq!(c.target, StatsdTarget::Unix("/run/statsd.sock".into()));
        assert_eq!(c.prefix, "edge.proxy-1");
        let c = read("{target: {unix: {path: /tmp/s.sock}}}").unwrap();
        assert_eq!(c.target, StatsdTarget::Unix("/tmp/s.sock".into()));
        let c = read("{target_udp: 10.0.0.1}").unwrap();
        assert!(matches!(c.target, StatsdTarget::Udp { addr, .. } if addr.port() == 8125));
    }

    #[test]
    fn errors() {
        for (text, want) in [
            ("{target: {tcp: 1.2.3.4:5}}", "unknown key `tcp`"),
            ("{target_unix: relative.sock}", "absolute"),
            ("{prefix: 'bad prefix'}", "invalid character"),
            ("{prefix: ''}", "empty"),
            ("{emit_duration: 0}", "greater than 0"),
            ("{emit_duration: soon}", "invalid duration"),
            (
                "{target: {udp: 127.0.0.1:1}, target_unix: /a.sock}",
                "one target",
            ),
            ("{target_udp: {address: nowhere}}", "invalid socket address"),
            ("{cache_size: 1}", "unknown key `cache_size`"),
        ] {
            let e = read(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
