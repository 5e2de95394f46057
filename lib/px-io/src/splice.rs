//! The zero-copy relay path between two plain TCP sockets (splice(2)).
//!
//! Not implemented yet: [`available`] reports false, and [`relay`] runs the
//! userspace loop, so callers can already go through this seam.

use tokio::net::TcpStream;

use crate::relay::{RelayOpts, RelayOutcome, relay_with_pending};

/// True when this build and kernel can splice between sockets.
pub fn available() -> bool {
    false
}

/// Relays two TCP sockets through kernel pipes (falls back to userspace).
pub(crate) async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    relay_with_pending(client, upstream, to_upstream, to_client, opts).await
}
