//! The zero-copy relay path between two plain TCP sockets: splice(2) from a
//! socket into a kernel pipe and from the pipe into the other socket, one pipe
//! per direction, driven by tokio's readiness. No userspace buffer is
//! allocated, so an idle spliced tunnel costs two pipes and no heap memory.
//!
//! Chosen per connection by [`crate::relay_tcp`] when [`available`] (Linux,
//! a pipe can be made, `PX_IO_NO_SPLICE` is not set) and nothing needs to see
//! or pace the bytes; if pipes cannot be created for a connection (fd
//! exhaustion), that connection falls back to the userspace loop. Half-close,
//! idle timeout, pending bytes and the outcome work as in the userspace loop.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::net::TcpStream;

use crate::relay::{RelayOpts, RelayOutcome, relay_with_pending};

#[cfg(target_os = "linux")]
mod sys;

#[cfg(target_os = "linux")]
mod linux;

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

/// Relays two TCP sockets through kernel pipes, or through the userspace
/// loop when pipes cannot be made for this connection.
pub(crate) async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    #[cfg(target_os = "linux")]
    {
        match linux::Pipes::new() {
            Ok(pipes) => {
                return linux::relay(pipes, client, upstream, to_upstream, to_client, opts).await;
            }
            Err(e) => log::debug!("splice unavailable for this connection: {e}"),
        }
    }
    relay_with_pending(client, upstream, to_upstream, to_client, opts).await
}

/// Writes a pending slice to a socket; Ready(Ok) once all of it is written.
fn poll_write_pending(
    cx: &mut Context<'_>,
    dst: &mut TcpStream,
    pending: &[u8],
    pos: &mut usize,
    bytes: &mut u64,
) -> Poll<std::io::Result<()>> {
    use tokio::io::AsyncWrite;
    while *pos < pending.len() {
        match Pin::new(&mut *dst).poll_write(cx, &pending[*pos..]) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            Poll::Ready(Ok(n)) => {
                *pos += n;
                *bytes += n as u64;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}
