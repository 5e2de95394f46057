//! Per-socket speed limiters: a byte (and packet) budget per time slice of 2^shift ms.
//!
//! A direction waits for the next slice once its budget is spent, so a limit slows the relay down
//! instead of dropping data. A limit of `None` or 0 means unlimited.
//!
//! Stands in until px-io's rate-limited IO wrappers exist (see NOTES-socks.md).

use std::time::Duration;

use tokio::time::Instant;

/// A budget of units (bytes or packets) per time slice.
#[derive(Debug)]
pub(crate) struct SliceLimiter {
    per_slice: Option<u64>,
    slice: Duration,
    start: Instant,
    used: u64,
}

impl SliceLimiter {
    /// A limiter of `per_slice` units per 2^shift_millis ms.
    pub(crate) fn new(per_slice: Option<u64>, shift_millis: u8) -> Self {
        SliceLimiter {
            per_slice: per_slice.filter(|n| *n > 0),
            slice: Duration::from_millis(1u64 << shift_millis.min(12)),
            start: Instant::now(),
            used: 0,
        }
    }

    /// True when there is no limit.
    pub(crate) fn is_unlimited(&self) -> bool {
        self.per_slice.is_none()
    }

    fn roll(&mut self) {
        let now = Instant::now();
        if now >= self.start + self.slice {
            self.start = now;
            self.used = 0;
        }
    }

    /// Waits until some budget is left, then returns how many units may be used now
    /// (at most `want`).
    pub(crate) async fn acquire(&mut self, want: usize) -> usize {
        let Some(limit) = self.per_slice else {
            return want;
        };
        loop {
            self.roll();
            if self.used < limit {
                let left = usize::try_from(limit - self.used).unwrap_or(usize::MAX);
                return want.min(left).max(1);
            }
            tokio::time::sleep_until(self.start + self.slice).await;
        }
    }

    /// Records units used.
    pub(crate) fn consume(&mut self, n: usize) {
        if self.per_slice.is_some() {
            self.used = self.used.saturating_add(n as u64);
        }
    }
}

/// A UDP direction's limiter: bytes and packets per slice.
#[derive(Debug)]
pub(crate) struct DatagramLimiter {
    bytes: SliceLimiter,
    packets: SliceLimiter,
}

impl DatagramLimiter {
    /// A limiter for one direction.
    pub(crate) fn new(bytes: Option<u64>, packets: Option<u64>, shift_millis: u8) -> Self {
        DatagramLimiter {
            bytes: SliceLimiter::new(bytes, shift_millis),
            packets: SliceLimiter::new(packets, shift_millis),
        }
    }

    /// Waits until one more datagram may pass.
    pub(crate) async fn ready(&mut self) {
        if !self.bytes.is_unlimited() {
            self.bytes.acquire(1).await;
        }
        if !self.packets.is_unlimited() {
            self.packets.acquire(1).await;
        }
    }

    /// Records one datagram of `len` bytes.
    pub(crate) fn consume(&mut self, len: usize) {
        self.bytes.consume(len);
        self.packets.consume(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_next_slice() {
        let mut l = SliceLimiter::new(Some(100), 6);
        let t0 = Instant::now();
        assert_eq!(l.acquire(1000).await, 100);
        l.consume(100);
        assert_eq!(l.acquire(30).await, 30);
        assert!(Instant::now() - t0 >= Duration::from_millis(64));
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let mut l = SliceLimiter::new(Some(0), 10);
        assert!(l.is_unlimited());
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.acquire(1 << 20).await, 1 << 20);
            l.consume(1 << 20);
        }
        assert!(Instant::now() - t0 < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn packet_budget() {
        let mut l = DatagramLimiter::new(None, Some(2), 6);
        let t0 = Instant::now();
        for _ in 0..4 {
            l.ready().await;
            l.consume(10);
        }
        assert!(Instant::now() - t0 >= Duration::from_millis(64));
    }
}
