//! The TCP relay of a CONNECT task: both directions with half-close, per-direction speed limits,
//! a yield budget and an idle check.
//!
//! The task ends when both directions reached EOF, when either fails, or when no byte moved in
//! either direction for `idle_max` consecutive checks `idle_interval` apart.
//!
//! Stands in until px-io's relay engine exists (see NOTES-socks.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use px_core::value::SpeedLimit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::limit::SliceLimiter;

/// How a relay runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayConfig {
    /// Buffer per direction.
    pub(crate) buffer_size: usize,
    /// Bytes copied before yielding to the scheduler.
    pub(crate) yield_size: usize,
    /// Time between idle checks.
    pub(crate) idle_interval: Duration,
    /// Idle checks in a row that end the task.
    pub(crate) idle_max: u32,
    /// upload: client to upstream; download: upstream to client.
    pub(crate) limit: SpeedLimit,
}

/// Why a relay ended, and the bytes moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelayStats {
    /// Bytes from client to upstream.
    pub(crate) up: u64,
    /// Bytes from upstream to client.
    pub(crate) down: u64,
    /// How it ended.
    pub(crate) end: RelayEnd,
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayEnd {
    /// Both sides closed their sending side.
    Closed,
    /// Reading from or writing to the client failed.
    ClientError,
    /// Reading from or writing to the upstream failed.
    UpstreamError,
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Which side an error came from.
enum Side {
    Reader,
    Writer,
}

async fn pump<R, W>(
    mut r: R,
    mut w: W,
    cfg: &RelayConfig,
    per_slice: Option<u64>,
    counter: &AtomicU64,
) -> Result<(), Side>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; cfg.buffer_size];
    let mut limiter = SliceLimiter::new(per_slice, cfg.limit.shift_millis);
    let mut since_yield = 0usize;
    loop {
        let max = limiter.acquire(buf.len()).await;
        let n = r.read(&mut buf[..max]).await.map_err(|_| Side::Reader)?;
        if n == 0 {
            // half-close: pass the EOF on, keep the other direction running
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await.map_err(|_| Side::Writer)?;
        w.flush().await.map_err(|_| Side::Writer)?;
        limiter.consume(n);
        counter.fetch_add(n as u64, Ordering::Relaxed);
        since_yield += n;
        if since_yield >= cfg.yield_size {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// Relays between a client and an upstream until both close, one fails, or idle.
pub(crate) async fn relay<C, U>(client: C, upstream: U, cfg: RelayConfig) -> RelayStats
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let upload = pump(cr, uw, &cfg, cfg.limit.upload, &up);
    let download = pump(ur, cw, &cfg, cfg.limit.download, &down);
    tokio::pin!(upload, download);
    let mut up_done = false;
    let mut down_done = false;
    let start = tokio::time::Instant::now() + cfg.idle_interval;
    let mut ticker = tokio::time::interval_at(start, cfg.idle_interval);
    let mut last_total = 0u64;
    let mut idle_count = 0u32;
    let stats = |end| RelayStats {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    };
    loop {
        tokio::select! {
            r = &mut upload, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(Side::Reader) => return stats(RelayEnd::ClientError),
                Err(Side::Writer) => return stats(RelayEnd::UpstreamError),
            },
            r = &mut download, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(Side::Reader) => return stats(RelayEnd::UpstreamError),
                Err(Side::Writer) => return stats(RelayEnd::ClientError),
            },
            _ = ticker.tick() => {
                let total = up.load(Ordering::Relaxed) + down.load(Ordering::Relaxed);
                if total == last_total {
                    idle_count += 1;
                    if idle_count >= cfg.idle_max {
                        return stats(RelayEnd::Idle);
                    }
                } else {
                    idle_count = 0;
                    last_total = total;
                }
            }
        }
        if up_done && down_done {
            return stats(RelayEnd::Closed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg() -> RelayConfig {
        RelayConfig {
            buffer_size: 4096,
            yield_size: 1 << 20,
            idle_interval: Duration::from_millis(50),
            idle_max: 2,
            limit: SpeedLimit::default(),
        }
    }

    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (upstream, mut upstream_peer) = tokio::io::duplex(1024);
        let task = tokio::spawn(relay(client, upstream, cfg()));
        client_peer.write_all(b"hello").await.unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        upstream_peer.write_all(b"world!").await.unwrap();
        upstream_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        client_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"world!");
        let stats = task.await.unwrap();
        assert_eq!(
            stats,
            RelayStats {
                up: 5,
                down: 6,
                end: RelayEnd::Closed
            }
        );
    }

    #[tokio::test]
    async fn idle_ends_the_relay() {
        let (client, _client_peer) = tokio::io::duplex(1024);
        let (upstream, _upstream_peer) = tokio::io::duplex(1024);
        let stats = tokio::time::timeout(Duration::from_secs(5), relay(client, upstream, cfg()))
            .await
            .unwrap();
        assert_eq!(stats.end, RelayEnd::Idle);
    }

    #[tokio::test]
    async fn speed_limit_slows_upload() {
        let (client, mut client_peer) = tokio::io::duplex(1 << 16);
        let (upstream, mut upstream_peer) = tokio::io::duplex(1 << 16);
        let mut c = cfg();
        c.idle_interval = Duration::from_secs(5);
        // 1000 bytes per 64 ms slice
        c.limit = SpeedLimit {
            shift_millis: 6,
            upload: Some(1000),
            download: None,
        };
        let task = tokio::spawn(relay(client, upstream, c));
        let t0 = std::time::Instant::now();
        client_peer.write_all(&[7u8; 4000]).await.unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 4000);
        assert!(t0.elapsed() >= Duration::from_millis(3 * 64));
        drop(upstream_peer);
        drop(client_peer);
        let _ = task.await.unwrap();
    }
}
