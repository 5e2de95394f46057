//! TLS protocol versions: g3proxy's "tls version" values (`tls1.2`, `1.3`, ...) and the rustls
//! version list a `min_tls_version` / `max_tls_version` / `protocol` setting allows.
//!
//! rustls speaks TLS 1.2 and 1.3 only: a minimum below 1.2 means 1.2, a maximum below 1.2 (or a
//! `protocol` of `tls1.0`/`tls1.1`/`tlcp`) is a config error saying so.

use px_yaml::{ConfigError, Val, Value};
use rustls::SupportedProtocolVersion;

/// A TLS version as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.0
    V1_0,
    /// TLS 1.1
    V1_1,
    /// TLS 1.2
    V1_2,
    /// TLS 1.3
    V1_3,
}

impl TlsVersion {
    /// Parses `tls1.2`, `TLSv1.2`, `tls12`, `1.2`.
    pub fn parse(s: &str) -> Option<TlsVersion> {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .strip_prefix("tlsv")
            .or_else(|| t.strip_prefix("tls"))
            .unwrap_or(&t)
            .trim_start_matches(['_', '-', ' ']);
        match t {
            "1.0" | "10" | "1_0" | "1" => Some(TlsVersion::V1_0),
            "1.1" | "11" | "1_1" => Some(TlsVersion::V1_1),
            "1.2" | "12" | "1_2" => Some(TlsVersion::V1_2),
            "1.3" | "13" | "1_3" => Some(TlsVersion::V1_3),
            _ => None,
        }
    }

    /// A version value: a string or a number (`1.2`).
    pub fn from_val(v: &Val<'_>) -> Result<TlsVersion, ConfigError> {
        let text = match &v.node().value {
            Value::Float(f) => format!("{f:.1}"),
            Value::Int(i) => i.to_string(),
            _ => v.as_text()?,
        };
        TlsVersion::parse(&text).ok_or_else(|| {
            v.err(format!(
                "invalid TLS version {text:?} (tls1.0, tls1.1, tls1.2 or tls1.3)"
            ))
        })
    }
}

/// The rustls versions between `min` and `max` (both optional).
pub fn versions_between(
    min: Option<(TlsVersion, &Val<'_>)>,
    max: Option<(TlsVersion, &Val<'_>)>,
) -> Result<Vec<&'static SupportedProtocolVersion>, ConfigError> {
    let lo = min.map(|(v, _)| v).unwrap_or(TlsVersion::V1_2);
    let hi = max.map(|(v, _)| v).unwrap_or(TlsVersion::V1_3);
    if let Some((v, at)) = max
        && v < TlsVersion::V1_2
    {
        return Err(
            at.err("rustls supports TLS 1.2 and 1.3 only: the maximum must be tls1.2 or tls1.3")
        );
    }
    if lo > hi {
        let at = min.map(|(_, a)| a).or(max.map(|(_, a)| a));
        let msg = "min_tls_version is above max_tls_version";
        return Err(match at {
            Some(a) => a.err(msg),
            None => ConfigError::file("", msg),
        });
    }
    let mut out = Vec::new();
    if lo <= TlsVersion::V1_2 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= TlsVersion::V1_3 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// Why `protocol: tlcp` is refused by a rustls client.
#[cfg(feature = "vendored-tongsuo")]
const TLCP_HERE: &str =
    "protocol `tlcp` is supported in the tls_client of tcp_stream and tls_stream only";
#[cfg(not(feature = "vendored-tongsuo"))]
const TLCP_HERE: &str = "protocol `tlcp` needs a g3proxy built with the `vendored-tongsuo` feature \
     (TLCP on Tongsuo), which this build does not have";

/// The versions of a `protocol` value (a client's fixed protocol).
pub fn protocol_versions(
    v: &Val<'_>,
) -> Result<Vec<&'static SupportedProtocolVersion>, ConfigError> {
    let text = v.as_text()?;
    if text.trim().to_ascii_lowercase().starts_with("tlcp") {
        return Err(v.err(TLCP_HERE));
    }
    match TlsVersion::parse(&text) {
        Some(TlsVersion::V1_2) => Ok(vec![&rustls::version::TLS12]),
        Some(TlsVersion::V1_3) => Ok(vec![&rustls::version::TLS13]),
        Some(_) => Err(v.err("rustls supports TLS 1.2 and 1.3 only")),
        None => Err(v.err(format!("invalid protocol {text:?} (tls1.2 or tls1.3)"))),
    }
}

/// A version range from a map's `min_tls_version` / `max_tls_version` keys.
pub fn versions_from_map(
    map: &mut px_yaml::MapReader<'_>,
) -> Result<Vec<&'static SupportedProtocolVersion>, ConfigError> {
    let min = map.get("min_tls_version");
    let max = map.get("max_tls_version");
    let min_v = min.as_ref().map(TlsVersion::from_val).transpose()?;
    let max_v = max.as_ref().map(TlsVersion::from_val).transpose()?;
    versions_between(min_v.zip(min.as_ref()), max_v.zip(max.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_spellings() {
        assert_eq!(TlsVersion::parse("tls1.2"), Some(TlsVersion::V1_2));
        assert_eq!(TlsVersion::parse("TLSv1.3"), Some(TlsVersion::V1_3));
        assert_eq!(TlsVersion::parse("1.0"), Some(TlsVersion::V1_0));
        assert_eq!(TlsVersion::parse("tls1_1"), Some(TlsVersion::V1_1));
        assert_eq!(TlsVersion::parse("ssl3"), None);
    }
}
