//! The relay between two plain TCP sockets, with splice(2) for bulk data.
//!
//! Each direction starts with the userspace copy (no buffer while idle, see
//! `crate::copy`) and switches to splice(2), socket -> kernel pipe -> socket,
//! once it has read 64 KiB in one go: short exchanges (a request and its
//! answer, an idle tunnel) never touch a pipe, bulk transfers skip the copies
//! through userspace. A spliced direction takes its pipe from a bounded
//! per-thread pool when its source becomes readable and gives it back as soon
//! as it has nothing to read and the pipe is empty, so an idle tunnel holds two
//! sockets and no pipe; a pipe with bytes left in it when a relay ends is
//! closed. When no pipe can be had (fd exhaustion), the direction goes on in
//! userspace. The outcome's path is the one that moved most of the bytes.
//!
//! Chosen per connection by [`crate::relay_tcp`] when [`available`] (Linux,
//! a pipe can be made, `PX_IO_NO_SPLICE` is not set) and nothing needs to see
//! or pace the bytes. Half-close, idle timeout, pending bytes and the outcome
//! work as in the userspace loop.

use tokio::net::TcpStream;

#[cfg(not(target_os = "linux"))]
use crate::relay::relay_with_pending;
use crate::relay::{RelayOpts, RelayOutcome};

#[cfg(target_os = "linux")]
mod sys;

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
mod pool;

#[cfg(target_os = "linux")]
pub use pool::{PipeStats, thread_stats};

/// True when this build and kernel can splice between sockets (probed once;
/// setting the environment variable `PX_IO_NO_SPLICE` turns it off).
pub fn available() -> bool {
    #[cfg(target_os = "linux")]
    {
        static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *PROBE.get_or_init(|| std::env::var_os("PX_IO_NO_SPLICE").is_none() && sys::pipe().is_ok())
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Relays two TCP sockets: userspace first, splice for bulk data per direction.
pub(crate) async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    #[cfg(target_os = "linux")]
    {
        linux::relay(client, upstream, to_upstream, to_client, opts).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        relay_with_pending(client, upstream, to_upstream, to_client, opts).await
    }
}
