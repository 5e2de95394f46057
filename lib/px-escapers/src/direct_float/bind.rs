//! The published bind addresses of a `direct_float` escaper: what
//! `g3proxy-ctl escaper NAME publish JSON` sets, what the cache files keep.
//!
//! The published document is a map with `ipv4` and/or `ipv6`; each value is
//! one bind IP or a list of them, and a bind IP is an address string or a map
//! (g3proxy's keys):
//!
//! ```json
//! {"ipv4": "192.0.2.7"}
//! {"ipv4": ["192.0.2.7", {"ip": "192.0.2.8", "expire": "2030-01-01T00:00:00Z"}],
//!  "ipv6": []}
//! ```
//!
//! A key replaces the whole set of its family (an empty list or `null`
//! clears it); a family not named keeps its set. Map keys: `ip` (required),
//! `expire` (RFC 3339; an expired address is never used), and `id`, `isp`,
//! `eip`, `area` (kept, written to the cache, not used yet). A cache file
//! holds one family's set as a JSON list of maps.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

/// One published bind address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindEntry {
    /// The address to bind.
    pub ip: IpAddr,
    /// When it stops being used.
    pub expire: Option<SystemTime>,
    /// `id`, `isp`, `eip`, `area` as published (for the cache file).
    pub extra: Vec<(String, String)>,
}

impl BindEntry {
    /// Whether it may be used at `now`.
    pub fn alive(&self, now: SystemTime) -> bool {
        self.expire.is_none_or(|e| now < e)
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ip".into(), json!(self.ip.to_string()));
        if let Some(e) = self.expire {
            m.insert(
                "expire".into(),
                json!(humantime::format_rfc3339_seconds(e).to_string()),
            );
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), json!(v));
        }
        Value::Object(m)
    }
}

/// Parses an RFC 3339 date-time (`Z` or a `+HH:MM` / `-HH:MM` offset).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Some(base) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return humantime::parse_rfc3339_weak(base).ok();
    }
    if s.len() < 7 {
        return None;
    }
    let (base, off) = s.split_at(s.len() - 6);
    let sign = match off.as_bytes().first() {
        Some(b'+') => 1i64,
        Some(b'-') => -1i64,
        _ => return None,
    };
    let (h, m) = off[1..].split_once(':')?;
    let secs = (h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60) as i64 * sign;
    let local = humantime::parse_rfc3339_weak(base).ok()?;
    let shift = Duration::from_secs(secs.unsigned_abs());
    // local time = UTC + offset, so UTC = local - offset
    if secs >= 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

fn entry(v: &Value, want_v6: bool) -> Result<BindEntry, String> {
    let (ip_text, map) = match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(m) => match m.get("ip") {
            Some(Value::String(s)) => (s.as_str(), Some(m)),
            _ => return Err("a bind IP map needs `ip` as a string".into()),
        },
        other => return Err(format!("a bind IP is a string or a map, not {other}")),
    };
    let ip: IpAddr = ip_text
        .parse()
        .map_err(|_| format!("`{ip_text}` is not an IP address"))?;
    let ip = ip.to_canonical();
    if ip.is_ipv6() != want_v6 {
        let key = if want_v6 { "ipv6" } else { "ipv4" };
        return Err(format!("{ip} is not an address of family `{key}`"));
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{ip} can not be a bind address"));
    }
    let mut e = BindEntry {
        ip,
        expire: None,
        extra: Vec::new(),
    };
    if let Some(m) = map {
        for (k, v) in m {
            match k.as_str() {
                "ip" => {}
                "expire" => {
                    let s = v.as_str().ok_or("`expire` must be an RFC 3339 string")?;
                    e.expire = Some(
                        parse_rfc3339(s)
                            .ok_or(format!("`expire`: bad RFC 3339 date-time {s:?}"))?,
                    );
                }
                "id" | "isp" | "eip" | "area" => {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    e.extra.push((k.clone(), s));
                }
                other => return Err(format!("unknown bind IP key `{other}`")),
            }
        }
    }
    Ok(e)
}

