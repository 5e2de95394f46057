//! The Linux splice loop: per direction, the userspace copy first, then
//! socket -> pipe -> socket once the direction moves bulk data.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use super::pool::{self, Pipe};
use super::sys;
use crate::copy::{self, Copied, DirError, Duplex, drive};
use crate::relay::{RelayOpts, RelayOutcome, RelayPath, Side};

/// A direction switches from the userspace copy to splice once it has read
/// this many bytes in one go (without its source running dry in between).
pub(super) const SPLICE_AFTER: u64 = 64 * 1024;

/// How a spliced stretch of a direction stopped.
enum Spliced {
    /// The source ended and the destination was shut down.
    Done,
    /// No pipe could be had (fd exhaustion): go on with the userspace copy.
    NoPipe,
}

/// One direction between two TCP sockets.
struct Dir {
    /// The userspace copy, which carries the pending bytes and every short
    /// exchange; it holds no buffer while idle.
    copy: copy::Dir,
    /// Past the hand-off: bytes go through a pipe.
    splicing: bool,
    /// The pipe, held only while data moves; `in_pipe` bytes are in it.
    pipe: Option<Pipe>,
    in_pipe: usize,
    read_done: bool,
    /// Bytes written to the destination through the pipe.
    spliced: u64,
}

impl Dir {
    fn new(buf_size: usize, pending: &[u8]) -> Dir {
        Dir {
            copy: copy::Dir::new(buf_size, pending, None),
            splicing: false,
            pipe: None,
            in_pipe: 0,
            read_done: false,
            spliced: 0,
        }
    }

    fn bytes(&self) -> u64 {
        self.copy.bytes + self.spliced
    }

    /// Gives the pipe back to the pool if it is empty.
    fn release_pipe(&mut self) {
        if self.in_pipe == 0
            && let Some(pipe) = self.pipe.take()
        {
            pool::give(pipe);
        }
    }

    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut TcpStream,
        dst: &mut TcpStream,
    ) -> Poll<Result<(), DirError>> {
        loop {
            if !self.splicing {
                match self.copy.poll_copy_until(cx, src, dst, Some(SPLICE_AFTER)) {
                    Poll::Ready(Ok(Copied::Done)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(Copied::Handoff)) => self.splicing = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            match self.poll_splice(cx, src, dst) {
                Poll::Ready(Ok(Spliced::Done)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(Spliced::NoPipe)) => {
                    self.splicing = false;
                    self.copy.reset_burst();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_splice(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &mut TcpStream,
    ) -> Poll<Result<Spliced, DirError>> {
        loop {
            if self.in_pipe == 0 && !self.read_done {
                let src_fd = src.as_raw_fd();
                let r = loop {
                    match src.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Read(e))),
                        Poll::Pending => {
                            // nothing to read and the pipe is empty: give it back
                            self.release_pipe();
                            return Poll::Pending;
                        }
                    }
                    let (pipe_w, cap) = match &self.pipe {
                        Some(p) => (p.w(), p.capacity()),
                        None => match pool::take() {
                            Ok(p) => {
                                let p = self.pipe.insert(p);
                                (p.w(), p.capacity())
                            }
                            Err(e) => {
                                log::debug!("no pipe for splice, copying in userspace: {e}");
                                return Poll::Ready(Ok(Spliced::NoPipe));
                            }
                        },
                    };
                    match src.try_io(Interest::READABLE, || sys::splice(src_fd, &pipe_w, cap)) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        other => break other,
                    }
                };
                match r {
                    Ok(0) => {
                        self.read_done = true;
                        self.release_pipe();
                    }
                    Ok(n) => self.in_pipe = n,
                    Err(e) => return Poll::Ready(Err(DirError::Read(e))),
                }
            }

            while self.in_pipe > 0 {
                let Some(pipe_r) = self.pipe.as_ref().map(Pipe::r) else {
                    // bytes are only ever counted in a pipe this direction holds
                    let e = io::Error::other("splice pipe missing");
                    return Poll::Ready(Err(DirError::Write(e)));
                };
                match dst.poll_write_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
                    Poll::Pending => return Poll::Pending,
                }
                let want = self.in_pipe;
                match dst.try_io(Interest::WRITABLE, || sys::splice(pipe_r, &*dst, want)) {
                    Ok(0) => {
                        return Poll::Ready(Err(DirError::Write(io::ErrorKind::WriteZero.into())));
                    }
                    Ok(n) => {
                        self.in_pipe -= n;
                        self.spliced += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(DirError::Write(e))),
                }
            }

            if self.read_done {
                return match Pin::new(&mut *dst).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Spliced::Done)),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                        Poll::Ready(Ok(Spliced::Done))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(DirError::Write(e))),
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    }
}

impl Drop for Dir {
    /// An empty pipe goes back to the pool; one with bytes left in it is closed.
    fn drop(&mut self) {
        self.release_pipe();
    }
}

/// The relay between two TCP sockets; see the parent module.
pub(super) async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    let mut duplex = TcpDuplex {
        up: Dir::new(opts.buf_size, to_upstream),
        down: Dir::new(opts.buf_size, to_client),
        client,
        upstream,
    };
    let end = drive(&mut duplex, opts.idle_timeout).await;
    let (up, down) = (&duplex.up, &duplex.down);
    // the path that moved most of the bytes
    let path = if up.spliced + down.spliced > up.copy.bytes + down.copy.bytes {
        RelayPath::Splice
    } else {
        RelayPath::Userspace
    };
    crate::relay::count_path(path);

    RelayOutcome {
        up_bytes: up.bytes(),
        down_bytes: down.bytes(),
        end,
        path,
    }
}

/// The two directions between two TCP sockets.
struct TcpDuplex<'a> {
    up: Dir,
    down: Dir,
    client: &'a mut TcpStream,
    upstream: &'a mut TcpStream,
}

impl Duplex for TcpDuplex<'_> {
    fn poll_dir(&mut self, cx: &mut Context<'_>, from: Side) -> Poll<Result<(), DirError>> {
        match from {
            Side::Client => self.up.poll_copy(cx, self.client, self.upstream),
            Side::Upstream => self.down.poll_copy(cx, self.upstream, self.client),
        }
    }

    fn total_bytes(&self) -> u64 {
        self.up.bytes() + self.down.bytes()
    }
}
