//! The relay engine shared by every server: a bidirectional copy between a
//! client stream and an upstream stream, with reused buffers, half-close,
//! an idle timeout, per-direction speed limits and a zero-copy seam.
//!
//! ```no_run
//! # async fn demo(mut client: tokio::net::TcpStream, mut conn: px_core::UpstreamConn) {
//! use px_io::{RelayOpts, relay_upstream};
//! let opts = RelayOpts { idle_timeout: Some(std::time::Duration::from_secs(300)), ..Default::default() };
//! let outcome = relay_upstream(&mut client, &mut conn, b"", b"", &opts).await;
//! log::info!("up {} down {}: {}", outcome.up_bytes, outcome.down_bytes, outcome.end.reason());
//! # }
//! ```
//!
//! Servers that parse what they forward (HTTP heads, framed bodies) instead of
//! relaying blindly wrap each side in a [`LimitedStream`] (the same slice-based
//! speed limiter as the relay, plus a shared activity counter) and run each
//! transfer under [`idle_guard`] (the same idle check as the relay).

mod copy;
mod idle;
mod limit;
pub mod relay;
pub mod splice;
mod stream;
#[cfg(all(feature = "io-uring", target_os = "linux"))]
pub mod uring;

pub use idle::{IdleTimeout, idle_guard};
pub use stream::LimitedStream;

pub use relay::{
    DEFAULT_BUF_SIZE, PathTotals, RelayEnd, RelayOpts, RelayOutcome, RelayPath, Side, path_totals,
    relay, relay_tcp, relay_upstream, relay_with_pending, splice_eligible,
};
