//! A speed-limited, activity-counting stream wrapper, for servers that parse
//! or frame what they forward (HTTP heads and bodies) instead of relaying it
//! blindly with [`crate::relay()`].
//!
//! [`LimitedStream`] paces reads and writes with the same slice-based limiter
//! as the relay loop (no timer per read; a `Sleep` only once a slice's budget
//! is spent) and adds every byte it moves to a shared counter, which
//! [`crate::idle_guard`] watches.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use px_core::value::SpeedLimit;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limit::Limiter;
use crate::relay::Side;

/// A stream (one side of a proxy task) with a speed limit each way and a
/// shared activity counter.
///
/// The direction of each limit follows the side the stream is on, as in the
/// relay: on the [`Side::Client`] stream reads are limited by
/// [`SpeedLimit::upload`] (client -> upstream) and writes by
/// [`SpeedLimit::download`]; on the [`Side::Upstream`] stream reads are limited
/// by `download` (upstream -> client) and writes by `upload`. A limit of `None`
/// or 0 is unlimited and costs nothing but the counter update.
///
/// Every byte read or written is added to `activity`; give the streams of both
/// sides of a task the same counter and run the task's transfers under
/// [`crate::idle_guard`] to end them when nothing moves.
///
/// ```no_run
/// # async fn demo(client: tokio::net::TcpStream, upstream: px_core::UpstreamConn) -> std::io::Result<()> {
/// use std::sync::{Arc, atomic::AtomicU64};
/// use std::time::Duration;
/// use px_core::value::SpeedLimit;
/// use px_io::{LimitedStream, Side, idle_guard};
///
/// let server_limit = SpeedLimit { shift_millis: 10, upload: Some(1 << 20), download: None };
/// let activity = Arc::new(AtomicU64::new(0));
/// let mut client = LimitedStream::new(client, Side::Client, server_limit, Arc::clone(&activity));
/// let limit = upstream.speed_limit;
/// let px_core::UpstreamStream::Tcp(up) = upstream.stream else { return Ok(()) };
/// let mut up = LimitedStream::new(up, Side::Upstream, limit, Arc::clone(&activity));
/// let copy = tokio::io::copy(&mut client, &mut up);
/// let copied = idle_guard(&activity, Duration::from_secs(60), copy).await??;
/// # let _ = copied; Ok(())
/// # }
/// ```
pub struct LimitedStream<S> {
    inner: S,
    read: Option<Limiter>,
    write: Option<Limiter>,
    activity: Arc<AtomicU64>,
}

impl<S> LimitedStream<S> {
    /// Wraps `inner`, the stream on `side` of a task, with that side's `limit`
    /// (see the type's documentation for which direction is which), counting
    /// bytes moved into `activity`.
    pub fn new(inner: S, side: Side, limit: SpeedLimit, activity: Arc<AtomicU64>) -> Self {
        let (read, write) = match side {
            Side::Client => (Limiter::upload(&limit), Limiter::download(&limit)),
            Side::Upstream => (Limiter::download(&limit), Limiter::upload(&limit)),
        };
        LimitedStream {
            inner,
            read,
            write,
            activity,
        }
    }