/// One family's list: a single bind IP, a list, or `null` (empty).
pub fn parse_family(v: &Value, want_v6: bool) -> Result<Vec<BindEntry>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|i| entry(i, want_v6)).collect(),
        one => Ok(vec![entry(one, want_v6)?]),
    }
}

/// A published document: the new set per family (`None`: not named, keep).
pub type Published = (Option<Vec<BindEntry>>, Option<Vec<BindEntry>>);

/// Parses a published document.
pub fn parse_published(json: &str) -> Result<Published, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("the published data must be a JSON map with `ipv4` and/or `ipv6`".into());
    };
    let mut out: Published = (None, None);
    for (k, v) in &m {
        match k.as_str() {
            "ipv4" => out.0 = Some(parse_family(v, false).map_err(|e| format!("ipv4: {e}"))?),
            "ipv6" => out.1 = Some(parse_family(v, true).map_err(|e| format!("ipv6: {e}"))?),
            other => return Err(format!("unknown key `{other}` (use `ipv4` and `ipv6`)")),
        }
    }
    if out.0.is_none() && out.1.is_none() {
        return Err("nothing to publish: give `ipv4` and/or `ipv6`".into());
    }
    Ok(out)
}

/// Writes a family's set to its cache file (atomically: temp file, rename).
pub fn save_cache(path: &Path, set: &[BindEntry]) -> std::io::Result<()> {
    let list = Value::Array(set.iter().map(BindEntry::to_json).collect());
    let text = format!("{list:#}\n");
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Reads a family's set from its cache file; a missing file is an empty set.
pub fn load_cache(path: &Path, want_v6: bool) -> Result<Vec<BindEntry>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    let now = SystemTime::now();
    let mut set = parse_family(&v, want_v6).map_err(|e| format!("{}: {e}", path.display()))?;
    set.retain(|e| e.alive(now));
    Ok(set)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn published_forms() {
        let (v4, v6) = parse_published(r#"{"ipv4": "192.0.2.7"}"#).unwrap();
        assert_eq!(v4.unwrap()[0].ip.to_string(), "192.0.2.7");
        assert!(v6.is_none());
        let (v4, v6) = parse_published(
            r#"{"ipv4": ["192.0.2.7", {"ip": "192.0.2.8", "expire": "2030-01-01T08:00:00+08:00", "isp": "x"}], "ipv6": null}"#,
        )
        .unwrap();
        let v4 = v4.unwrap();
        assert_eq!(v4.len(), 2);
        assert_eq!(
            v4[1].expire,
            Some(humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap())
        );
        assert_eq!(v6.unwrap(), Vec::new());
        for bad in [
            "[]",
            "{}",
            r#"{"ipv4": "2001:db8::1"}"#,
            r#"{"ipv4": "0.0.0.0"}"#,
            r#"{"ipv4": {"ip": "192.0.2.1", "expire": "soon"}}"#,
            r#"{"ipv5": "1.2.3.4"}"#,
            "not json",
        ] {
            assert!(parse_published(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339() {
        let z = humantime::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00Z"), Some(z));
        assert_eq!(parse_rfc3339("2024-05-01T14:00:00+02:00"), Some(z));
        assert_eq!(parse_rfc3339("2024-05-01T07:30:00-04:30"), Some(z));
        assert_eq!(parse_rfc3339("2024-05-01"), None);
    }

    #[test]
    fn cache_round_trip_drops_expired() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c/v4.json");
        let (v4, _) = parse_published(
            r#"{"ipv4": ["192.0.2.7", {"ip": "192.0.2.8", "expire": "2000-01-01T00:00:00Z"}, {"ip": "192.0.2.9", "id": "a"}]}"#,
        )
        .unwrap();
        save_cache(&p, &v4.unwrap()).unwrap();
        let back = load_cache(&p, false).unwrap();
        let ips: Vec<String> = back.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["192.0.2.7", "192.0.2.9"]);
        assert_eq!(back[1].extra, vec![("id".to_string(), "a".to_string())]);
        assert!(
            load_cache(&dir.path().join("none"), false)
                .unwrap()
                .is_empty()
        );
    }
}
