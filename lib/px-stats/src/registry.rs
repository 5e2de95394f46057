//! [`StatsRegistry`]: the stats objects of one daemon, by module kind and name.
//!
//! Owned by the daemon's `App` (no process-global state): modules get their
//! object by name while they are built, the same `Arc` for the same name, so a
//! reloaded module goes on counting. The emitter visits every object; one that
//! no module holds any more is visited a last time and dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::collect::Readable;
use crate::escaper::EscaperStats;
use crate::process::{KtlsTotals, ProcessSource, RelayPathTotals, SourceFn};
use crate::resolver::ResolverStats;
use crate::server::ServerStats;

#[derive(Debug)]
struct Inner {
    ids: Arc<AtomicU64>,
    servers: Mutex<BTreeMap<String, Arc<ServerStats>>>,
    escapers: Mutex<BTreeMap<String, Arc<EscaperStats>>>,
    resolvers: Mutex<BTreeMap<String, Arc<ResolverStats>>>,
    /// Process-wide totals, read through the daemon's functions (see `crate::process`).
    process: Mutex<Vec<ProcessSource>>,
}

/// The stats objects of one daemon; cheap to clone (one shared set).
#[derive(Debug, Clone)]
pub struct StatsRegistry(Arc<Inner>);

impl Default for StatsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn get_or_create<T>(
    map: &Mutex<BTreeMap<String, Arc<T>>>,
    name: &str,
    make: impl FnOnce() -> T,
) -> Arc<T> {
    let mut map = map.lock();
    if let Some(s) = map.get(name) {
        return Arc::clone(s);
    }
    let s = Arc::new(make());
    map.insert(name.to_string(), Arc::clone(&s));
    s
}

fn visit_map<T: Readable>(
    map: &Mutex<BTreeMap<String, Arc<T>>>,
    f: &mut dyn FnMut(&dyn Readable, bool),
) {
    map.lock().retain(|_, s| {
        let dropped = Arc::strong_count(s) == 1;
        f(&**s, dropped);
        !dropped
    });
}

impl StatsRegistry {
    /// An empty registry. `stat_id`s start from the process id in the high
    /// 32 bits, so they are unique on the machine.
    pub fn new() -> Self {
        let base = u64::from(std::process::id()) << 32;
        StatsRegistry(Arc::new(Inner {
            ids: Arc::new(AtomicU64::new(base + 1)),
            servers: Mutex::default(),
            escapers: Mutex::default(),
            resolvers: Mutex::default(),
            process: Mutex::default(),
        }))
    }

