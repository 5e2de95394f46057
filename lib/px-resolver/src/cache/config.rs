//! The cache keys shared by the `c-ares` and `hickory` resolvers, and how a
//! record's TTL becomes its cache lifetime.
//!
//! Keys (g3proxy's common resolver keys):
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `graceful_stop_wait` | duration | 30s | how long a replaced resolver keeps answering queries already in flight |
//! | `protective_query_timeout` | duration | 60s | hard bound on one upstream query, whatever the driver does |
//! | `positive_min_ttl` | u32 | 30 | lower bound (seconds) for caching an answer |
//! | `positive_max_ttl` (aliases `positive_ttl`, `max_cache_ttl`, `maximum_cache_ttl`) | u32 | 3600 | upper bound before an answer is refreshed |
//! | `negative_min_ttl` (aliases `negative_ttl`, `protective_cache_ttl`) | u32 | 30 | least time "no such name" is cached |
//! | `negative_max_ttl` | u32 | `positive_max_ttl` | most time "no such name" is cached when the server's SOA asks for longer |
//!
//! ```yaml
//! resolver:
//!   - name: default
//!     type: c-ares
//!     positive_min_ttl: 60
//!     negative_ttl: 10
//!     protective_query_timeout: 10s
//! ```

use std::time::Duration;

use px_yaml::{ConfigError, MapReader, values};

/// Most entries one resolver cache holds (both families counted).
pub(crate) const CACHE_CAPACITY: usize = 65_536;

/// The common cache settings of a resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheConfig {
    /// How long a stopped resolver waits for its in-flight queries.
    pub(crate) graceful_stop_wait: Duration,
    /// Hard bound on one upstream query.
    pub(crate) protective_query_timeout: Duration,
    /// Lower TTL bound for answers, seconds.
    pub(crate) positive_min_ttl: u32,
    /// Upper TTL bound for answers, seconds.
    pub(crate) positive_max_ttl: u32,
    /// Least TTL for negative answers, seconds.
    pub(crate) negative_min_ttl: u32,
    /// Most TTL for negative answers, seconds (`None`: `positive_max_ttl`).
    pub(crate) negative_max_ttl: Option<u32>,
    /// Entry limit of the cache.
    pub(crate) capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            graceful_stop_wait: Duration::from_secs(30),
            protective_query_timeout: Duration::from_secs(60),
            positive_min_ttl: 30,
            positive_max_ttl: 3600,
            negative_min_ttl: 30,
            negative_max_ttl: None,
            capacity: CACHE_CAPACITY,
        }
    }
}

impl CacheConfig {
    /// Takes the common keys from a resolver's map.
    pub(crate) fn read(map: &mut MapReader<'_>) -> Result<Self, ConfigError> {
        let mut c = CacheConfig::default();
        if let Some(v) = map.get("graceful_stop_wait") {
            c.graceful_stop_wait = values::duration(&v)?;
        }
        if let Some(v) = map.get("protective_query_timeout") {
            c.protective_query_timeout = values::duration(&v)?;
            if c.protective_query_timeout.is_zero() {
                return Err(v.err("protective_query_timeout must be greater than zero"));
            }
        }
        if let Some(v) = map.get("positive_min_ttl") {
            c.positive_min_ttl = v.as_int()?;
        }
        let max_keys = [
            "positive_max_ttl",
            "positive_ttl",
            "max_cache_ttl",
            "maximum_cache_ttl",
        ];
        if let Some(v) = map.get_any(&max_keys) {
            c.positive_max_ttl = v.as_int()?;
            if c.positive_max_ttl < c.positive_min_ttl {
                return Err(v.err(format!(
                    "positive_max_ttl ({}) must not be less than positive_min_ttl ({})",
                    c.positive_max_ttl, c.positive_min_ttl
                )));
            }
        }
        if c.positive_max_ttl < c.positive_min_ttl {
            c.positive_max_ttl = c.positive_min_ttl;
        }
        if let Some(v) = map.get_any(&["negative_min_ttl", "negative_ttl", "protective_cache_ttl"])
        {
            c.negative_min_ttl = v.as_int()?;
        }
        if let Some(v) = map.get("negative_max_ttl") {
            let max: u32 = v.as_int()?;
            if max < c.negative_min_ttl {
                return Err(v.err(format!(
                    "negative_max_ttl ({max}) must not be less than negative_min_ttl ({})",
                    c.negative_min_ttl
                )));
            }
            c.negative_max_ttl = Some(max);
        }
        Ok(c)
    }

