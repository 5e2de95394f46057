//! `c-ares` (also `c_ares`, `cares`): a resolver on the c-ares library.
//!
//! Plain DNS over UDP (TCP when an answer is truncated) to the configured name
//! servers, or to those of `/etc/resolv.conf` when none is given. c-ares runs
//! its own event thread; its retry schedule starts at `each_timeout` per
//! server and try (`each_tries` tries each), growing up to `max_timeout`.
//! c-ares' own query cache is turned off: answers are cached by the common
//! cache in front ([`crate::cache`]), which also bounds every query by
//! `protective_query_timeout`. Built against a vendored c-ares 1.34 (needs
//! `cmake` at build time), so every key below is supported.
//!
//! Keys: `server`, `each_timeout` (ms), `each_tries`, `max_timeout` (ms),
//! `udp_max_quires` (also `udp_max_queries`), `round_robin`,
//! `socket_send_buffer_size`, `socket_recv_buffer_size`, `bind_ipv4`,
//! `bind_ipv6`, and the cache keys `graceful_stop_wait`,
//! `protective_query_timeout`, `positive_min_ttl`, `positive_max_ttl`,
//! `negative_min_ttl`, `negative_max_ttl`. See `doc/config/resolver/c-ares.md`.
//!
//! ```yaml
//! resolver:
//!   - name: default
//!     type: c-ares
//!     server: 223.5.5.5 223.6.6.6
//!     bind_ipv4: 192.168.10.1
//! ```

mod config;

use std::net::IpAddr;
use std::sync::Arc;

use c_ares_resolver::{FutureResolver, Options};
use px_core::{AddrFamily, ModuleLookup, ResolveError, Resolver};
use px_yaml::{ConfigError, MapReader};

use crate::cache::{Answer, CachedResolver, Driver, DriverFuture, Failure};
pub(crate) use config::CaresConfig;

/// Builds a `c-ares` resolver from its config map.
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    let config = CaresConfig::read(&mut map)?;
    let at = map.val().clone();
    map.finish()?;
    let cache = config.cache.clone();
    let stats = crate::stats::resolver_stats(lookup, name);
    let resolver = CachedResolver::start_counted(name, "c-ares", cache, stats, move || {
        CaresDriver::new(&config)
    })
    .map_err(|e| at.err(e))?;
    Ok(Arc::new(resolver))
}

/// Queries through one c-ares channel.
struct CaresDriver {
    resolver: FutureResolver,
}

impl CaresDriver {
    fn new(c: &CaresConfig) -> Result<Self, String> {
        let mut opts = Options::new();
        opts.set_timeout(c.each_timeout).set_tries(c.each_tries);
        if c.round_robin {
            opts.set_rotate();
        } else {
            opts.set_no_rotate();
        }
        if let Some(d) = c.max_timeout {
            opts.set_max_timeout(d);
        }
        opts.set_udp_max_queries(c.udp_max_queries);
        if let Some(n) = c.socket_send_buffer_size {
            opts.set_sock_send_buffer_size(n);
        }
        if let Some(n) = c.socket_recv_buffer_size {
            opts.set_sock_receive_buffer_size(n);
        }
        // 0 disables c-ares' own cache: ours sits in front
        opts.set_query_cache_max_ttl(0);
        let resolver =
            FutureResolver::with_options(opts).map_err(|e| format!("cannot start c-ares: {e}"))?;
        if !c.servers.is_empty() {
            let list: Vec<String> = c.servers.iter().map(|s| s.to_string()).collect();
            resolver
                .set_servers(&list)
                .map_err(|e| format!("c-ares refused the servers {list:?}: {e}"))?;
        }
        if let Some(ip) = c.bind_ipv4 {
            resolver.set_local_ipv4(ip);
        }
        if let Some(ip) = c.bind_ipv6 {
            resolver.set_local_ipv6(ip);
        }
        Ok(CaresDriver { resolver })
    }
}

impl Driver for CaresDriver {
    fn query(&self, domain: &str, family: AddrFamily) -> DriverFuture {
        let owned = domain.to_string();
        match family {
            AddrFamily::Ipv4 => {
                let f = self.resolver.query_a(domain);
                Box::pin(async move {
                    match f.await {
                        Ok(r) => Ok(answer(r.iter().map(|a| (IpAddr::V4(a.ipv4()), a.ttl())))),
                        Err(e) => Err(failure(e, owned)),
                    }
                })
            }
            AddrFamily::Ipv6 => {
                let f = self.resolver.query_aaaa(domain);
                Box::pin(async move {
                    match f.await {
                        Ok(r) => Ok(answer(r.iter().map(|a| (IpAddr::V6(a.ipv6()), a.ttl())))),
                        Err(e) => Err(failure(e, owned)),
                    }
                })
            }
        }
    }
}

fn answer(records: impl Iterator<Item = (IpAddr, i32)>) -> Answer {
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for (ip, t) in records {
        addrs.push(ip);
        ttl = ttl.min(u32::try_from(t).unwrap_or(0));
    }
    if addrs.is_empty() {
        ttl = 0;
    }
    Answer { addrs, ttl }
}

fn failure(e: c_ares::Error, domain: String) -> Failure {
    use c_ares::Error as E;
    if e == E::EREFUSED {
        return Failure::server_refused();
    }
    let error = match e {
        E::ENODATA | E::ENOTFOUND => ResolveError::NotFound(domain),
        E::ETIMEOUT => ResolveError::Timeout,
        E::EBADNAME => ResolveError::InvalidName,
        E::ECONNREFUSED => ResolveError::ServerFailure("connection refused".to_string()),
        E::ESERVFAIL => ResolveError::ServerFailure("server failure (SERVFAIL)".to_string()),
        other => ResolveError::ServerFailure(other.to_string()),
    };
    error.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_resolve_errors() {
        let f = |e| failure(e, "x.test".into()).error;
        assert_eq!(
            f(c_ares::Error::ENOTFOUND),
            ResolveError::NotFound("x.test".into())
        );
        assert_eq!(
            f(c_ares::Error::ENODATA),
            ResolveError::NotFound("x.test".into())
        );
        assert_eq!(f(c_ares::Error::ETIMEOUT), ResolveError::Timeout);
        assert_eq!(f(c_ares::Error::EBADNAME), ResolveError::InvalidName);
        assert!(matches!(
            f(c_ares::Error::ECONNREFUSED),
            ResolveError::ServerFailure(_)
        ));
        let refused = failure(c_ares::Error::EREFUSED, "x.test".into());
        assert!(refused.server_refused);
        assert!(matches!(refused.error, ResolveError::ServerFailure(_)));
    }

    #[test]
    fn answer_takes_the_smallest_ttl() {
        let a = answer(
            [
                (IpAddr::from([1, 1, 1, 1]), 300),
                (IpAddr::from([1, 0, 0, 1]), 60),
            ]
            .into_iter(),
        );
        assert_eq!(a.ttl, 60);
        assert_eq!(a.addrs.len(), 2);
        assert_eq!(
            answer([(IpAddr::from([1, 1, 1, 1]), -5)].into_iter()).ttl,
            0
        );
    }
}