    fn next_id(&self) -> u64 {
        self.0.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The stats of the server with this name.
    pub fn server(&self, name: &str) -> Arc<ServerStats> {
        get_or_create(&self.0.servers, name, || {
            ServerStats::with_id(name, self.next_id(), Some(Arc::clone(&self.0.ids)))
        })
    }

    /// The stats of the escaper with this name.
    pub fn escaper(&self, name: &str) -> Arc<EscaperStats> {
        get_or_create(&self.0.escapers, name, || {
            EscaperStats::with_id(name, self.next_id())
        })
    }

    /// The stats of the resolver with this name.
    pub fn resolver(&self, name: &str) -> Arc<ResolverStats> {
        get_or_create(&self.0.resolvers, name, || {
            ResolverStats::with_id(name, self.next_id())
        })
    }

    /// Emits the process-wide relay totals `read` returns (`relay.path.total`)
    /// from now on; a second call replaces the function and keeps the `stat_id`.
    pub fn set_relay_path_source(&self, read: fn() -> RelayPathTotals) {
        self.set_process_source(SourceFn::RelayPaths(read));
    }

    /// Emits the process-wide kTLS totals `read` returns (`ktls.connection.total`)
    /// from now on; a second call replaces the function and keeps the `stat_id`.
    pub fn set_ktls_source(&self, read: fn() -> KtlsTotals) {
        self.set_process_source(SourceFn::Ktls(read));
    }

    fn set_process_source(&self, read: SourceFn) {
        let mut sources = self.0.process.lock();
        if let Some(s) = sources.iter_mut().find(|s| s.read.same_kind(&read)) {
            s.read = read;
            return;
        }
        // a source of its own per kind, so the collector's per-object order
        // of readings never changes when another kind is added later
        sources.push(ProcessSource {
            stat_id: self.next_id(),
            read,
        });
    }

    /// Names of the servers with stats now (for tests and listings).
    pub fn server_names(&self) -> Vec<String> {
        self.0.servers.lock().keys().cloned().collect()
    }

    /// Visits every object (servers with their users, escapers, resolvers,
    /// process-wide sources); `f` learns whether the object is dropped after
    /// this visit.
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&dyn Readable, bool)) {
        {
            let servers = self.0.servers.lock();
            for s in servers.values() {
                s.users().visit(f);
            }
        }
        visit_map(&self.0.servers, f);
        visit_map(&self.0.escapers, f);
        visit_map(&self.0.resolvers, f);
        // process-wide sources live as long as the registry: never dropped
        for s in self.0.process.lock().iter() {
            f(s, false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::collect::{Collector, Sample, SampleKind};
    use crate::resolver::{DriverResult, RrType};

    fn find<'a>(samples: &'a [Sample], name: &str, tag: (&str, &str)) -> Option<&'a Sample> {
        samples
            .iter()
            .find(|s| s.name == name && s.tag(tag.0) == Some(tag.1))
    }

    #[test]
    fn same_name_same_object() {
        let r = StatsRegistry::new();
        let a = r.server("http");
        let b = r.server("http");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&r.escaper("http"), &r.escaper("other")));
        assert_ne!(r.escaper("e").stat_id(), a.stat_id());
    }

    #[test]
    fn counters_are_sent_as_changes_gauges_as_values() {
        let r = StatsRegistry::new();
        let s = r.server("http");
        let mut c = Collector::default();
        s.add_connection();
        let t = s.task();
        let first = c.collect(&r);
        let total = find(&first, "server.task.total", ("server", "http")).unwrap();
        assert_eq!((total.kind, total.value), (SampleKind::Counter, 1));
        let alive = find(&first, "server.task.alive", ("server", "http")).unwrap();
        assert_eq!((alive.kind, alive.value), (SampleKind::Gauge, 1));
        assert!(alive.tag("stat_id").is_some());

        s.add_tcp_traffic(5, 7);
        drop(t);
        let second = c.collect(&r);
        let total = find(&second, "server.task.total", ("server", "http")).unwrap();
        assert_eq!(total.value, 0);
        let alive = find(&second, "server.task.alive", ("server", "http")).unwrap();
        assert_eq!(alive.value, 0);
        let tcp_in = second
            .iter()
            .find(|x| x.name == "server.traffic.in.bytes" && x.tag("transport") == Some("tcp"))
            .unwrap();
        assert_eq!(tcp_in.value, 5);
    }

    #[test]
    fn objects_kept_while_held_dropped_after_last_emission() {
        let r = StatsRegistry::new();
        let mut c = Collector::default();
        let e = r.escaper("gone");
        e.add_attempt();
        drop(e);
        let samples = c.collect(&r);
        let s = find(&samples, "escaper.connection.attempt", ("escaper", "gone")).unwrap();
        assert_eq!(s.value, 1, "the last counts are still sent");
        assert!(c.collect(&r).is_empty(), "then the object is gone");

        let kept = r.resolver("dns");
        kept.add_query(RrType::A, false);
        kept.add_driver_query(RrType::A, DriverResult::NotFound);
        kept.add_query(RrType::Aaaa, true);
        let samples = c.collect(&r);
        let q = samples
            .iter()
            .find(|s| s.name == "resolver.query.cached" && s.tag("rr_type") == Some("AAAA"))
            .unwrap();
        assert_eq!(q.value, 1);
        let nf = samples
            .iter()
            .find(|s| s.name == "resolver.query.server.not_found" && s.tag("rr_type") == Some("A"))
            .unwrap();
        assert_eq!(nf.value, 1);
        assert!(!c.collect(&r).is_empty());
    }

    #[test]
    fn users_are_quiet_when_idle_and_dropped_when_unused() {
        let r = StatsRegistry::new();
        let server = r.server("socks");
        let mut c = Collector::default();
        let (g, u): (Arc<str>, Arc<str>) = (Arc::from("default"), Arc::from("bob"));
        let mut task = server.task();
        task.set_user(&g, &u, "Dynamic", true);
        server.user(&g, &u, "Dynamic").add_tcp_traffic(3, 4);
        let samples = c.collect(&r);
        let req = find(&samples, "user.request.total", ("user", "bob")).unwrap();
        assert_eq!(req.value, 1);
        assert_eq!(req.tag("user_group"), Some("default"));
        assert_eq!(req.tag("user_type"), Some("Dynamic"));
        assert_eq!(req.tag("server"), Some("socks"));
        let conn = find(&samples, "user.connection.total", ("user", "bob")).unwrap();
        assert_eq!(conn.value, 1);
        drop(task);
        // the alive gauge drops to 0: sent once more, then the user is gone
        let samples = c.collect(&r);
        assert!(find(&samples, "user.request.alive", ("user", "bob")).is_some());
        let samples = c.collect(&r);
        assert!(find(&samples, "user.request.alive", ("user", "bob")).is_none());
    }
}
