//! One direction of a relay: read into a reused buffer, write it all out,
//! flush when the reader stalls, shut the writer down at EOF.
//!
//! The buffer is allocated once when the direction is created and reused for
//! every read. Reads are capped by the direction's speed-limit budget.

use std::future::poll_fn;
use std::io;
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

/// The state of one copy direction.
pub(crate) struct Dir {
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
    read_done: bool,
    need_flush: bool,
    /// Bytes written to the destination so far.
    pub(crate) bytes: u64,
    limiter: Option<Limiter>,
}

impl Dir {
    /// A direction with a `buf_size` buffer, `pending` bytes already queued to
    /// write, and an optional speed limiter.
    pub(crate) fn new(buf_size: usize, pending: &[u8], limiter: Option<Limiter>) -> Dir {
        let mut buf = vec![0u8; buf_size.max(pending.len()).max(1)];
        buf[..pending.len()].copy_from_slice(pending);
        Dir {
            buf,
            pos: 0,
            cap: pending.len(),
            read_done: false,
            need_flush: false,
            bytes: 0,
            limiter,
        }
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
        loop {
            if self.pos == self.cap && !self.read_done {
                let max = match &mut self.limiter {
                    Some(l) => match l.poll_budget(cx) {
                        Poll::Ready(n) => n.min(self.buf.len()),
                        Poll::Pending => {
                            self.poll_flush_if_needed(cx, w)?;
                            return Poll::Pending;
                        }
                    },
                    None => self.buf.len(),
                };
                // a yield point for streams that do not take part in tokio's budget
                let coop = match tokio::task::coop::poll_proceed(cx) {
                    Poll::Ready(c) => c,
                    Poll::Pending => {
                        self.poll_flush_if_needed(cx, w)?;
                        return Poll::Pending;
                    }
                };
                let mut rb = ReadBuf::new(&mut self.buf[..max]);
                match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        coop.made_progress();
                        let n = rb.filled().len();
                        if n == 0 {
                            self.read_done = true;
                        } else {
                            self.pos = 0;
                            self.cap = n;
                            if let Some(l) = &mut self.limiter {
                                l.consume(n);
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Read(e))),
                    Poll::Pending => {
                        self.poll_flush_if_needed(cx, w)?;
                        return Poll::Pending;
                    }
                }
            }

            while self.pos < self.cap {
                match Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..self.cap]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(DirError::Write(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "write zero bytes",
                        ))));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.pos += n;
                        self.bytes += n as u64;
                        self.need_flush = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }

            if self.read_done {
                if self.need_flush {
                    match Pin::new(&mut *w).poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.need_flush = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                return match Pin::new(&mut *w).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                    // the peer is already gone: nothing left to tell it
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(DirError::Write(e))),
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    }
}
