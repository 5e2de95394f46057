//! [`UserStats`]: the counters of one user of one user group on one server
//! (g3proxy's `user.*` metrics), kept in the server's [`UserTable`] while a
//! task of the user runs or until they are emitted once more.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::collect::{Readable, Reading};
use crate::names::*;

/// The counters of one user on one server.
#[derive(Debug)]
pub struct UserStats {
    group: Arc<str>,
    user: Arc<str>,
    user_type: &'static str,
    server: String,
    stat_id: u64,
    connection_total: AtomicU64,
    request_total: AtomicU64,
    request_alive: AtomicI64,
    tcp_in: AtomicU64,
    tcp_out: AtomicU64,
    udp_in: AtomicU64,
    udp_out: AtomicU64,
}

/// The values of a [`UserStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserSnapshot {
    /// `user.connection.total`
    pub connection_total: u64,
    /// `user.request.total`
    pub request_total: u64,
    /// `user.request.alive`
    pub request_alive: u64,
    /// `user.traffic.in.bytes`, tcp
    pub tcp_in_bytes: u64,
    /// `user.traffic.out.bytes`, tcp
    pub tcp_out_bytes: u64,
}

impl UserStats {
    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Counts a client connection of the user.
    pub fn add_connection(&self) {
        self.connection_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a request of the user; it ends when the guard drops.
    pub fn request(self: &Arc<Self>) -> UserTask {
        self.request_total.fetch_add(1, Ordering::Relaxed);
        self.request_alive.fetch_add(1, Ordering::Relaxed);
        UserTask(Arc::clone(self))
    }

    /// Folds the stream bytes of one task of the user.
    pub fn add_tcp_traffic(&self, in_bytes: u64, out_bytes: u64) {
        self.tcp_in.fetch_add(in_bytes, Ordering::Relaxed);
        self.tcp_out.fetch_add(out_bytes, Ordering::Relaxed);
    }

    /// Folds the datagram bytes of one task of the user.
    pub fn add_udp_traffic(&self, in_bytes: u64, out_bytes: u64) {
        self.udp_in.fetch_add(in_bytes, Ordering::Relaxed);
        self.udp_out.fetch_add(out_bytes, Ordering::Relaxed);
    }

    /// The values now.
    pub fn snapshot(&self) -> UserSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UserSnapshot {
            connection_total: r(&self.connection_total),
            request_total: r(&self.request_total),
            request_alive: self.request_alive.load(Ordering::Relaxed).max(0) as u64,
            tcp_in_bytes: r(&self.tcp_in),
            tcp_out_bytes: r(&self.tcp_out),
        }
    }
}

impl Readable for UserStats {
    fn stat_id(&self) -> u64 {
        self.stat_id
    }

    fn tags(&self) -> Vec<(&'static str, String)> {
        vec![
            (TAG_USER_GROUP, self.group.to_string()),
            (TAG_USER, self.user.to_string()),
            (TAG_USER_TYPE, self.user_type.to_string()),
            (TAG_SERVER, self.server.clone()),
        ]
    }

    fn read(&self, out: &mut Vec<Reading>) {
        let s = self.snapshot();
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.extend([
            Reading::total(USER_CONNECTION_TOTAL, s.connection_total),
            Reading::total(USER_REQUEST_TOTAL, s.request_total),
            Reading::gauge(USER_REQUEST_ALIVE, s.request_alive),
            Reading::total(USER_TRAFFIC_IN_BYTES, s.tcp_in_bytes)
                .with(TAG_TRANSPORT, TRANSPORT_TCP),
            Reading::total(USER_TRAFFIC_OUT_BYTES, s.tcp_out_bytes)
                .with(TAG_TRANSPORT, TRANSPORT_TCP),
            Reading::total(USER_TRAFFIC_IN_BYTES, r(&self.udp_in))
                .with(TAG_TRANSPORT, TRANSPORT_UDP),
            Reading::total(USER_TRAFFIC_OUT_BYTES, r(&self.udp_out))
                .with(TAG_TRANSPORT, TRANSPORT_UDP),
        ]);
    }

    fn quiet_when_idle(&self) -> bool {
        true
    }
}

/// One running request of a user: counted alive until dropped.
#[derive(Debug)]
pub struct UserTask(Arc<UserStats>);

impl UserTask {
    /// The user's stats.
    pub fn stats(&self) -> &Arc<UserStats> {
        &self.0
    }
}

impl Drop for UserTask {
    fn drop(&mut self) {
        self.0.request_alive.fetch_sub(1, Ordering::Relaxed);
    }
}

type UserKey = (Arc<str>, Arc<str>);

/// The users of one server, by (group, user).
#[derive(Debug)]
pub(crate) struct UserTable {
    users: RwLock<HashMap<UserKey, Arc<UserStats>>>,
    /// The registry's id source, when the server is in one.
    ids: Option<Arc<AtomicU64>>,
}

impl UserTable {
    pub(crate) fn new(ids: Option<Arc<AtomicU64>>) -> Self {
        UserTable {
            users: RwLock::default(),
            ids,
        }
    }

    pub(crate) fn get(
        &self,
        server: &str,
        group: &Arc<str>,
        user: &Arc<str>,
        user_type: &'static str,
    ) -> Arc<UserStats> {
        let key = (Arc::clone(group), Arc::clone(user));
        if let Some(s) = self.users.read().get(&key) {
            return Arc::clone(s);
        }
        let mut map = self.users.write();
        let stats = map.entry(key).or_insert_with(|| {
            Arc::new(UserStats {
                group: Arc::clone(group),
                user: Arc::clone(user),
                user_type,
                server: server.to_string(),
                stat_id: self
                    .ids
                    .as_ref()
                    .map(|ids| ids.fetch_add(1, Ordering::Relaxed))
                    .unwrap_or(0),
                connection_total: AtomicU64::new(0),
                request_total: AtomicU64::new(0),
                request_alive: AtomicI64::new(0),
                tcp_in: AtomicU64::new(0),
                tcp_out: AtomicU64::new(0),
                udp_in: AtomicU64::new(0),
                udp_out: AtomicU64::new(0),
            })
        });
        Arc::clone(stats)
    }

    /// Visits every user; drops those only the table holds after the visit.
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&dyn Readable, bool)) {
        let mut map = self.users.write();
        map.retain(|_, s| {
            let dropped = Arc::strong_count(s) == 1;
            f(&**s, dropped);
            !dropped
        });
    }
}
