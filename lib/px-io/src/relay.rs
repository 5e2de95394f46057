//! The bidirectional relay: client <-> upstream until both sides end, one
//! fails, or the connection stays idle too long.
//!
//! - No buffer while a direction is idle: reads land on the stack and are
//!   written straight out; a `buf_size` buffer (default 16 KiB) is taken only
//!   on back-pressure or bulk data and freed when the source runs dry.
//! - Half-close: EOF from one side shuts down the write half of the other;
//!   the other direction keeps going until it ends too.
//! - Idle timeout: no byte either way for `idle_timeout` ends the relay.
//! - Speed limits: the client's and the upstream's [`SpeedLimit`] are merged
//!   with [`SpeedLimit::stricter`]; `upload` limits client -> upstream and
//!   `download` upstream -> client.
//! - Bytes already read past a protocol head are passed in and sent first.
//! - Plain TCP on both sides with no limit goes through the io_uring ring
//!   (feature `io-uring`, see `crate::uring`), else [`crate::splice`] when the
//!   kernel supports it, else this userspace loop. [`path_totals`] counts the
//!   relays each path carried in this process.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use px_core::value::SpeedLimit;
use px_core::{UpstreamConn, UpstreamStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::copy::{Dir, DirError, Duplex, drive};
use crate::limit::Limiter;

/// The default buffer size per direction.
pub const DEFAULT_BUF_SIZE: usize = 16 * 1024;

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayOpts {
    /// Buffer size per direction (held only while data streams or waits).
    pub buf_size: usize,
    /// End the relay when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// The client side's limit (a server's `tcp_sock_speed_limit`, a user's).
    pub client_limit: SpeedLimit,
    /// The upstream side's limit (an escaper's `tcp_sock_speed_limit`).
    pub upstream_limit: SpeedLimit,
    /// Allow the zero-copy path (false when an auditor needs to see the bytes).
    pub allow_splice: bool,
}

impl Default for RelayOpts {
    fn default() -> Self {
        RelayOpts {
            buf_size: DEFAULT_BUF_SIZE,
            idle_timeout: None,
            client_limit: SpeedLimit::default(),
            upstream_limit: SpeedLimit::default(),
            allow_splice: true,
        }
    }
}

impl RelayOpts {
    /// The merged limit that applies: the stricter of client and upstream each way.
    pub fn effective_limit(&self) -> SpeedLimit {
        self.client_limit.stricter(self.upstream_limit)
    }
}

/// A side of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The proxy's client.
    Client,
    /// The upstream (target or next proxy).
    Upstream,
}

/// Why a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions reached EOF; the side that closed first is given.
    Closed(Side),
    /// Reading from the client failed.
    ClientRead(io::Error),
    /// Writing to the client failed.
    ClientWrite(io::Error),
    /// Reading from the upstream failed.
    UpstreamRead(io::Error),
    /// Writing to the upstream failed.
    UpstreamWrite(io::Error),
    /// No byte moved either way for the idle timeout.
    IdleTimeout,
}

impl RelayEnd {
    /// True when the relay ended without an error or a timeout.
    pub fn is_clean(&self) -> bool {
        matches!(self, RelayEnd::Closed(_))
    }

    /// The side that failed, if one did.
    pub fn failed_side(&self) -> Option<Side> {
        match self {
            RelayEnd::ClientRead(_) | RelayEnd::ClientWrite(_) => Some(Side::Client),
            RelayEnd::UpstreamRead(_) | RelayEnd::UpstreamWrite(_) => Some(Side::Upstream),
            RelayEnd::Closed(_) | RelayEnd::IdleTimeout => None,
        }
    }

    /// A short reason for task logs.
    pub fn reason(&self) -> String {
        match self {
            RelayEnd::Closed(Side::Client) => "client closed".to_string(),
            RelayEnd::Closed(Side::Upstream) => "upstream closed".to_string(),
            RelayEnd::ClientRead(e) => format!("client read error: {e}"),
            RelayEnd::ClientWrite(e) => format!("client write error: {e}"),
            RelayEnd::UpstreamRead(e) => format!("upstream read error: {e}"),
            RelayEnd::UpstreamWrite(e) => format!("upstream write error: {e}"),
            RelayEnd::IdleTimeout => "idle timeout".to_string(),
        }
    }
}

/// Which data path carried the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayPath {
    /// The userspace copy loop (for a TCP pair: most bytes moved in userspace).
    Userspace,
    /// splice(2) through a kernel pipe (for a TCP pair: most bytes spliced; each
    /// direction starts in userspace and switches after 64 KiB in one go).
    Splice,
    /// An io_uring ring thread (feature `io-uring`).
    IoUring,
}

/// Relays ended per path in this process, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathTotals {
    /// Relays on the userspace copy loop.
    pub userspace: u64,
    /// Relays on splice(2).
    pub splice: u64,
    /// Relays on io_uring.
    pub io_uring: u64,
}

