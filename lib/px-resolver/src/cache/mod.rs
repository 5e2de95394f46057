//! The caching front shared by the `c-ares` and `hickory` resolvers.
//!
//! A [`Driver`] asks upstream servers for one family of one name; the
//! [`CachedResolver`] in front of it:
//!
//! - answers from a bounded cache (at most [`config::CACHE_CAPACITY`] entries;
//!   the entries closest to vanishing are evicted first) whose lifetimes
//!   follow g3proxy's TTL rules (see [`CacheConfig::positive_ttls`]);
//! - keeps "no such name" for `negative_min_ttl`, but never caches timeouts
//!   or server failures, so a recovered server is used at once;
//! - past an answer's expire time (and before its record TTL runs out)
//!   serves the old answer while one background query refreshes it, and
//!   keeps it when that refresh fails;
//! - shares one upstream query among all callers asking the same name and
//!   family at the same time;
//! - bounds every upstream query by `protective_query_timeout`
//!   (`ResolveError::Timeout` past it);
//! - runs upstream queries on the resolver's own thread ([`runtime`]).
//!
//! Keys: those of [`CacheConfig`] (`graceful_stop_wait`,
//! `protective_query_timeout`, `positive_min_ttl`, `positive_max_ttl`,
//! `negative_min_ttl`, `negative_max_ttl`), read by each driver's config.
//!
//! ```yaml
//! resolver:
//!   - name: default
//!     type: hickory
//!     server: 127.0.0.1
//!     positive_max_ttl: 600
//! ```

mod config;
mod runtime;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use px_core::{AddrFamily, ResolveError, Resolver};
use tokio::sync::watch;

use crate::name::{self, QueryName};
pub(crate) use config::CacheConfig;
use runtime::{InFlight, ResolverThread};

/// What a driver's query resolves to.
pub(crate) type DriverFuture = Pin<Box<dyn Future<Output = Result<Answer, Failure>> + Send>>;

/// An upstream answer: the addresses and the smallest TTL of their records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The addresses, in the server's order.
    pub(crate) addrs: Vec<IpAddr>,
    /// The smallest record TTL, seconds.
    pub(crate) ttl: u32,
}

/// An upstream failure, with the server's negative TTL when it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What went wrong.
    pub(crate) error: ResolveError,
    /// The negative TTL from the SOA of an NXDOMAIN/NODATA answer.
    pub(crate) ttl: Option<u32>,
    /// The server answered REFUSED: a server failure for the client (not the
    /// proxy's policy, so not a 403), counted as `resolver.query.server.refused`.
    pub(crate) server_refused: bool,
}

impl Failure {
    /// A REFUSED answer from the DNS server.
    pub(crate) fn server_refused() -> Self {
        Failure {
            error: ResolveError::ServerFailure("query refused by server".to_string()),
            ttl: None,
            server_refused: true,
        }
    }
}

impl From<ResolveError> for Failure {
    fn from(error: ResolveError) -> Self {
        Failure {
            error,
            ttl: None,
            server_refused: false,
        }
    }
}

/// Asks upstream servers; one query per call, no caching.
pub(crate) trait Driver: Send + Sync + 'static {
    /// Queries one family of `domain` (normalized, without trailing dot).
    fn query(&self, domain: &str, family: AddrFamily) -> DriverFuture;
}

type Outcome = Result<Arc<[IpAddr]>, ResolveError>;
type Key = (String, AddrFamily);

#[derive(Debug)]
struct Entry {
    outcome: Outcome,
    expire: Instant,
    vanish: Instant,
}

#[derive(Debug, Default)]
struct Slot {
    ready: Option<Entry>,
    pending: Option<watch::Receiver<Option<Outcome>>>,
}

impl Slot {
    fn pending_alive(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_ok())
    }
}

struct Shared {
    driver: Box<dyn Driver>,
    config: CacheConfig,
    slots: Mutex<HashMap<Key, Slot>>,
    handle: tokio::runtime::Handle,
    in_flight: Arc<InFlight>,
    stats: Arc<px_core::stats::ResolverStats>,
}

/// A resolver module made of a driver behind the cache.
pub(crate) struct CachedResolver {
    name: String,
    kind: &'static str,
    shared: Arc<Shared>,
    _thread: ResolverThread,
}

impl CachedResolver {
    /// Starts the resolver thread, builds the driver inside its runtime, and
    /// returns the module (counting into a detached stats object).
    #[cfg(test)]
    pub(crate) fn start<D, F>(
        name: &str,
        kind: &'static str,
        config: CacheConfig,
        make_driver: F,
    ) -> Result<Self, String>
    where
        D: Driver,
        F: FnOnce() -> Result<D, String>,
    {
        let stats = px_core::stats::ResolverStats::detached(name);
        Self::start_counted(name, kind, config, stats, make_driver)
    }

    /// As `start`, counting queries into `stats` (see `crate::stats`).
    pub(crate) fn start_counted<D, F>(
        name: &str,
        kind: &'static str,
        config: CacheConfig,
        stats: Arc<px_core::stats::ResolverStats>,
        make_driver: F,
    ) -> Result<Self, String>
    where
        D: Driver,
        F: FnOnce() -> Result<D, String>,
    {
        let thread = ResolverThread::start(name, config.graceful_stop_wait)
            .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
        let driver = {
            let _rt = thread.handle().enter();
            make_driver()?
        };
        let shared = Arc::new(Shared {
            driver: Box::new(driver),
            config,
            slots: Mutex::new(HashMap::new()),
            handle: thread.handle().clone(),
            in_flight: Arc::clone(thread.in_flight()),
            stats,
        });
        let weak = Arc::downgrade(&shared);
        thread.handle().spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(s) => s.purge(Instant::now()),
                    None => break,
                }
            }
        });
        Ok(CachedResolver {
            name: name.to_string(),
            kind,
            shared,
            _thread: thread,
        })
    }
}

