//! One direction of a relay: read, write it all out, flush when the reader
//! stalls, shut the writer down at EOF.
//!
//! An idle direction holds no buffer. A read lands in an 8 KiB buffer on the
//! stack and is written straight out; only when the writer cannot take all of
//! it, or when reads keep filling the stack buffer, does the direction take a
//! heap buffer of `buf_size`, which it keeps while data streams and frees as
//! soon as the source has nothing more to read and nothing is queued. Reads
//! are capped by the direction's speed-limit budget.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::idle::IdleCheck;
use crate::limit::Limiter;
use crate::relay::{RelayEnd, Side};

/// Which half of a direction failed.
#[derive(Debug)]
pub(crate) enum DirError {
    /// Reading from the source failed.
    Read(io::Error),
    /// Writing (or flushing, or shutting down) the destination failed.
    Write(io::Error),
}

/// Both directions of a relay, however each one copies (userspace or splice).
pub(crate) trait Duplex {
    /// Polls one direction: `Side::Client` copies client -> upstream,
    /// `Side::Upstream` copies upstream -> client.
    fn poll_dir(&mut self, cx: &mut Context<'_>, from: Side) -> Poll<Result<(), DirError>>;
    /// Bytes written so far, both ways together (for the idle check).
    fn total_bytes(&self) -> u64;
}

/// Drives both directions until both reach EOF, one fails, or nothing moved
/// for the idle timeout; says how the relay ended.
pub(crate) async fn drive(duplex: &mut impl Duplex, idle_timeout: Option<Duration>) -> RelayEnd {
    let mut idle = idle_timeout.map(IdleCheck::new);
    let mut up_done = false;
    let mut down_done = false;
    let mut first_closed: Option<Side> = None;
    poll_fn(|cx| {
        if !up_done {
            match duplex.poll_dir(cx, Side::Client) {
                Poll::Ready(Ok(())) => {
                    up_done = true;
                    first_closed.get_or_insert(Side::Client);
                }
                Poll::Ready(Err(DirError::Read(e))) => return Poll::Ready(RelayEnd::ClientRead(e)),
                Poll::Ready(Err(DirError::Write(e))) => {
                    return Poll::Ready(RelayEnd::UpstreamWrite(e));
                }
                Poll::Pending => {}
            }
        }
        if !down_done {
            match duplex.poll_dir(cx, Side::Upstream) {
                Poll::Ready(Ok(())) => {
                    down_done = true;
                    first_closed.get_or_insert(Side::Upstream);
                }
                Poll::Ready(Err(DirError::Read(e))) => {
                    return Poll::Ready(RelayEnd::UpstreamRead(e));
                }
                Poll::Ready(Err(DirError::Write(e))) => {
                    return Poll::Ready(RelayEnd::ClientWrite(e));
                }
                Poll::Pending => {}
            }
        }
        if up_done && down_done {
            return Poll::Ready(RelayEnd::Closed(first_closed.unwrap_or(Side::Client)));
        }
        if let Some(idle) = &mut idle
            && idle.poll_idle(cx, duplex.total_bytes()).is_ready()
        {
            return Poll::Ready(RelayEnd::IdleTimeout);
        }
        Poll::Pending
    })
    .await
}

/// Reads of a direction without a heap buffer go to a buffer of this size on
/// the stack (as `std::io::copy` does).
const STACK_BUF: usize = 8 * 1024;

/// How [`Dir::poll_copy_until`] stopped copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copied {
    /// The source ended and the destination was shut down.
    Done,
    /// The hand-off threshold was reached with nothing queued: the caller
    /// may move the rest of this direction another way.
    Handoff,
}

/// The state of one copy direction.
pub(crate) struct Dir {
    /// `buf[pos..cap]` is read but not yet written. `None` while the direction
    /// is idle: allocated on back-pressure or a large read, freed when the
    /// source has nothing to read and nothing is queued.
    buf: Option<Box<[u8]>>,
    buf_size: usize,
    pos: usize,
    cap: usize,
    read_done: bool,
    need_flush: bool,
    /// Bytes written to the destination so far.
    pub(crate) bytes: u64,
    /// Bytes read since the source last had nothing to read.
    burst: u64,
    limiter: Option<Limiter>,
}

impl Dir {
    /// A direction with buffers of up to `buf_size`, `pending` bytes already
    /// queued to write, and an optional speed limiter.
    pub(crate) fn new(buf_size: usize, pending: &[u8], limiter: Option<Limiter>) -> Dir {
        let buf_size = buf_size.max(1);
        let buf = (!pending.is_empty()).then(|| {
            let mut b = vec![0u8; buf_size.max(pending.len())].into_boxed_slice();
            b[..pending.len()].copy_from_slice(pending);
            b
        });
        Dir {
            buf,
            buf_size,
            pos: 0,
            cap: pending.len(),
            read_done: false,
            need_flush: false,
            bytes: 0,
            burst: 0,
            limiter,
        }
    }

