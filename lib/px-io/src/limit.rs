//! Per-direction speed limiting by time slices, shared by the relay loop
//! ([`crate::copy`]) and [`crate::LimitedStream`].
//!
//! A [`Limiter`] holds a byte budget for the current slice of 2^shift ms. A
//! read (or write) may take at most the remaining budget; only when the budget
//! is spent does the limiter look at the clock and, if the slice is not over,
//! sleep until it ends. There is no timer per read, and one `Sleep` per
//! direction is allocated the first time it is needed and reset afterwards.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use px_core::value::SpeedLimit;
use tokio::time::{Instant, Sleep};

/// A byte budget per time slice for one direction of a relay or stream.
pub(crate) struct Limiter {
    slice: Duration,
    per_slice: u64,
    budget: u64,
    slice_end: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Limiter {
    /// A limiter for `per_slice` bytes per 2^shift_millis ms; `None` when unlimited
    /// (no limit, or a limit of 0, which g3proxy also reads as "no limit").
    pub(crate) fn new(shift_millis: u8, per_slice: Option<u64>) -> Option<Limiter> {
        let per_slice = per_slice.filter(|b| *b > 0)?;
        let slice = Duration::from_millis(1u64 << shift_millis.min(16));
        Some(Limiter {
            slice,
            per_slice,
            budget: per_slice,
            slice_end: Instant::now() + slice,
            sleep: None,
        })
    }

    /// The limiter for `limit.upload` (client -> upstream); `None` when unlimited.
    pub(crate) fn upload(limit: &SpeedLimit) -> Option<Limiter> {
        Limiter::new(limit.shift_millis, limit.upload)
    }

    /// The limiter for `limit.download` (upstream -> client); `None` when unlimited.
    pub(crate) fn download(limit: &SpeedLimit) -> Option<Limiter> {
        Limiter::new(limit.shift_millis, limit.download)
    }

    /// How many bytes may be moved now; pending while the slice budget is spent.
    pub(crate) fn poll_budget(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        loop {
            if self.budget > 0 {
                return Poll::Ready(usize::try_from(self.budget).unwrap_or(usize::MAX));
            }
            let now = Instant::now();
            if now >= self.slice_end {
                // continue the slice grid when we are in the very next slice, else restart it
                self.slice_end = if now < self.slice_end + self.slice {
                    self.slice_end + self.slice
                } else {
                    now + self.slice
                };
                self.budget = self.per_slice;
                continue;
            }
            let end = self.slice_end;
            let sleep = match &mut self.sleep {
                Some(s) => {
                    if s.deadline() != end {
                        s.as_mut().reset(end);
                    }
                    s
                }
                None => self.sleep.insert(Box::pin(tokio::time::sleep_until(end))),
            };
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Accounts bytes just moved.
    pub(crate) fn consume(&mut self, n: usize) {
        self.budget = self.budget.saturating_sub(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_none_are_unlimited() {
        assert!(Limiter::new(10, None).is_none());
        assert!(Limiter::new(10, Some(0)).is_none());
        assert!(Limiter::new(10, Some(1)).is_some());
    }
}
