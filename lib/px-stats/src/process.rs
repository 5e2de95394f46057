//! Process-wide counters no module owns: relays per data path (px-io) and TLS
//! connections per kTLS outcome (px-tls).
//!
//! Those crates depend on px-core, which re-exports this crate, so px-stats
//! cannot call them; the daemon installs a reader function per source on the
//! registry ([`crate::StatsRegistry::set_relay_path_source`],
//! [`crate::StatsRegistry::set_ktls_source`]) and the collector calls it at
//! every emission. The values are running totals since the process started,
//! sent as counters (the change since the last emission) like every `total`.

use crate::collect::{Readable, Reading};
use crate::names::*;

/// Relays ended per data path in this process (px-io's `path_totals()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPathTotals {
    /// Relays on the userspace copy loop.
    pub userspace: u64,
    /// Relays on splice(2).
    pub splice: u64,
    /// Relays on io_uring.
    pub io_uring: u64,
}

/// TLS connections per kTLS outcome in this process (px-tls's `ktls::totals()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KtlsTotals {
    /// Data phases handed to the kernel.
    pub ktls: u64,
    /// Connections kept on rustls.
    pub fallback: u64,
    /// Connections lost while moving their keys into the kernel.
    pub failed: u64,
}

/// Where a process-wide source reads its totals.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SourceFn {
    RelayPaths(fn() -> RelayPathTotals),
    Ktls(fn() -> KtlsTotals),
}

impl SourceFn {
    /// Two sources of one kind replace each other (one reader per counter set).
    pub(crate) fn same_kind(&self, other: &SourceFn) -> bool {
        matches!(
            (self, other),
            (SourceFn::RelayPaths(_), SourceFn::RelayPaths(_))
                | (SourceFn::Ktls(_), SourceFn::Ktls(_))
        )
    }
}

/// One process-wide source, with a `stat_id` of its own like every object.
#[derive(Debug)]
pub(crate) struct ProcessSource {
    pub(crate) stat_id: u64,
    pub(crate) read: SourceFn,
}

impl Readable for ProcessSource {
    fn stat_id(&self) -> u64 {
        self.stat_id
    }

    fn tags(&self) -> Vec<(&'static str, String)> {
        // process-wide: no module tag, only `daemon_group` and `stat_id`
        Vec::new()
    }

    fn read(&self, out: &mut Vec<Reading>) {
        match self.read {
            SourceFn::RelayPaths(f) => {
                let t = f();
                out.extend([
                    Reading::total(RELAY_PATH_TOTAL, t.userspace).with(TAG_PATH, PATH_USERSPACE),
                    Reading::total(RELAY_PATH_TOTAL, t.splice).with(TAG_PATH, PATH_SPLICE),
                    Reading::total(RELAY_PATH_TOTAL, t.io_uring).with(TAG_PATH, PATH_IO_URING),
                ]);
            }
            SourceFn::Ktls(f) => {
                let t = f();
                out.extend([
                    Reading::total(KTLS_CONNECTION_TOTAL, t.ktls).with(TAG_PATH, PATH_KTLS),
                    Reading::total(KTLS_CONNECTION_TOTAL, t.fallback).with(TAG_PATH, PATH_FALLBACK),
                    Reading::total(KTLS_CONNECTION_TOTAL, t.failed).with(TAG_PATH, PATH_FAILED),
                ]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::collect::{Collector, SampleKind};
    use crate::registry::StatsRegistry;

    use super::*;

    static SPLICED: AtomicU64 = AtomicU64::new(0);

    fn relays() -> RelayPathTotals {
        RelayPathTotals {
            userspace: 2,
            splice: SPLICED.load(Ordering::Relaxed),
            io_uring: 0,
        }
    }

    fn ktls() -> KtlsTotals {
        KtlsTotals {
            ktls: 0,
            fallback: 4,
            failed: 1,
        }
    }

    #[test]
    fn process_totals_are_counters_per_path() {
        let r = StatsRegistry::new();
        let mut c = Collector::default();
        assert!(c.collect(&r).is_empty(), "no source, nothing sent");
        r.set_relay_path_source(relays);
        r.set_ktls_source(ktls);
        SPLICED.store(3, Ordering::Relaxed);
        let first = c.collect(&r);
        let get = |samples: &[crate::collect::Sample], name: &str, path: &str| {
            samples
                .iter()
                .find(|s| s.name == name && s.tag(TAG_PATH) == Some(path))
                .map(|s| (s.kind, s.value))
                .unwrap()
        };
        assert_eq!(
            get(&first, RELAY_PATH_TOTAL, "userspace"),
            (SampleKind::Counter, 2)
        );
        assert_eq!(get(&first, RELAY_PATH_TOTAL, "splice").1, 3);
        assert_eq!(get(&first, RELAY_PATH_TOTAL, "io_uring").1, 0);
        assert_eq!(get(&first, KTLS_CONNECTION_TOTAL, "fallback").1, 4);
        assert_eq!(get(&first, KTLS_CONNECTION_TOTAL, "failed").1, 1);
        assert_eq!(get(&first, KTLS_CONNECTION_TOTAL, "ktls").1, 0);
        let relay = first.iter().find(|s| s.name == RELAY_PATH_TOTAL).unwrap();
        let tls = first
            .iter()
            .find(|s| s.name == KTLS_CONNECTION_TOTAL)
            .unwrap();
        assert!(relay.tag(TAG_STAT_ID).is_some());
        assert_ne!(relay.tag(TAG_STAT_ID), tls.tag(TAG_STAT_ID));
        assert_eq!(relay.tags.len(), 2, "path and stat_id only: {relay:?}");

        // the next emission sends the change; a second install keeps the stat_id
        let id = relay.tag(TAG_STAT_ID).map(str::to_string);
        r.set_relay_path_source(relays);
        SPLICED.store(5, Ordering::Relaxed);
        let second = c.collect(&r);
        assert_eq!(get(&second, RELAY_PATH_TOTAL, "splice").1, 2);
        assert_eq!(get(&second, RELAY_PATH_TOTAL, "userspace").1, 0);
        assert_eq!(get(&second, KTLS_CONNECTION_TOTAL, "fallback").1, 0);
        let relay = second.iter().find(|s| s.name == RELAY_PATH_TOTAL).unwrap();
        assert_eq!(relay.tag(TAG_STAT_ID).map(str::to_string), id);
        assert_eq!(second.len(), 6);
    }
}