    /// Cache lifetimes of an answer whose records carry `record_ttl`:
    /// `(expire, vanish)` in seconds. Past `expire` a query refreshes the entry
    /// while the old answer is still served; past `vanish` it is gone.
    pub(crate) fn positive_ttls(&self, record_ttl: u32) -> (u32, u32) {
        let min = self.positive_min_ttl;
        let max = self.positive_max_ttl;
        if record_ttl > max.saturating_add(min) {
            (max, record_ttl)
        } else if record_ttl > min.saturating_add(min) {
            (record_ttl - min, record_ttl)
        } else if record_ttl > min {
            (min, record_ttl)
        } else {
            (min, min.saturating_add(1))
        }
    }

    /// Cache lifetime of a "no such name" answer, given the server's negative
    /// TTL (from the SOA) when known.
    pub(crate) fn negative_ttl(&self, server_ttl: Option<u32>) -> u32 {
        let min = self.negative_min_ttl;
        let cap = self
            .negative_max_ttl
            .unwrap_or(self.positive_max_ttl)
            .max(min);
        server_ttl.unwrap_or(min).clamp(min, cap)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use px_yaml::{Val, load_str};

    use super::*;

    fn read(yaml: &str) -> Result<CacheConfig, ConfigError> {
        let node = load_str(yaml, Path::new("r.yaml")).unwrap();
        let mut map = Val::root(&node, "resolver[r]").map().unwrap();
        let c = CacheConfig::read(&mut map)?;
        map.finish()?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        assert_eq!(read("{}").unwrap(), CacheConfig::default());
    }

    #[test]
    fn every_key() {
        let c = read(
            "graceful_stop_wait: 2s\nprotective_query_timeout: 500ms\npositive_min_ttl: 10\n\
             positive_max_ttl: 100\nnegative_min_ttl: 5\nnegative_max_ttl: 50\n",
        )
        .unwrap();
        assert_eq!(c.graceful_stop_wait, Duration::from_secs(2));
        assert_eq!(c.protective_query_timeout, Duration::from_millis(500));
        assert_eq!((c.positive_min_ttl, c.positive_max_ttl), (10, 100));
        assert_eq!(c.negative_min_ttl, 5);
        assert_eq!(c.negative_max_ttl, Some(50));
        assert_eq!(c.negative_ttl(Some(3600)), 50);
    }

    #[test]
    fn aliases() {
        let c = read("positive-ttl: 600\nnegative_ttl: 7\n").unwrap();
        assert_eq!(c.positive_max_ttl, 600);
        assert_eq!(c.negative_min_ttl, 7);
        let c = read("maximum_cache_ttl: 60\nprotective_cache_ttl: 1\n").unwrap();
        assert_eq!((c.positive_max_ttl, c.negative_min_ttl), (60, 1));
    }

    #[test]
    fn errors_name_their_line() {
        let e = read("positive_min_ttl: 100\npositive_max_ttl: 50\n").unwrap_err();
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (2, "resolver[r].positive_max_ttl")
        );
        let e = read("\nprotective_query_timeout: 0\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = read("negative_ttl: 10\nnegative_max_ttl: 5\n").unwrap_err();
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (2, "resolver[r].negative_max_ttl")
        );
        let e = read("negative_ttl: -1\n").unwrap_err();
        assert_eq!(e.key_path, "resolver[r].negative_ttl");
        let e = read("graceful_stop_wait: soon\n").unwrap_err();
        assert!(e.message.contains("duration"), "{e}");
    }

    #[test]
    fn ttl_rules() {
        let c = CacheConfig::default(); // min 30, max 3600
        assert_eq!(c.positive_ttls(0), (30, 31));
        assert_eq!(c.positive_ttls(45), (30, 45));
        assert_eq!(c.positive_ttls(300), (270, 300));
        assert_eq!(c.positive_ttls(86400), (3600, 86400));
        assert_eq!(c.negative_ttl(None), 30);
        assert_eq!(c.negative_ttl(Some(5)), 30);
        assert_eq!(c.negative_ttl(Some(600)), 600);
        assert_eq!(c.negative_ttl(Some(u32::MAX)), 3600);
    }
}
