//! [`ResolverStats`]: the query counters of one resolver per record type,
//! and its cache size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::collect::{Readable, Reading};
use crate::names::*;

/// The record type of a query (the `rr_type` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
}

impl RrType {
    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            RrType::A => "A",
            RrType::Aaaa => "AAAA",
        }
    }

    fn index(self) -> usize {
        match self {
            RrType::A => 0,
            RrType::Aaaa => 1,
        }
    }
}

/// How a query sent to the DNS servers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverResult {
    /// Answered with addresses.
    Ok,
    /// No answer in time.
    Timeout,
    /// The server says the name or record does not exist.
    NotFound,
    /// The server refused the query.
    Refused,
    /// The server or the transport failed.
    ServFail,
    /// Another failure (an invalid name): counted in the total only.
    Other,
}

#[derive(Debug, Default)]
struct PerType {
    total: AtomicU64,
    cached: AtomicU64,
    driver_total: AtomicU64,
    driver_timeout: AtomicU64,
    not_found: AtomicU64,
    refused: AtomicU64,
    serv_fail: AtomicU64,
}

/// The counters of one resolver.
#[derive(Debug)]
pub struct ResolverStats {
    name: String,
    stat_id: u64,
    per_type: [PerType; 2],
    cache_capacity: AtomicU64,
    cache_length: AtomicU64,
}

/// The query values of one record type at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverSnapshot {
    /// `resolver.query.total`
    pub query_total: u64,
    /// `resolver.query.cached`
    pub query_cached: u64,
    /// `resolver.query.driver.total`
    pub driver_total: u64,
    /// `resolver.query.driver.timeout`
    pub driver_timeout: u64,
    /// `resolver.query.server.not_found`
    pub not_found: u64,
    /// `resolver.query.server.refused`
    pub refused: u64,
    /// `resolver.query.server.serv_fail`
    pub serv_fail: u64,
}

impl ResolverStats {
    pub(crate) fn with_id(name: &str, stat_id: u64) -> Self {
        ResolverStats {
            name: name.to_string(),
            stat_id,
            per_type: Default::default(),
            cache_capacity: AtomicU64::new(0),
            cache_length: AtomicU64::new(0),
        }
    }

    /// Stats not in any registry: they count, nobody emits them.
    pub fn detached(name: &str) -> Arc<Self> {
        Arc::new(Self::with_id(name, 0))
    }

    /// The resolver name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts a query; `cached` when the cache answered it.
    pub fn add_query(&self, rr: RrType, cached: bool) {
        let t = &self.per_type[rr.index()];
        t.total.fetch_add(1, Ordering::Relaxed);
        if cached {
            t.cached.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a query the driver sent to the DNS servers, by how it ended.
    pub fn add_driver_query(&self, rr: RrType, result: DriverResult) {
        let t = &self.per_type[rr.index()];
        t.driver_total.fetch_add(1, Ordering::Relaxed);
        let c = match result {
            DriverResult::Ok | DriverResult::Other => return,
            DriverResult::Timeout => &t.driver_timeout,
            DriverResult::NotFound => &t.not_found,
            DriverResult::Refused => &t.refused,
            DriverResult::ServFail => &t.serv_fail,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the cache's size now and its capacity.
    pub fn set_cache(&self, length: usize, capacity: usize) {
        self.cache_length.store(length as u64, Ordering::Relaxed);
        self.cache_capacity
            .store(capacity as u64, Ordering::Relaxed);
    }

    /// The query values of one record type now.
    pub fn snapshot(&self, rr: RrType) -> ResolverSnapshot {
        let t = &self.per_type[rr.index()];
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ResolverSnapshot {
            query_total: r(&t.total),
            query_cached: r(&t.cached),
            driver_total: r(&t.driver_total),
            driver_timeout: r(&t.driver_timeout),
            not_found: r(&t.not_found),
            refused: r(&t.refused),
            serv_fail: r(&t.serv_fail),
        }
    }
}

impl Readable for ResolverStats {
    fn stat_id(&self) -> u64 {
        self.stat_id
    }

    fn tags(&self) -> Vec<(&'static str, String)> {
        vec![(TAG_RESOLVER, self.name.clone())]
    }

    fn read(&self, out: &mut Vec<Reading>) {
        for rr in [RrType::A, RrType::Aaaa] {
            let s = self.snapshot(rr);
            let tag = rr.as_str();
            out.extend(
                [
                    (RESOLVER_QUERY_TOTAL, s.query_total),
                    (RESOLVER_QUERY_CACHED, s.query_cached),
                    (RESOLVER_QUERY_DRIVER_TOTAL, s.driver_total),
                    (RESOLVER_QUERY_DRIVER_TIMEOUT, s.driver_timeout),
                    (RESOLVER_QUERY_SERVER_NOT_FOUND, s.not_found),
                    (RESOLVER_QUERY_SERVER_REFUSED, s.refused),
                    (RESOLVER_QUERY_SERVER_SERV_FAIL, s.serv_fail),
                ]
                .map(|(name, v)| Reading::total(name, v).with(TAG_RR_TYPE, tag)),
            );
        }
        out.push(Reading::gauge(
            RESOLVER_MEMORY_CACHE_CAPACITY,
            self.cache_capacity.load(Ordering::Relaxed),
        ));
        out.push(Reading::gauge(
            RESOLVER_MEMORY_CACHE_LENGTH,
            self.cache_length.load(Ordering::Relaxed),
        ));
    }
}
