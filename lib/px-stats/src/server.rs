//! [`ServerStats`]: the counters of one server, and [`ServerTask`], the guard a
//! task holds from its start to its end.
//!
//! A server counts a client connection when it takes one
//! ([`ServerStats::add_connection`]), starts a task once the request is
//! negotiated and authenticated ([`ServerStats::task`]: `task.total` and
//! `task.alive`), and folds the bytes a task moved when it ends
//! ([`ServerStats::add_tcp_traffic`], from the relay outcome or its own plain
//! per-task fields). Dropping the guard ends the task.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::collect::{Readable, Reading};
use crate::names::*;
use crate::user::{UserStats, UserTable, UserTask};

/// The counters of one server.
#[derive(Debug)]
pub struct ServerStats {
    name: String,
    stat_id: u64,
    connection_total: AtomicU64,
    task_total: AtomicU64,
    task_alive: AtomicI64,
    auth_failed: AtomicU64,
    dest_denied: AtomicU64,
    tcp_in: AtomicU64,
    tcp_out: AtomicU64,
    udp_in: AtomicU64,
    udp_out: AtomicU64,
    users: UserTable,
}

/// The values of a [`ServerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerSnapshot {
    /// `server.connection.total`
    pub connection_total: u64,
    /// `server.task.total`
    pub task_total: u64,
    /// `server.task.alive`
    pub task_alive: u64,
    /// `server.forbidden.auth_failed`
    pub auth_failed: u64,
    /// `server.forbidden.dest_denied`
    pub dest_denied: u64,
    /// `server.traffic.in.bytes`, tcp
    pub tcp_in_bytes: u64,
    /// `server.traffic.out.bytes`, tcp
    pub tcp_out_bytes: u64,
    /// `server.traffic.in.bytes`, udp
    pub udp_in_bytes: u64,
    /// `server.traffic.out.bytes`, udp
    pub udp_out_bytes: u64,
}

impl ServerStats {
    pub(crate) fn with_id(name: &str, stat_id: u64, ids: Option<Arc<AtomicU64>>) -> Self {
        ServerStats {
            name: name.to_string(),
            stat_id,
            connection_total: AtomicU64::new(0),
            task_total: AtomicU64::new(0),
            task_alive: AtomicI64::new(0),
            auth_failed: AtomicU64::new(0),
            dest_denied: AtomicU64::new(0),
            tcp_in: AtomicU64::new(0),
            tcp_out: AtomicU64::new(0),
            udp_in: AtomicU64::new(0),
            udp_out: AtomicU64::new(0),
            users: UserTable::new(ids),
        }
    }

    /// Stats not in any registry: they count, nobody emits them.
    pub fn detached(name: &str) -> Arc<Self> {
        Arc::new(Self::with_id(name, 0, None))
    }

