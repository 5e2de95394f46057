//! The UDP relay's speed limiter: a byte and a packet budget per time slice of 2^shift ms, for
//! `udp_sock_speed_limit` and an escaper's UDP limit.
//!
//! TCP relays are paced by px-io. px-io's limiter is private to its relay loop and counts bytes
//! only, while a UDP limit also counts packets and paces `recv_from` / `send_to` calls, so this
//! small datagram limiter stays here. A direction waits for the next slice once either budget is
//! spent, so a limit slows the relay down instead of dropping datagrams; one datagram may overrun
//! the byte budget of its slice. A limit of `None` or 0 means unlimited.

use std::time::Duration;

use tokio::time::Instant;

/// One UDP direction's limiter: bytes and packets per slice.
#[derive(Debug)]
pub(crate) struct DatagramLimiter {
    slice: Duration,
    bytes: Option<u64>,
    packets: Option<u64>,
    used_bytes: u64,
    used_packets: u64,
    slice_end: Instant,
}

impl DatagramLimiter {
    /// A limiter of `bytes` and `packets` per 2^shift_millis ms.
    pub(crate) fn new(bytes: Option<u64>, packets: Option<u64>, shift_millis: u8) -> Self {
        let slice = Duration::from_millis(1u64 << shift_millis.min(16));
        DatagramLimiter {
            slice,
            bytes: bytes.filter(|n| *n > 0),
            packets: packets.filter(|n| *n > 0),
            used_bytes: 0,
            used_packets: 0,
            slice_end: Instant::now() + slice,
        }
    }

    fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.packets.is_none()
    }

    /// Starts a new slice when the current one is over: the next one on the grid when we are in
    /// it, else one starting now.
    fn roll(&mut self, now: Instant) {
        if now >= self.slice_end {
            self.slice_end = if now < self.slice_end + self.slice {
                self.slice_end + self.slice
            } else {
                now + self.slice
            };
            self.used_bytes = 0;
            self.used_packets = 0;
        }
    }

    fn spent(&self) -> bool {
        self.bytes.is_some_and(|b| self.used_bytes >= b)
            || self.packets.is_some_and(|p| self.used_packets >= p)
    }

    /// Waits until one more datagram may pass.
    pub(crate) async fn ready(&mut self) {
        if self.is_unlimited() {
            return;
        }
        loop {
            self.roll(Instant::now());
            if !self.spent() {
                return;
            }
            tokio::time::sleep_until(self.slice_end).await;
        }
    }

    /// Records one datagram of `len` bytes (in the slice it passed in, even if that started
    /// while the caller waited for the datagram).
    pub(crate) fn consume(&mut self, len: usize) {
        if self.is_unlimited() {
            return;
        }
        self.roll(Instant::now());
        self.used_bytes = self.used_bytes.saturating_add(len as u64);
        self.used_packets = self.used_packets.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pass(l: &mut DatagramLimiter, n: usize, len: usize) -> Duration {
        let t0 = Instant::now();
        for _ in 0..n {
            l.ready().await;
            l.consume(len);
        }
        Instant::now() - t0
    }

    #[tokio::test]
    async fn packet_budget() {
        // 2 packets per 64 ms: the 5th datagram waits for the third slice
        let mut l = DatagramLimiter::new(None, Some(2), 6);
        let took = pass(&mut l, 5, 10).await;
        assert!(took >= Duration::from_millis(120), "{took:?}");
    }

    #[tokio::test]
    async fn byte_budget() {
        // 100 bytes per 64 ms, 60-byte datagrams: two fit a slice (the second overruns it)
        let mut l = DatagramLimiter::new(Some(100), None, 6);
        let took = pass(&mut l, 3, 60).await;
        assert!(took >= Duration::from_millis(55), "{took:?}");
    }

    #[tokio::test]
    async fn zero_and_none_are_unlimited() {
        for (b, p) in [(None, None), (Some(0), Some(0))] {
            let mut l = DatagramLimiter::new(b, p, 10);
            let took = pass(&mut l, 1000, 1 << 16).await;
            assert!(took < Duration::from_millis(500), "{took:?}");
        }
    }

    #[tokio::test]
    async fn late_datagram_counts_in_the_current_slice() {
        // 1 packet per 64 ms; the datagram passes two slices after `ready`
        let mut l = DatagramLimiter::new(None, Some(1), 6);
        l.ready().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        l.consume(1);
        // so the current slice's budget is spent and the next datagram waits
        let t0 = Instant::now();
        l.ready().await;
        assert!(Instant::now() - t0 >= Duration::from_millis(50));
    }
}