    /// The shared activity counter.
    pub fn activity(&self) -> &Arc<AtomicU64> {
        &self.activity
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably (bytes moved through it directly are
    /// neither limited nor counted).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the stream, e.g. to hand it to [`crate::relay()`] which applies
    /// limits itself.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn moved(&self, n: usize) {
        if n > 0 {
            self.activity.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let budget = match &mut this.read {
            Some(l) if buf.remaining() > 0 => ready!(l.poll_budget(cx)),
            _ => usize::MAX,
        };
        let n = if budget >= buf.remaining() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            buf.filled().len() - before
        } else {
            let mut sub = ReadBuf::new(buf.initialize_unfilled_to(budget));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
            let n = sub.filled().len();
            buf.advance(n);
            n
        };
        if let Some(l) = &mut this.read {
            l.consume(n);
        }
        this.moved(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let budget = match &mut this.write {
            Some(l) if !data.is_empty() => ready!(l.poll_budget(cx)),
            _ => usize::MAX,
        };
        let take = data.len().min(budget);
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..take]))?;
        if let Some(l) = &mut this.write {
            l.consume(n);
        }
        this.moved(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;
    use crate::idle::{IdleTimeout, idle_guard};

    /// 1 MiB/s in 16 ms slices.
    const PER_SLICE: u64 = (1 << 20) * 16 / 1000;
    const N: usize = 256 * 1024;

    fn limit(upload: Option<u64>, download: Option<u64>) -> SpeedLimit {
        SpeedLimit {
            shift_millis: 4,
            upload,
            download,
        }
    }

    /// Never faster than the limit allows (within 20%); slower only by what a
    /// loaded 2-core test machine may add, since the limiter only delays.
    fn assert_rate(elapsed: Duration) {
        let expected = N as f64 / (1u64 << 20) as f64;
        let took = elapsed.as_secs_f64();
        assert!(
            took >= expected * 0.8 && took <= expected * 2.0,
            "took {took:.3}s, expected {expected:.3}s"
        );
    }

    #[tokio::test]
    async fn client_side_reads_are_upload_within_twenty_percent() {
        let (a, mut peer) = tokio::io::duplex(2 * N);
        let activity = Arc::new(AtomicU64::new(0));
        let mut s = LimitedStream::new(
            a,
            Side::Client,
            limit(Some(PER_SLICE), None),
            Arc::clone(&activity),
        );
        peer.write_all(&vec![1u8; N]).await.unwrap();
        let start = Instant::now();
        let mut got = vec![0u8; N];
        s.read_exact(&mut got).await.unwrap();
        assert_rate(start.elapsed());
        // the download direction (writes here) is unlimited
        let start = Instant::now();
        s.write_all(&got).await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(activity.load(Ordering::Relaxed), 2 * N as u64);
    }

    #[tokio::test]
    async fn upstream_side_writes_are_upload_within_twenty_percent() {
        let (a, mut peer) = tokio::io::duplex(2 * N);
        let activity = Arc::new(AtomicU64::new(0));
        let mut s = LimitedStream::new(
            a,
            Side::Upstream,
            limit(Some(PER_SLICE), None),
            Arc::clone(&activity),
        );
        let start = Instant::now();
        s.write_all(&vec![2u8; N]).await.unwrap();
        assert_rate(start.elapsed());
        let mut got = vec![0u8; N];
        peer.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|b| *b == 2));
        assert_eq!(activity.load(Ordering::Relaxed), N as u64);
    }

    #[tokio::test]
    async fn download_limits_client_writes_and_upstream_reads() {
        for side in [Side::Client, Side::Upstream] {
            let (a, mut peer) = tokio::io::duplex(2 * N);
            let mut s = LimitedStream::new(
                a,
                side,
                limit(None, Some(PER_SLICE)),
                Arc::new(AtomicU64::new(0)),
            );
            let start = Instant::now();
            if side == Side::Client {
                s.write_all(&vec![3u8; N]).await.unwrap();
            } else {
                peer.write_all(&vec![3u8; N]).await.unwrap();
                let mut got = vec![0u8; N];
                s.read_exact(&mut got).await.unwrap();
            }
            assert_rate(start.elapsed());
        }
    }

    #[tokio::test]
    async fn unlimited_and_zero_pass_through() {
        for l in [SpeedLimit::default(), limit(Some(0), Some(0))] {
            let (a, mut peer) = tokio::io::duplex(1 << 16);
            let activity = Arc::new(AtomicU64::new(0));
            let mut s = LimitedStream::new(a, Side::Client, l, Arc::clone(&activity));
            let start = Instant::now();
            let writer = tokio::spawn(async move {
                s.write_all(&vec![4u8; 4 << 20]).await.unwrap();
                s
            });
            let mut got = vec![0u8; 4 << 20];
            peer.read_exact(&mut got).await.unwrap();
            let s = writer.await.unwrap();
            assert!(start.elapsed() < Duration::from_secs(2));
            assert_eq!(activity.load(Ordering::Relaxed), 4 << 20);
            drop(s.into_inner());
        }
    }

    #[tokio::test]
    async fn idle_guard_fires_when_nothing_moves() {
        let activity = AtomicU64::new(7);
        let idle = Duration::from_millis(100);
        let start = Instant::now();
        let r = idle_guard(&activity, idle, std::future::pending::<()>()).await;
        assert_eq!(r, Err(IdleTimeout));
        let took = start.elapsed();
        assert!(took >= idle, "{took:?}");
        assert!(took < idle * 2, "{took:?}");
    }

    #[tokio::test]
    async fn activity_resets_the_idle_guard() {
        let (a, mut peer) = tokio::io::duplex(1 << 16);
        let activity = Arc::new(AtomicU64::new(0));
        let mut s = LimitedStream::new(
            a,
            Side::Client,
            SpeedLimit::default(),
            Arc::clone(&activity),
        );
        let idle = Duration::from_millis(100);
        // one byte every 40 ms for 400 ms: four times the idle time, never idle
        let feeder = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                peer.write_all(b"x").await.unwrap();
            }
            peer
        });
        let start = Instant::now();
        let read = async {
            let mut got = [0u8; 10];
            s.read_exact(&mut got).await.map(|_| got)
        };
        let got = idle_guard(&activity, idle, read).await.unwrap().unwrap();
        assert_eq!(&got, b"xxxxxxxxxx");
        assert!(start.elapsed() >= Duration::from_millis(400));
        // then the peer goes quiet: the guard ends the read after the idle time
        let _peer = feeder.await.unwrap();
        let start = Instant::now();
        let mut one = [0u8; 1];
        let r = idle_guard(&activity, idle, s.read_exact(&mut one)).await;
        assert!(r.is_err(), "{r:?}");
        let took = start.elapsed();
        assert!(took >= idle && took < idle * 2, "{took:?}");
    }
}