    /// The server name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts a client connection the server took.
    pub fn add_connection(&self) {
        self.connection_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a task; it ends when the guard drops.
    pub fn task(self: &Arc<Self>) -> ServerTask {
        self.task_total.fetch_add(1, Ordering::Relaxed);
        self.task_alive.fetch_add(1, Ordering::Relaxed);
        ServerTask {
            stats: Arc::clone(self),
            user: None,
        }
    }

    /// Counts a request refused because authentication failed.
    pub fn add_auth_failed(&self) {
        self.auth_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused by the server's target filters.
    pub fn add_dest_denied(&self) {
        self.dest_denied.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds the stream bytes of one task: `in_bytes` from the client, `out_bytes` to it.
    pub fn add_tcp_traffic(&self, in_bytes: u64, out_bytes: u64) {
        if in_bytes > 0 {
            self.tcp_in.fetch_add(in_bytes, Ordering::Relaxed);
        }
        if out_bytes > 0 {
            self.tcp_out.fetch_add(out_bytes, Ordering::Relaxed);
        }
    }

    /// Folds the datagram payload bytes of one task: from the client, to it.
    pub fn add_udp_traffic(&self, in_bytes: u64, out_bytes: u64) {
        self.udp_in.fetch_add(in_bytes, Ordering::Relaxed);
        self.udp_out.fetch_add(out_bytes, Ordering::Relaxed);
    }

    /// The stats of a user on this server, created on first use.
    pub fn user(
        &self,
        group: &Arc<str>,
        user: &Arc<str>,
        user_type: &'static str,
    ) -> Arc<UserStats> {
        self.users.get(&self.name, group, user, user_type)
    }

    /// The values now.
    pub fn snapshot(&self) -> ServerSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerSnapshot {
            connection_total: r(&self.connection_total),
            task_total: r(&self.task_total),
            task_alive: self.task_alive.load(Ordering::Relaxed).max(0) as u64,
            auth_failed: r(&self.auth_failed),
            dest_denied: r(&self.dest_denied),
            tcp_in_bytes: r(&self.tcp_in),
            tcp_out_bytes: r(&self.tcp_out),
            udp_in_bytes: r(&self.udp_in),
            udp_out_bytes: r(&self.udp_out),
        }
    }

    pub(crate) fn users(&self) -> &UserTable {
        &self.users
    }
}

impl Readable for ServerStats {
    fn stat_id(&self) -> u64 {
        self.stat_id
    }

    fn tags(&self) -> Vec<(&'static str, String)> {
        vec![(TAG_SERVER, self.name.clone())]
    }

    fn read(&self, out: &mut Vec<Reading>) {
        let s = self.snapshot();
        out.extend([
            Reading::total(SERVER_CONNECTION_TOTAL, s.connection_total),
            Reading::total(SERVER_TASK_TOTAL, s.task_total),
            Reading::gauge(SERVER_TASK_ALIVE, s.task_alive),
            Reading::total(SERVER_FORBIDDEN_AUTH_FAILED, s.auth_failed),
            Reading::total(SERVER_FORBIDDEN_DEST_DENIED, s.dest_denied),
            Reading::total(SERVER_TRAFFIC_IN_BYTES, s.tcp_in_bytes)
                .with(TAG_TRANSPORT, TRANSPORT_TCP),
            Reading::total(SERVER_TRAFFIC_OUT_BYTES, s.tcp_out_bytes)
                .with(TAG_TRANSPORT, TRANSPORT_TCP),
            Reading::total(SERVER_TRAFFIC_IN_BYTES, s.udp_in_bytes)
                .with(TAG_TRANSPORT, TRANSPORT_UDP),
            Reading::total(SERVER_TRAFFIC_OUT_BYTES, s.udp_out_bytes)
                .with(TAG_TRANSPORT, TRANSPORT_UDP),
        ]);
    }
}

/// One running task of a server (and of its user, once known): counted alive
/// until dropped.
#[derive(Debug)]
pub struct ServerTask {
    stats: Arc<ServerStats>,
    user: Option<UserTask>,
}

impl ServerTask {
    /// Counts the task for its user too (`user.request.total`, `user.request.alive`,
    /// and `user.connection.total` when the task is the first of its client connection).
    pub fn set_user(
        &mut self,
        group: &Arc<str>,
        user: &Arc<str>,
        user_type: &'static str,
        new_connection: bool,
    ) {
        let stats = self.stats.user(group, user, user_type);
        if new_connection {
            stats.add_connection();
        }
        self.user = Some(stats.request());
    }

    /// The server's stats.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.stats.task_alive.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_guard_counts_alive() {
        let s = ServerStats::detached("http");
        s.add_connection();
        let a = s.task();
        let b = s.task();
        assert_eq!(s.snapshot().task_alive, 2);
        drop(a);
        s.add_tcp_traffic(10, 20);
        drop(b);
        let snap = s.snapshot();
        assert_eq!(snap.connection_total, 1);
        assert_eq!(snap.task_total, 2);
        assert_eq!(snap.task_alive, 0);
        assert_eq!((snap.tcp_in_bytes, snap.tcp_out_bytes), (10, 20));
    }

    #[test]
    fn user_of_task() {
        let s = ServerStats::detached("socks");
        let (g, u): (Arc<str>, Arc<str>) = (Arc::from("g"), Arc::from("alice"));
        let mut t = s.task();
        t.set_user(&g, &u, "Static", true);
        let user = s.user(&g, &u, "Static");
        assert_eq!(user.snapshot().request_alive, 1);
        drop(t);
        let snap = user.snapshot();
        assert_eq!((snap.request_total, snap.request_alive), (1, 0));
    }
}