impl Shared {
    async fn lookup(self: &Arc<Self>, domain: String, family: AddrFamily) -> Outcome {
        let mut rx = {
            let mut slots = self.slots.lock();
            let now = Instant::now();
            let key = (domain, family);
            if !slots.contains_key(&key) && slots.len() >= self.config.capacity {
                evict(&mut slots, now, self.config.capacity);
            }
            let slot = slots.entry(key.clone()).or_default();
            if !slot.pending_alive() {
                slot.pending = None;
            }
            if let Some(entry) = &slot.ready {
                if now < entry.vanish {
                    let outcome = entry.outcome.clone();
                    if now >= entry.expire && slot.pending.is_none() {
                        slot.pending = Some(self.spawn_query(key.0, family));
                    }
                    self.stats.add_query(crate::stats::rr_type(family), true);
                    return outcome;
                }
                slot.ready = None;
            }
            match &slot.pending {
                Some(rx) => rx.clone(),
                None => {
                    let rx = self.spawn_query(key.0, family);
                    slot.pending = Some(rx.clone());
                    rx
                }
            }
        };
        self.stats.add_query(crate::stats::rr_type(family), false);
        match rx.wait_for(Option::is_some).await {
            Ok(v) => match &*v {
                Some(outcome) => outcome.clone(),
                None => Err(stopped()),
            },
            Err(_) => Err(stopped()),
        }
    }

    /// Starts one upstream query on the resolver thread.
    fn spawn_query(
        self: &Arc<Self>,
        domain: String,
        family: AddrFamily,
    ) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        let shared = Arc::clone(self);
        let guard = self.in_flight.start();
        self.handle.spawn(async move {
            let _guard = guard;
            let query = shared.driver.query(&domain, family);
            let result = tokio::time::timeout(shared.config.protective_query_timeout, query)
                .await
                .unwrap_or_else(|_| Err(ResolveError::Timeout.into()));
            let rr = crate::stats::rr_type(family);
            shared
                .stats
                .add_driver_query(rr, crate::stats::driver_result(&result));
            let outcome = shared.store(domain, family, result);
            let _ = tx.send(Some(outcome));
        });
        rx
    }

    /// Puts a query result in the cache; returns what the callers get.
    fn store(
        &self,
        domain: String,
        family: AddrFamily,
        result: Result<Answer, Failure>,
    ) -> Outcome {
        let now = Instant::now();
        let (outcome, lifetime) = match result {
            Ok(a) if !a.addrs.is_empty() => {
                let ttls = self.config.positive_ttls(a.ttl);
                (Ok(Arc::from(a.addrs)), Some(ttls))
            }
            Ok(_) => {
                let ttl = self.config.negative_ttl(None);
                (
                    Err(ResolveError::NotFound(domain.clone())),
                    Some((ttl, ttl)),
                )
            }
            Err(
                f @ Failure {
                    error: ResolveError::NotFound(_) | ResolveError::InvalidName,
                    ..
                },
            ) => {
                let ttl = self.config.negative_ttl(f.ttl);
                (Err(f.error), Some((ttl, ttl)))
            }
            Err(f) => (Err(f.error), None),
        };
        let mut slots = self.slots.lock();
        let key = (domain, family);
        let slot = slots.entry(key.clone()).or_default();
        slot.pending = None;
        match lifetime {
            Some((expire, vanish)) => {
                slot.ready = Some(Entry {
                    outcome: outcome.clone(),
                    expire: now + Duration::from_secs(u64::from(expire)),
                    vanish: now + Duration::from_secs(u64::from(vanish)),
                });
            }
            None => {
                // a failed refresh keeps the old answer until its record TTL runs out
                if slot.ready.as_ref().is_none_or(|e| e.vanish <= now) {
                    slots.remove(&key);
                }
            }
        }
        self.stats.set_cache(slots.len(), self.config.capacity);
        outcome
    }

    /// Drops entries whose record TTL ran out.
    fn purge(&self, now: Instant) {
        self.slots.lock().retain(|_, s| keep(s, now));
    }
}

fn keep(slot: &Slot, now: Instant) -> bool {
    slot.pending_alive() || slot.ready.as_ref().is_some_and(|e| e.vanish > now)
}

/// Makes room in a full cache: first the vanished entries, then the 1/16 of
/// answered entries closest to vanishing. Entries with a query in flight stay.
fn evict(slots: &mut HashMap<Key, Slot>, now: Instant, capacity: usize) {
    slots.retain(|_, s| keep(s, now));
    if slots.len() < capacity {
        return;
    }
    let batch = (capacity / 16).max(1);
    let mut order: Vec<(Instant, Key)> = slots
        .iter()
        .filter(|(_, s)| s.pending.is_none())
        .filter_map(|(k, s)| s.ready.as_ref().map(|e| (e.vanish, k.clone())))
        .collect();
    if order.len() > batch {
        order.select_nth_unstable_by_key(batch, |(vanish, _)| *vanish);
        order.truncate(batch);
    }
    for (_, key) in order {
        slots.remove(&key);
    }
}

fn stopped() -> ResolveError {
    ResolveError::ServerFailure("resolver stopped".to_string())
}

#[async_trait]
impl Resolver for CachedResolver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn resolve_family(
        &self,
        domain: &str,
        family: AddrFamily,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        match name::parse(domain)? {
            QueryName::Ip(ip) => name::ip_answer(ip, family),
            QueryName::Localhost => Ok(name::localhost_answer(family)),
            QueryName::Domain(d) => self.shared.lookup(d, family).await.map(|a| a.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests;
