//! Idle detection for a relay without a timer reset per read.
//!
//! The relay's byte counters are sampled every quarter of the idle timeout; the
//! relay is idle when four samples in a row saw no byte move either way, so an
//! idle connection ends between 1 and 1.25 times the timeout after its last
//! byte, and a busy one costs one timer wake-up per quarter timeout.

use std::future::Future;
use std::pin::Pin;
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
    /// An idle check for the given timeout.
    pub(crate) fn new(timeout: Duration) -> IdleCheck {
        let tick = (timeout / TICKS).max(Duration::from_millis(1));
        IdleCheck {
            tick,
            idle_ticks: 0,
            last_total: 0,
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