static PATH_TOTALS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one relay ended on `path`.
pub(crate) fn count_path(path: RelayPath) {
    let i = match path {
        RelayPath::Userspace => 0,
        RelayPath::Splice => 1,
        RelayPath::IoUring => 2,
    };
    PATH_TOTALS[i].fetch_add(1, Ordering::Relaxed);
}

/// How many relays each data path carried in this process so far.
pub fn path_totals() -> PathTotals {
    PathTotals {
        userspace: PATH_TOTALS[0].load(Ordering::Relaxed),
        splice: PATH_TOTALS[1].load(Ordering::Relaxed),
        io_uring: PATH_TOTALS[2].load(Ordering::Relaxed),
    }
}

/// The result of a relay: bytes each way, why it ended, and the path taken.
#[derive(Debug)]
pub struct RelayOutcome {
    /// Bytes written to the upstream (client -> upstream, including pending bytes).
    pub up_bytes: u64,
    /// Bytes written to the client (upstream -> client, including pending bytes).
    pub down_bytes: u64,
    /// Why the relay ended.
    pub end: RelayEnd,
    /// The data path used.
    pub path: RelayPath,
}

/// Relays between any two streams until both end, one fails, or the idle timeout.
pub async fn relay<C, U>(client: &mut C, upstream: &mut U, opts: &RelayOpts) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    U: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    relay_with_pending(client, upstream, &[], &[], opts).await
}

/// Like [`relay`], first sending `to_upstream` (bytes the client sent past a
/// protocol head) and `to_client` (bytes the upstream sent past its reply).
pub async fn relay_with_pending<C, U>(
    client: &mut C,
    upstream: &mut U,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    U: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let limit = opts.effective_limit();
    let up = Dir::new(opts.buf_size, to_upstream, Limiter::upload(&limit));
    let down = Dir::new(opts.buf_size, to_client, Limiter::download(&limit));
    let mut duplex = UserspaceDuplex {
        up,
        down,
        client,
        upstream,
    };
    let end = drive(&mut duplex, opts.idle_timeout).await;
    let (up, down) = (duplex.up, duplex.down);
    count_path(RelayPath::Userspace);

    RelayOutcome {
        up_bytes: up.bytes,
        down_bytes: down.bytes,
        end,
        path: RelayPath::Userspace,
    }
}

/// True when a relay between two plain TCP sockets may use the zero-copy path:
/// allowed by the caller, no speed limit either way, and supported here.
pub fn splice_eligible(opts: &RelayOpts) -> bool {
    opts.allow_splice && opts.effective_limit().is_unlimited() && crate::splice::available()
}

/// Relays between two plain TCP sockets: the io_uring path when built with
/// feature `io-uring` and eligible (`px_io::uring::eligible`), else the
/// zero-copy path when [`splice_eligible`], else the userspace loop. Pending
/// bytes are sent first.
pub async fn relay_tcp(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    if crate::uring::eligible(opts) {
        return crate::uring::relay(client, upstream, to_upstream, to_client, opts).await;
    }
    relay_tcp_no_uring(client, upstream, to_upstream, to_client, opts).await
}

/// [`relay_tcp`] without the io_uring path (its per-connection fallback).
pub(crate) async fn relay_tcp_no_uring(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    if splice_eligible(opts) {
        return crate::splice::relay(client, upstream, to_upstream, to_client, opts).await;
    }
    relay_with_pending(client, upstream, to_upstream, to_client, opts).await
}

/// Relays between a client stream and an escaper's [`UpstreamConn`], applying
/// the connection's speed limit (stricter with `opts.upstream_limit`); takes
/// the zero-copy path when the client is a plain `TcpStream` and the upstream
/// is [`UpstreamStream::Tcp`].
pub async fn relay_upstream<C>(
    client: &mut C,
    upstream: &mut UpstreamConn,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut opts = opts.clone();
    opts.upstream_limit = opts.upstream_limit.stricter(upstream.speed_limit);
    match &mut upstream.stream {
        UpstreamStream::Tcp(up) => {
            let client_any: &mut dyn std::any::Any = client;
            match client_any.downcast_mut::<TcpStream>() {
                Some(c) => relay_tcp(c, up, to_upstream, to_client, &opts).await,
                None => relay_with_pending(client, up, to_upstream, to_client, &opts).await,
            }
        }
        UpstreamStream::Other(up) => {
            relay_with_pending(client, up.as_mut(), to_upstream, to_client, &opts).await
        }
    }
}

/// The userspace copy loop's two directions over any pair of streams.
struct UserspaceDuplex<'a, C: ?Sized, U: ?Sized> {
    up: Dir,
    down: Dir,
    client: &'a mut C,
    upstream: &'a mut U,
}

impl<C, U> Duplex for UserspaceDuplex<'_, C, U>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    U: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    fn poll_dir(&mut self, cx: &mut Context<'_>, from: Side) -> Poll<Result<(), DirError>> {
        match from {
            Side::Client => self.up.poll_copy(cx, self.client, self.upstream),
            Side::Upstream => self.down.poll_copy(cx, self.upstream, self.client),
        }
    }

    fn total_bytes(&self) -> u64 {
        self.up.bytes + self.down.bytes
    }
}
