//! The `direct_float` config: `direct_fixed`'s keys (read by
//! [`DirectFixedConfig::parse`]) without `bind_ip`, plus g3proxy's cache keys.
//!
//! ```yaml
//! name: float
//! type: direct_float
//! resolver: default                 # required
//! cache_ipv4: float-v4.json         # published IPv4 set, restored at start
//! cache_ipv6: float-v6.json         # relative to the file holding this module
//! egress_network_filter: {default: allow, allow: 192.0.2.0/24}
//! ```
//!
//! Every key is described in `doc/config/escaper/direct_float.md`.

use std::path::PathBuf;

use px_core::ModuleLookup;
use px_yaml::section::resolve_path;
use px_yaml::{ConfigError, MapReader};

use crate::direct_fixed::DirectFixedConfig;

/// The parsed `direct_float` config.
pub struct DirectFloatConfig {
    /// The keys it shares with `direct_fixed` (`bind_ip` always empty).
    pub direct: DirectFixedConfig,
    /// `cache_ipv4`: where the published IPv4 set is kept.
    pub cache_ipv4: Option<PathBuf>,
    /// `cache_ipv6`: where the published IPv6 set is kept.
    pub cache_ipv6: Option<PathBuf>,
}

impl DirectFloatConfig {
    /// Parses the map (with `name` and `type` already taken).
    pub fn parse(mut map: MapReader<'_>, lookup: &dyn ModuleLookup) -> Result<Self, ConfigError> {
        if let Some(v) = map.get("bind_ip") {
            return Err(v.err(
                "direct_float has no `bind_ip`: publish bind addresses with \
                 `g3proxy-ctl escaper NAME publish` (or use direct_fixed)",
            ));
        }
        let mut path = |key: &str| -> Result<Option<PathBuf>, ConfigError> {
            match map.get(key) {
                Some(v) => {
                    let s = v.as_str()?;
                    if s.is_empty() {
                        return Err(v.err("cache file path must not be empty"));
                    }
                    Ok(Some(resolve_path(v.file(), s)))
                }
                None => Ok(None),
            }
        };
        let cache_ipv4 = path("cache_ipv4")?;
        let cache_ipv6 = path("cache_ipv6")?;
        let direct = DirectFixedConfig::parse(map, lookup)?;
        Ok(DirectFloatConfig {
            direct,
            cache_ipv4,
            cache_ipv6,
        })
    }
}
