//! Idle detection without a timer reset per read, for the relay loops and for
//! [`idle_guard`].
//!
//! A byte counter is sampled every quarter of the idle timeout; the connection
//! is idle when four samples in a row saw the counter unchanged, so an idle
//! connection ends between 1 and 1.25 times the timeout after its last byte,
//! and a busy one costs one timer wake-up per quarter timeout.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

const TICKS: u32 = 4;

/// Samples a byte total periodically and reports when it stopped moving.
pub(crate) struct IdleCheck {
    tick: Duration,
    idle_ticks: u32,
    last_total: u64,
    sleep: Pin<Box<Sleep>>,
}

impl IdleCheck {
    /// An idle check for the given timeout, for a counter starting at 0.
    pub(crate) fn new(timeout: Duration) -> IdleCheck {
        IdleCheck::starting_at(timeout, 0)
    }

    /// An idle check for the given timeout, for a counter now at `total`.
    pub(crate) fn starting_at(timeout: Duration, total: u64) -> IdleCheck {
        let tick = (timeout / TICKS).max(Duration::from_millis(1));
        IdleCheck {
            tick,
            idle_ticks: 0,
            last_total: total,
            sleep: Box::pin(tokio::time::sleep(tick)),
        }
    }

    /// Ready when no byte moved (`total` unchanged) for the whole timeout.
    pub(crate) fn poll_idle(&mut self, cx: &mut Context<'_>, total: u64) -> Poll<()> {
        while self.sleep.as_mut().poll(cx).is_ready() {
            if total != self.last_total {
                self.last_total = total;
                self.idle_ticks = 0;
            } else {
                self.idle_ticks += 1;
                if self.idle_ticks >= TICKS {
                    return Poll::Ready(());
                }
            }
            let next = Instant::now() + self.tick;
            self.sleep.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// The error of [`idle_guard`]: the activity counter did not move for the idle time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleTimeout;

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("idle timeout")
    }
}

impl std::error::Error for IdleTimeout {}

impl From<IdleTimeout> for io::Error {
    fn from(e: IdleTimeout) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

/// Runs `fut` to completion, or ends it with [`IdleTimeout`] once `activity`
/// has stayed unchanged for `idle`.
///
/// `activity` is a byte counter bumped by whatever the future moves, usually
/// the one shared by the [`crate::LimitedStream`]s of a task (both sides), so a
/// slow but moving transfer is never cut while a stalled one ends between 1 and
/// 1.25 times `idle` after its last byte. The counter is sampled every quarter
/// of `idle` (at least every millisecond): there is no timer reset per read.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::atomic::AtomicU64;
/// use std::time::Duration;
/// let activity = AtomicU64::new(0);
/// let stalled = std::future::pending::<()>();
/// let r = px_io::idle_guard(&activity, Duration::from_millis(20), stalled).await;
/// assert_eq!(r, Err(px_io::IdleTimeout));
/// # }
/// ```
pub async fn idle_guard<F: Future>(
    activity: &AtomicU64,
    idle: Duration,
    fut: F,
) -> Result<F::Output, IdleTimeout> {
    let mut fut = pin!(fut);
    let mut check = IdleCheck::starting_at(idle, activity.load(Ordering::Relaxed));
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match check.poll_idle(cx, activity.load(Ordering::Relaxed)) {
            Poll::Ready(()) => Poll::Ready(Err(IdleTimeout)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