    /// True while the direction holds a heap buffer (for tests).
    #[cfg(test)]
    fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }

    /// Starts counting the burst for the hand-off threshold afresh.
    pub(crate) fn reset_burst(&mut self) {
        self.burst = 0;
    }

    fn poll_flush_if_needed<W>(&mut self, cx: &mut Context<'_>, w: &mut W) -> Result<(), DirError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.need_flush {
            match Pin::new(w).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.need_flush = false,
                Poll::Ready(Err(e)) => return Err(DirError::Write(e)),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// The source has nothing to read now: give the buffer back if it is
    /// empty, flush what was written, and wait.
    fn idle<W>(&mut self, cx: &mut Context<'_>, w: &mut W) -> Poll<Result<Copied, DirError>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.burst = 0;
        if self.pos == self.cap {
            self.buf = None;
        }
        self.poll_flush_if_needed(cx, w)?;
        Poll::Pending
    }

    /// Copies until the source ends (then shuts the destination down: Ready(Ok)),
    /// an error occurs, or nothing can proceed (Pending).
    pub(crate) fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
    ) -> Poll<Result<(), DirError>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.poll_copy_until(cx, r, w, None).map_ok(|_| ())
    }

    /// Like [`Dir::poll_copy`], and when `handoff` is given, stops with
    /// [`Copied::Handoff`] once that many bytes were read in one go (without
    /// the source running dry in between) and all of them are written.
    pub(crate) fn poll_copy_until<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        handoff: Option<u64>,
    ) -> Poll<Result<Copied, DirError>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.pos < self.cap
                && let Some(buf) = self.buf.as_deref()
            {
                let written = poll_write_all(
                    cx,
                    w,
                    &buf[..self.cap],
                    &mut self.pos,
                    &mut self.bytes,
                    &mut self.need_flush,
                );
                match written {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            self.pos = 0;
            self.cap = 0;

            if self.read_done {
                if self.need_flush {
                    match Pin::new(&mut *w).poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.need_flush = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                return match Pin::new(&mut *w).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Copied::Done)),
                    // the peer is already gone: nothing left to tell it
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                        Poll::Ready(Ok(Copied::Done))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(DirError::Write(e))),
                    Poll::Pending => Poll::Pending,
                };
            }

            if let Some(t) = handoff
                && self.burst >= t
            {
                self.poll_flush_if_needed(cx, w)?;
                if !self.need_flush {
                    self.buf = None;
                    return Poll::Ready(Ok(Copied::Handoff));
                }
            }

            let max = match &mut self.limiter {
                Some(l) => match l.poll_budget(cx) {
                    Poll::Ready(n) => n.max(1),
                    Poll::Pending => {
                        self.poll_flush_if_needed(cx, w)?;
                        return Poll::Pending;
                    }
                },
                None => usize::MAX,
            };
            // a yield point for streams that do not take part in tokio's budget
            let coop = match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(c) => c,
                Poll::Pending => {
                    self.poll_flush_if_needed(cx, w)?;
                    return Poll::Pending;
                }
            };

            if let Some(buf) = self.buf.as_deref_mut() {
                // streaming: read into the heap buffer
                let len = max.min(buf.len());
                let mut rb = ReadBuf::new(&mut buf[..len]);
                match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        coop.made_progress();
                        let n = rb.filled().len();
                        self.got(n);
                        self.cap = n;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Read(e))),
                    Poll::Pending => return self.idle(cx, w),
                }
                continue;
            }

            // no heap buffer: read on the stack, write straight from there
            let mut stack = [MaybeUninit::<u8>::uninit(); STACK_BUF];
            let len = max.min(STACK_BUF).min(self.buf_size);
            let mut rb = ReadBuf::uninit(&mut stack[..len]);
            match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => coop.made_progress(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Read(e))),
                Poll::Pending => return self.idle(cx, w),
            }
            let data = rb.filled();
            let n = data.len();
            self.got(n);
            if n == 0 {
                continue;
            }
            let mut off = 0;
            let written =
                poll_write_all(cx, w, data, &mut off, &mut self.bytes, &mut self.need_flush);
            match written {
                Poll::Ready(Ok(())) => {
                    if n == STACK_BUF && self.buf_size > STACK_BUF {
                        // large data: read the rest of the burst into a full-size buffer
                        self.buf = Some(vec![0u8; self.buf_size].into_boxed_slice());
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // the writer is full: keep the rest until it can take more
                    let rest = &data[off..];
                    let mut buf = vec![0u8; self.buf_size.max(rest.len())].into_boxed_slice();
                    buf[..rest.len()].copy_from_slice(rest);
                    self.buf = Some(buf);
                    self.pos = 0;
                    self.cap = rest.len();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Accounts for a read of `n` bytes (0: the source ended).
    fn got(&mut self, n: usize) {
        if n == 0 {
            self.read_done = true;
            return;
        }
        self.burst += n as u64;
        if let Some(l) = &mut self.limiter {
            l.consume(n);
        }
    }
}

/// Writes `data[*pos..]` until all of it is written (Ready(Ok)), the writer
/// is full (Pending) or fails.
fn poll_write_all<W>(
    cx: &mut Context<'_>,
    w: &mut W,
    data: &[u8],
    pos: &mut usize,
    bytes: &mut u64,
    need_flush: &mut bool,
) -> Poll<Result<(), DirError>>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    while *pos < data.len() {
        match Pin::new(&mut *w).poll_write(cx, &data[*pos..]) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(DirError::Write(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write zero bytes",
                ))));
            }
            Poll::Ready(Ok(n)) => {
                *pos += n;
                *bytes += n as u64;
                *need_flush = true;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    /// Polls the direction once.
    async fn poll_once(
        dir: &mut Dir,
        r: &mut DuplexStream,
        w: &mut DuplexStream,
        handoff: Option<u64>,
    ) -> Poll<Result<Copied, DirError>> {
        poll_fn(|cx| Poll::Ready(dir.poll_copy_until(cx, r, w, handoff))).await
    }

    #[tokio::test]
    async fn an_idle_direction_holds_no_buffer() {
        let (mut feed, mut src) = duplex(1 << 16);
        let (mut dst, mut out) = duplex(1 << 16);
        let mut dir = Dir::new(16 * 1024, b"", None);
        assert!(!dir.holds_buffer());
        assert!(
            poll_once(&mut dir, &mut src, &mut dst, None)
                .await
                .is_pending()
        );
        feed.write_all(b"hello").await.unwrap();
        assert!(
            poll_once(&mut dir, &mut src, &mut dst, None)
                .await
                .is_pending()
        );
        assert!(!dir.holds_buffer(), "a short read goes through the stack");
        let mut got = [0u8; 5];
        out.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(dir.bytes, 5);
    }

    #[tokio::test]
    async fn back_pressure_keeps_the_rest_then_frees_it() {
        let (mut feed, mut src) = duplex(1 << 16);
        // the destination takes 16 bytes at a time
        let (mut dst, mut out) = duplex(16);
        let mut dir = Dir::new(1024, b"", None);
        let data: Vec<u8> = (0..100u8).collect();
        feed.write_all(&data).await.unwrap();
        assert!(
            poll_once(&mut dir, &mut src, &mut dst, None)
                .await
                .is_pending()
        );
        assert!(dir.holds_buffer(), "the unwritten rest is kept");
        let mut got = Vec::new();
        while got.len() < data.len() {
            let mut chunk = [0u8; 16];
            let n = out.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
            assert!(
                poll_once(&mut dir, &mut src, &mut dst, None)
                    .await
                    .is_pending()
            );
        }
        assert_eq!(got, data);
        assert_eq!(dir.bytes, 100);
        assert!(
            !dir.holds_buffer(),
            "freed once drained and the source is idle"
        );
    }

    #[tokio::test]
    async fn pending_bytes_go_first_and_large_reads_grow_the_buffer() {
        let (mut feed, mut src) = duplex(1 << 20);
        let (mut dst, mut out) = duplex(1 << 20);
        let mut dir = Dir::new(64 * 1024, b"head:", None);
        assert!(dir.holds_buffer());
        let body = vec![7u8; 100 * 1024];
        feed.write_all(&body).await.unwrap();
        drop(feed);
        let r = poll_once(&mut dir, &mut src, &mut dst, None).await;
        assert!(matches!(r, Poll::Ready(Ok(Copied::Done))), "{r:?}");
        let mut got = Vec::new();
        out.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..5], b"head:");
        assert_eq!(got.len(), 5 + body.len());
        assert_eq!(dir.bytes, got.len() as u64);
    }

    #[tokio::test]
    async fn hands_off_after_a_burst_but_not_after_trickles() {
        let (mut feed, mut src) = duplex(1 << 16);
        let (mut dst, mut out) = duplex(1 << 16);
        let mut dir = Dir::new(16 * 1024, b"", None);
        // two trickles of 100 bytes, the source running dry in between
        for _ in 0..2 {
            feed.write_all(&[1u8; 100]).await.unwrap();
            assert!(
                poll_once(&mut dir, &mut src, &mut dst, Some(150))
                    .await
                    .is_pending()
            );
        }
        // one burst of 200 bytes
        feed.write_all(&[2u8; 200]).await.unwrap();
        let r = poll_once(&mut dir, &mut src, &mut dst, Some(150)).await;
        assert!(matches!(r, Poll::Ready(Ok(Copied::Handoff))), "{r:?}");
        assert!(!dir.holds_buffer());
        assert_eq!(dir.bytes, 400);
        let mut got = vec![0u8; 400];
        out.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[200..], &[2u8; 200][..]);
    }
}
