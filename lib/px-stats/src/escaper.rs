//! [`EscaperStats`]: the counters of one escaper, updated once per connect
//! (not per byte).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::collect::{Readable, Reading};
use crate::names::*;

/// The counters of one escaper.
#[derive(Debug)]
pub struct EscaperStats {
    name: String,
    stat_id: u64,
    task_total: AtomicU64,
    attempt: AtomicU64,
    establish: AtomicU64,
    ip_blocked: AtomicU64,
}

/// The values of an [`EscaperStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EscaperSnapshot {
    /// `escaper.task.total`
    pub task_total: u64,
    /// `escaper.connection.attempt`
    pub connection_attempt: u64,
    /// `escaper.connection.establish`
    pub connection_establish: u64,
    /// `escaper.forbidden.ip_blocked`
    pub ip_blocked: u64,
}

impl EscaperStats {
    pub(crate) fn with_id(name: &str, stat_id: u64) -> Self {
        EscaperStats {
            name: name.to_string(),
            stat_id,
            task_total: AtomicU64::new(0),
            attempt: AtomicU64::new(0),
            establish: AtomicU64::new(0),
            ip_blocked: AtomicU64::new(0),
        }
    }

    /// Stats not in any registry: they count, nobody emits them.
    pub fn detached(name: &str) -> Arc<Self> {
        Arc::new(Self::with_id(name, 0))
    }

    /// The escaper name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts a task that uses the escaper (a UDP relay, or before a connect).
    pub fn add_task(&self) {
        self.task_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a task's connection attempt to remote (`task.total` too).
    pub fn add_attempt(&self) {
        self.task_total.fetch_add(1, Ordering::Relaxed);
        self.attempt.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection established for a task.
    pub fn add_establish(&self) {
        self.establish.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused by the egress filter.
    pub fn add_ip_blocked(&self) {
        self.ip_blocked.fetch_add(1, Ordering::Relaxed);
    }

    /// The values now.
    pub fn snapshot(&self) -> EscaperSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EscaperSnapshot {
            task_total: r(&self.task_total),
            connection_attempt: r(&self.attempt),
            connection_establish: r(&self.establish),
            ip_blocked: r(&self.ip_blocked),
        }
    }
}

impl Readable for EscaperStats {
    fn stat_id(&self) -> u64 {
        self.stat_id
    }

    fn tags(&self) -> Vec<(&'static str, String)> {
        vec![(TAG_ESCAPER, self.name.clone())]
    }

    fn read(&self, out: &mut Vec<Reading>) {
        let s = self.snapshot();
        out.extend([
            Reading::total(ESCAPER_TASK_TOTAL, s.task_total),
            Reading::total(ESCAPER_CONNECTION_ATTEMPT, s.connection_attempt),
            Reading::total(ESCAPER_CONNECTION_ESTABLISH, s.connection_establish),
            Reading::total(ESCAPER_FORBIDDEN_IP_BLOCKED, s.ip_blocked),
        ]);
    }
}
