//! The streams of HTTP forwarding.
//!
//! Each side of a client connection (the client, and every upstream connection it uses) is wrapped
//! in px-io's [`LimitedStream`]: the server's `tcp_sock_speed_limit` on the client side, the
//! escaper's `UpstreamConn::speed_limit` on the upstream side, and one activity counter shared by
//! both, which `forward` watches with [`px_io::idle_guard`] for the task idle time. The limited
//! stream is then buffered both ways ([`HEAD_BUFFER_SIZE`], and `tcp_copy_buffer_size` for the
//! upstream's reads), since heads and bodies are parsed and framed rather than relayed blindly.
//!
//! CONNECT tunnels unwrap the stream again ([`into_stream`]) and let px-io's relay apply the
//! limits.
//!
//! Between the buffers and the limited stream, a [`ByteCount`] counts the connection's bytes in
//! plain fields; [`take_counts`] hands them to the server's stats once per request.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use px_core::value::SpeedLimit;
use px_io::{LimitedStream, Side};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter};

use crate::common::stats::ByteCount;

/// A limited stream, buffered both ways.
pub(crate) type Io<S> = BufReader<BufWriter<ByteCount<LimitedStream<S>>>>;

/// The buffer for what is mostly heads: both write buffers and the client's read buffer.
///
/// Writes larger than a buffer skip it, so bodies still go out in reads of the other side's
/// size; only the upstream's read buffer, which carries response bodies, takes
/// `tcp_copy_buffer_size`. A keep-alive connection then holds 28 KiB of buffers instead of
/// 64 KiB (with 16 KiB), which is most of a busy forward proxy's memory.
pub(crate) const HEAD_BUFFER_SIZE: usize = 4096;

/// Wraps the stream on `side` with that side's `limit`, counting into `activity`, and buffers it
/// with `read_cap` bytes for reads and [`HEAD_BUFFER_SIZE`] for writes.
pub(crate) fn buffered<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    side: Side,
    limit: SpeedLimit,
    activity: &Arc<AtomicU64>,
    read_cap: usize,
) -> Io<S> {
    let limited = LimitedStream::new(stream, side, limit, Arc::clone(activity));
    let writer = BufWriter::with_capacity(HEAD_BUFFER_SIZE, ByteCount::new(limited));
    BufReader::with_capacity(read_cap, writer)
}

/// The raw stream, dropping the buffers: take the read buffer's bytes and flush first.
pub(crate) fn into_stream<S: AsyncRead + AsyncWrite + Unpin>(io: Io<S>) -> S {
    io.into_inner().into_inner().into_inner().into_inner()
}

/// The bytes (read, written) on the stream since the last call.
pub(crate) fn take_counts<S: AsyncRead + AsyncWrite + Unpin>(io: &mut Io<S>) -> (u64, u64) {
    io.get_mut().get_mut().take_counts()
}
