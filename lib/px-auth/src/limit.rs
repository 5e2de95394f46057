//! Per-user rate limits (`tcp_conn_rate_limit`, `request_rate_limit`) and the alive-task count
//! (`request_max_alive`).
//!
//! A rate limit quota is g3proxy's value: `1000/s`, `60/m`, `100/h`, a bare count per second, or
//! a map `{rate, replenish_interval, max_burst}`. It is enforced with GCRA (the generic cell rate
//! algorithm, a token bucket kept as one "theoretical arrival time"): one cell is replenished every
//! `interval / count`, and up to `max_burst` cells (the count by default) may be taken at once.
//! The state is one atomic, so checks never lock.
//!
//! ```yaml
//! request_rate_limit: 2000/s
//! tcp_conn_rate_limit: {rate: 100/m, max_burst: 10}
//! request_max_alive: 2000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use px_core::RequestPermit;
use px_yaml::{ConfigError, Val, values};
use tokio::time::Instant;

/// A parsed rate limit quota: one cell per `interval`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// Time to replenish one cell.
    pub(crate) interval: Duration,
    /// Cells that may be taken at once.
    pub(crate) burst: u64,
}

impl Quota {
    /// Reads a quota value.
    pub(crate) fn parse(v: &Val<'_>) -> Result<Quota, ConfigError> {
        if !v.is_map() {
            let (n, per) = values::rate(v)?;
            return Ok(Quota {
                interval: per / u32::try_from(n).unwrap_or(u32::MAX),
                burst: n,
            });
        }
        let mut m = v.map()?;
        let mut q = None;
        // g3proxy: the latter of `rate` and `replenish_interval` wins
        for (key, val) in m.rest() {
            match px_yaml::normalize_key(&key).as_str() {
                "rate" => {
                    let (n, per) = values::rate(&val)?;
                    q = Some(Quota {
                        interval: per / u32::try_from(n).unwrap_or(u32::MAX),
                        burst: q.map(|q: Quota| q.burst).unwrap_or(n),
                    });
                }
                "replenish_interval" => {
                    let d = values::duration(&val)?;
                    if d.is_zero() {
                        return Err(val.err("replenish_interval must not be 0"));
                    }
                    q = Some(Quota {
                        interval: d,
                        burst: 1,
                    });
                }
                "max_burst" => {}
                _ => return Err(val.err(format!("unknown key `{key}`"))),
            }
        }
        let mut q = q.ok_or_else(|| v.err("a rate limit needs `rate` or `replenish_interval`"))?;
        let mut m = v.map()?;
        if let Some(b) = m.get("max_burst") {
            let n: u64 = b.as_u64()?;
            if n == 0 {
                return Err(b.err("max_burst must not be 0"));
            }
            q.burst = n;
        }
        Ok(q)
    }
}

/// A GCRA limiter for one quota.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    start: Instant,
    /// Emission interval in nanoseconds.
    t: u64,
    /// Burst tolerance in nanoseconds: t × (burst − 1).
    tau: u64,
    /// Theoretical arrival time, nanoseconds since `start`.
    tat: AtomicU64,
}

impl RateLimiter {
    /// A full limiter for a quota.
    pub(crate) fn new(q: Quota) -> Self {
        let t = u64::try_from(q.interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        RateLimiter {
            start: Instant::now(),
            t,
            tau: t.saturating_mul(q.burst.saturating_sub(1)),
            tat: AtomicU64::new(0),
        }
    }

    /// Takes one cell if there is one.
    pub(crate) fn try_take(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            if base - now > self.tau {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                base.saturating_add(self.t),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

/// The count of a user's alive requests against `request_max_alive`.
#[derive(Debug)]
pub(crate) struct AliveLimit {
    max: usize,
    alive: Arc<AtomicUsize>,
}

impl AliveLimit {
    /// A limit of `max` alive requests.
    pub(crate) fn new(max: usize) -> Self {
        AliveLimit {
            max,
            alive: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A slot, or `Err(max)` when all are taken.
    pub(crate) fn try_acquire(&self) -> Result<RequestPermit, usize> {
        let mut cur = self.alive.load(Ordering::Acquire);
        loop {
            if cur >= self.max {
                return Err(self.max);
            }
            match self.alive.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(RequestPermit::counted(Arc::clone(&self.alive))),
                Err(seen) => cur = seen,
            }
        }
    }

    /// How many requests are alive now.
    #[cfg(test)]
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn quota(yaml: &str) -> Result<Quota, ConfigError> {
        let node = px_yaml::load_str(yaml, Path::new("q.yaml")).unwrap();
        Quota::parse(&Val::root(&node, "q"))
    }

    #[test]
    fn quota_forms() {
        let q = quota("10/s").unwrap();
        assert_eq!((q.interval, q.burst), (Duration::from_millis(100), 10));
        let q = quota("60/m").unwrap();
        assert_eq!((q.interval, q.burst), (Duration::from_secs(1), 60));
        let q = quota("5").unwrap();
        assert_eq!(q.burst, 5);
        let q = quota("{rate: 100/h, max_burst: 3}").unwrap();
        assert_eq!((q.interval, q.burst), (Duration::from_secs(36), 3));
        let q = quota("{replenish_interval: 2s}").unwrap();
        assert_eq!((q.interval, q.burst), (Duration::from_secs(2), 1));
        assert!(quota("0/s").is_err());
        assert!(quota("{max_burst: 3}").is_err());
        assert!(quota("{rate: 1/s, bogus: 1}").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn gcra_burst_then_rate() {
        let l = RateLimiter::new(quota("4/s").unwrap());
        for _ in 0..4 {
            assert!(l.try_take());
        }
        assert!(!l.try_take(), "burst of 4 spent");
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(l.try_take(), "one cell per 250 ms");
        assert!(!l.try_take());
        tokio::time::advance(Duration::from_secs(5)).await;
        let n = (0..10).filter(|_| l.try_take()).count();
        assert_eq!(n, 4, "never more than the burst");
    }

    #[test]
    fn alive_slots() {
        let a = AliveLimit::new(2);
        let p1 = a.try_acquire().unwrap();
        let _p2 = a.try_acquire().unwrap();
        assert_eq!(a.try_acquire().unwrap_err(), 2);
        drop(p1);
        assert_eq!(a.alive(), 1);
        assert!(a.try_acquire().is_ok());
    }
}
