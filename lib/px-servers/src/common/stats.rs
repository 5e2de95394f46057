//! The servers' hooks into px-stats: a server's stats object (taken by name
//! from the daemon's registry while it is built, so it survives reloads), the
//! task guard, and folding a finished task's bytes.
//!
//! A server counts, per client connection, `server.connection.total`; per
//! task (a request past negotiation and authentication), `server.task.total`
//! and `server.task.alive` through the [`ServerTask`] guard it holds until the
//! task ends; and when a relay ends, the bytes each way from its
//! `RelayOutcome` ([`fold_relay`]). HTTP forwarding counts the bytes of the
//! client connection in plain per-connection fields ([`ByteCount`]) and folds
//! them once per request. Nothing shared is touched per read.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use px_core::stats::{ServerStats, ServerTask};
use px_core::{ModuleLookup, UserCtx, UserKind};
use px_io::RelayOutcome;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The stats object of the server `name`: the registry's, or a detached one.
pub fn server_stats(lookup: &dyn ModuleLookup, name: &str) -> Arc<ServerStats> {
    match lookup.stats() {
        Some(r) => r.server(name),
        None => ServerStats::detached(name),
    }
}

/// The `user_type` tag of a user.
pub fn user_type(kind: UserKind) -> &'static str {
    match kind {
        UserKind::Static => "Static",
        UserKind::Dynamic => "Dynamic",
        UserKind::Anonymous => "Anonymous",
    }
}

/// Starts a task of the server (and of its user, when authenticated;
/// `first_of_connection` counts the client connection for the user too).
pub fn start_task(
    stats: &Arc<ServerStats>,
    user: Option<&UserCtx>,
    first_of_connection: bool,
) -> ServerTask {
    let mut task = stats.task();
    if let Some(u) = user {
        task.set_user(&u.group, &u.name, user_type(u.kind), first_of_connection);
    }
    task
}

/// Folds the stream bytes of a finished task: from the client (`in_bytes`)
/// and to it (`out_bytes`), into the server's and the user's stats.
pub fn fold_tcp(stats: &ServerStats, user: Option<&UserCtx>, in_bytes: u64, out_bytes: u64) {
    stats.add_tcp_traffic(in_bytes, out_bytes);
    if let Some(u) = user {
        stats
            .user(&u.group, &u.name, user_type(u.kind))
            .add_tcp_traffic(in_bytes, out_bytes);
    }
}

/// Folds the datagram payload bytes of a finished UDP task: from the client, to it.
pub fn fold_udp(stats: &ServerStats, user: Option<&UserCtx>, in_bytes: u64, out_bytes: u64) {
    stats.add_udp_traffic(in_bytes, out_bytes);
    if let Some(u) = user {
        stats
            .user(&u.group, &u.name, user_type(u.kind))
            .add_udp_traffic(in_bytes, out_bytes);
    }
}

/// Folds a finished relay: `up_bytes` came from the client, `down_bytes` went to it.
pub fn fold_relay(stats: &ServerStats, user: Option<&UserCtx>, outcome: &RelayOutcome) {
    fold_tcp(stats, user, outcome.up_bytes, outcome.down_bytes);
}

/// A stream that counts the bytes read from and written to it, in plain
/// fields of its own (one connection, one task at a time).
#[derive(Debug)]
pub struct ByteCount<S> {
    inner: S,
    read: u64,
    written: u64,
}

impl<S> ByteCount<S> {
    /// Wraps a stream.
    pub fn new(inner: S) -> Self {
        ByteCount {
            inner,
            read: 0,
            written: 0,
        }
    }

    /// The bytes (read, written) since the last call, and resets them.
    pub fn take_counts(&mut self) -> (u64, u64) {
        let counts = (self.read, self.written);
        self.read = 0;
        self.written = 0;
        counts
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped stream, dropping the counts.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ByteCount<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ByteCount<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            this.written += *n as u64;
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            this.written += *n as u64;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn counts_each_way() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut c = ByteCount::new(a);
        c.write_all(b"hello").await.unwrap();
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(c.take_counts(), (2, 5));
        assert_eq!(c.take_counts(), (0, 0));
    }

    struct Open;
    impl px_core::UserPolicy for Open {
        fn check_target(&self, _: &px_core::UpstreamAddr) -> Result<(), px_core::UserRefusal> {
            Ok(())
        }
        fn plan(&self, _: &px_core::UpstreamAddr) -> px_core::TargetPlan {
            px_core::TargetPlan::default()
        }
        fn resolve_strategy(&self) -> Option<px_core::ResolveStrategy> {
            None
        }
        fn tcp_sock_speed_limit(&self) -> px_core::value::SpeedLimit {
            Default::default()
        }
        fn udp_sock_speed_limit(&self) -> px_core::value::UdpSpeedLimit {
            Default::default()
        }
        fn acquire_connection(&self) -> Result<(), px_core::UserRefusal> {
            Ok(())
        }
        fn acquire_request(&self) -> Result<px_core::RequestPermit, px_core::UserRefusal> {
            Ok(px_core::RequestPermit::unlimited())
        }
    }

    #[test]
    fn task_and_fold_reach_server_and_user() {
        let stats = ServerStats::detached("s");
        let user = UserCtx {
            group: Arc::from("g"),
            name: Arc::from("u"),
            kind: UserKind::Static,
            policy: Arc::new(Open),
        };
        let task = start_task(&stats, Some(&user), true);
        fold_tcp(&stats, Some(&user), 3, 9);
        let u = stats.user(&user.group, &user.name, "Static");
        assert_eq!(u.snapshot().request_alive, 1);
        assert_eq!(u.snapshot().connection_total, 1);
        assert_eq!(u.snapshot().tcp_out_bytes, 9);
        drop(task);
        assert_eq!(stats.snapshot().task_total, 1);
        assert_eq!(stats.snapshot().tcp_in_bytes, 3);
        assert_eq!(u.snapshot().request_alive, 0);
    }
}
