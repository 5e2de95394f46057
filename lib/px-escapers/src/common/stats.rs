//! The escapers' hooks into px-stats: an escaper's stats object (taken by
//! name from the daemon's registry while it is built, so it survives
//! reloads), and counting a connect once it ended.
//!
//! Per task, an escaper counts `escaper.task.total` and
//! `escaper.connection.attempt` before it connects, then
//! `escaper.connection.establish` or, when the egress filter refused the
//! target, `escaper.forbidden.ip_blocked` ([`connected`]). A UDP relay counts
//! the task only.

use std::sync::Arc;

use px_core::stats::EscaperStats;
use px_core::{ConnectError, ModuleLookup};

/// The stats object of the escaper `name`: the registry's, or a detached one.
pub fn escaper_stats(lookup: &dyn ModuleLookup, name: &str) -> Arc<EscaperStats> {
    match lookup.stats() {
        Some(r) => r.escaper(name),
        None => EscaperStats::detached(name),
    }
}

/// Counts how a connect attempt ended and passes its result on.
pub fn connected<T>(stats: &EscaperStats, r: Result<T, ConnectError>) -> Result<T, ConnectError> {
    match &r {
        Ok(_) => stats.add_establish(),
        Err(ConnectError::ForbiddenIp(_)) => stats.add_ip_blocked(),
        Err(_) => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        let s = EscaperStats::detached("e");
        s.add_attempt();
        let _ = connected(&s, Ok::<(), ConnectError>(()));
        s.add_attempt();
        let _ = connected(
            &s,
            Err::<(), _>(ConnectError::ForbiddenIp([10, 0, 0, 1].into())),
        );
        s.add_attempt();
        let _ = connected(&s, Err::<(), _>(ConnectError::Refused));
        let snap = s.snapshot();
        assert_eq!(snap.task_total, 3);
        assert_eq!(snap.connection_attempt, 3);
        assert_eq!(snap.connection_establish, 1);
        assert_eq!(snap.ip_blocked, 1);
    }
}
