//! The resolvers' hooks into px-stats: a resolver's stats object (taken by
//! name from the daemon's registry while it is built, so it survives
//! reloads), and how a driver's query result is counted.
//!
//! The cache counts, per record type, every query for a domain
//! (`resolver.query.total`), those it answered itself
//! (`resolver.query.cached`), and every query its driver sent upstream with
//! how it ended (`resolver.query.driver.*`, `resolver.query.server.*`); and
//! its size after each change (`resolver.memory.cache.*`). Literal IPs and
//! `localhost` are answered without a query and not counted.

use std::sync::Arc;

use px_core::stats::{DriverResult, ResolverStats, RrType};
use px_core::{AddrFamily, ModuleLookup, ResolveError};

use crate::cache::{Answer, Failure};

/// The stats object of the resolver `name`: the registry's, or a detached one.
pub(crate) fn resolver_stats(lookup: &dyn ModuleLookup, name: &str) -> Arc<ResolverStats> {
    match lookup.stats() {
        Some(r) => r.resolver(name),
        None => ResolverStats::detached(name),
    }
}

/// The record type queried for a family.
pub(crate) fn rr_type(family: AddrFamily) -> RrType {
    match family {
        AddrFamily::Ipv4 => RrType::A,
        AddrFamily::Ipv6 => RrType::Aaaa,
    }
}

/// How a driver query ended, for its counter.
pub(crate) fn driver_result(r: &Result<Answer, Failure>) -> DriverResult {
    match r {
        Ok(a) if a.addrs.is_empty() => DriverResult::NotFound,
        Ok(_) => DriverResult::Ok,
        Err(f) if f.server_refused => DriverResult::Refused,
        Err(f) => match f.error {
            ResolveError::Timeout => DriverResult::Timeout,
            ResolveError::NotFound(_) => DriverResult::NotFound,
            ResolveError::Refused => DriverResult::Refused,
            ResolveError::ServerFailure(_) => DriverResult::ServFail,
            ResolveError::InvalidName => DriverResult::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results() {
        let ok = Ok(Answer {
            addrs: vec![[127, 0, 0, 1].into()],
            ttl: 30,
        });
        assert_eq!(driver_result(&ok), DriverResult::Ok);
        let empty = Ok(Answer {
            addrs: vec![],
            ttl: 30,
        });
        assert_eq!(driver_result(&empty), DriverResult::NotFound);
        let t: Result<Answer, Failure> = Err(ResolveError::Timeout.into());
        assert_eq!(driver_result(&t), DriverResult::Timeout);
        let s: Result<Answer, Failure> = Err(ResolveError::ServerFailure("x".into()).into());
        assert_eq!(driver_result(&s), DriverResult::ServFail);
        let r: Result<Answer, Failure> = Err(Failure::server_refused());
        assert_eq!(driver_result(&r), DriverResult::Refused);
        assert_eq!(rr_type(AddrFamily::Ipv6).as_str(), "AAAA");
    }
}
