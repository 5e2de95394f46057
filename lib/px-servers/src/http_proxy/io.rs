//! Socket wrappers for HTTP forwarding: speed limits, an activity counter, and the idle guard.
//!
//! [`ProxyIo`] wraps one side's stream (client or upstream). Reads and writes take from a byte budget
//! per time slice of 2^shift ms (a `tcp_sock_speed_limit`), and every byte moved bumps a counter
//! shared by both sides of a task. [`idle_guard`] ends a future once that counter has not moved for
//! the idle time, so a stalled body copy cannot hold a task forever.
//!
//! CONNECT tunnels do not use this: they unwrap the stream and let px-io's relay apply the limits.
//! This stands in until px-io exports rate-limited stream wrappers (see NOTES-http.md).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A byte budget per time slice for one direction.
struct Throttle {
    per_slice: Option<u64>,
    slice: Duration,
    slice_end: Instant,
    used: u64,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Throttle {
    /// `per_slice` bytes per 2^shift_millis ms; `None` or 0 is unlimited.
    fn new(per_slice: Option<u64>, shift_millis: u8) -> Self {
        let slice = Duration::from_millis(1u64 << shift_millis.min(12));
        Throttle {
            per_slice: per_slice.filter(|n| *n > 0),
            slice,
            slice_end: Instant::now() + slice,
            used: 0,
            sleep: None,
        }
    }

    /// How many bytes may move now; pending until the next slice when the budget is spent.
    fn poll_budget(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        let Some(limit) = self.per_slice else {
            return Poll::Ready(usize::MAX);
        };
        loop {
            let now = Instant::now();
            if now >= self.slice_end {
                self.slice_end = now + self.slice;
                self.used = 0;
            }
            if self.used < limit {
                return Poll::Ready(usize::try_from(limit - self.used).unwrap_or(usize::MAX));
            }
            let end = self.slice_end;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end)));
            sleep.as_mut().reset(end);
            ready!(sleep.as_mut().poll(cx));
        }
    }

    /// Records bytes moved.
    fn consume(&mut self, n: usize) {
        if self.per_slice.is_some() {
            self.used = self.used.saturating_add(n as u64);
        }
    }
}

/// One side's stream with a speed limit each way and a shared activity counter.
pub(crate) struct ProxyIo<S> {
    inner: S,
    read: Throttle,
    write: Throttle,
    activity: Arc<AtomicU64>,
}

impl<S> ProxyIo<S> {
    /// Wraps `inner`; `read_limit` and `write_limit` are bytes per 2^shift_millis ms.
    pub(crate) fn new(
        inner: S,
        shift_millis: u8,
        read_limit: Option<u64>,
        write_limit: Option<u64>,
        activity: Arc<AtomicU64>,
    ) -> Self {
        ProxyIo {
            inner,
            read: Throttle::new(read_limit, shift_millis),
            write: Throttle::new(write_limit, shift_millis),
            activity,
        }
    }

    /// The wrapped stream.
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    fn moved(&self, n: usize) {
        self.activity.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProxyIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let budget = ready!(this.read.poll_budget(cx));
        let n = if budget >= buf.remaining() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            buf.filled().len() - before
        } else {
            let dst = buf.initialize_unfilled_to(budget);
            let mut sub = ReadBuf::new(dst);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
            let n = sub.filled().len();
            buf.advance(n);
            n
        };
        this.read.consume(n);
        this.moved(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProxyIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let budget = ready!(this.write.poll_budget(cx));
        let take = data.len().min(budget);
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..take]))?;
        this.write.consume(n);
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

/// The activity counter did not move for the idle time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdleTimeout;

/// Runs `fut` until it completes, or until `activity` stays unchanged for a whole `idle` period.
pub(crate) async fn idle_guard<F: Future>(
    activity: &AtomicU64,
    idle: Duration,
    fut: F,
) -> Result<F::Output, IdleTimeout> {
    tokio::pin!(fut);
    let mut last = activity.load(Ordering::Relaxed);
    let mut ticker = tokio::time::interval_at(Instant::now() + idle, idle);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Ok(out),
            _ = ticker.tick() => {
                let now = activity.load(Ordering::Relaxed);
                if now == last {
                    return Err(IdleTimeout);
                }
                last = now;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn throttles_reads_and_writes() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let activity = Arc::new(AtomicU64::new(0));
        // 1000 bytes per 16 ms slice (shift 4) each way: 3000 bytes need at least two more slices
        let mut io = ProxyIo::new(a, 4, Some(1000), Some(1000), activity.clone());
        let start = Instant::now();
        io.write_all(&[7u8; 3000]).await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "{:?}",
            start.elapsed()
        );
        let mut got = vec![0u8; 3000];
        b.read_exact(&mut got).await.unwrap();
        b.write_all(&got).await.unwrap();
        let start = Instant::now();
        let mut back = vec![0u8; 3000];
        io.read_exact(&mut back).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(activity.load(Ordering::Relaxed), 6000);
        let mut free = ProxyIo::new(io.into_inner(), 4, None, None, activity.clone());
        free.write_all(&[1u8; 100_000]).await.unwrap();
    }

    #[tokio::test]
    async fn idle_guard_fires_only_without_progress() {
        let activity = AtomicU64::new(0);
        let idle = Duration::from_millis(60);
        let r = idle_guard(&activity, idle, std::future::pending::<()>()).await;
        assert_eq!(r, Err(IdleTimeout));
        let activity = Arc::new(AtomicU64::new(0));
        let a2 = activity.clone();
        let busy = async move {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                a2.fetch_add(1, Ordering::Relaxed);
            }
            42
        };
        assert_eq!(idle_guard(&activity, idle, busy).await, Ok(42));
    }
}
