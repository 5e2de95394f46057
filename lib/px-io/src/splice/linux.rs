//! The Linux splice loop: per direction, socket -> pipe -> socket.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use super::poll_write_pending;
use super::sys;
use crate::copy::DirError;
use crate::idle::IdleCheck;
use crate::relay::{RelayEnd, RelayOpts, RelayOutcome, RelayPath, Side};

/// The most bytes moved per splice call (the default pipe capacity).
const CHUNK: usize = 64 * 1024;

/// One pipe per direction.
pub(super) struct Pipes {
    up: (OwnedFd, OwnedFd),
    down: (OwnedFd, OwnedFd),
}

impl Pipes {
    /// Makes both pipes.
    pub(super) fn new() -> io::Result<Pipes> {
        Ok(Pipes {
            up: sys::pipe()?,
            down: sys::pipe()?,
        })
    }
}

/// The state of one spliced direction.
struct Dir<'a> {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    in_pipe: usize,
    pending: &'a [u8],
    pending_pos: usize,
    read_done: bool,
    bytes: u64,
}

impl<'a> Dir<'a> {
    fn new(pipe: (OwnedFd, OwnedFd), pending: &'a [u8]) -> Self {
        Dir {
            pipe_r: pipe.0,
            pipe_w: pipe.1,
            in_pipe: 0,
            pending,
            pending_pos: 0,
            read_done: false,
            bytes: 0,
        }
    }

    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &mut TcpStream,
    ) -> Poll<Result<(), DirError>> {
        if self.pending_pos < self.pending.len() {
            match poll_write_pending(
                cx,
                dst,
                self.pending,
                &mut self.pending_pos,
                &mut self.bytes,
            ) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        loop {
            if self.in_pipe == 0 && !self.read_done {
                let src_fd = src.as_raw_fd();
                let r = loop {
                    match src.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Read(e))),
                        Poll::Pending => return Poll::Pending,
                    }
                    match src.try_io(Interest::READABLE, || {
                        sys::splice(src_fd, &self.pipe_w, CHUNK)
                    }) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        other => break other,
                    }
                };
                match r {
                    Ok(0) => self.read_done = true,
                    Ok(n) => self.in_pipe = n,
                    Err(e) => return Poll::Ready(Err(DirError::Read(e))),
                }
            }

            while self.in_pipe > 0 {
                match dst.poll_write_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError::Write(e))),
                    Poll::Pending => return Poll::Pending,
                }
                let pipe_fd = self.pipe_r.as_raw_fd();
                let want = self.in_pipe;
                match dst.try_io(Interest::WRITABLE, || sys::splice(pipe_fd, &*dst, want)) {
                    Ok(0) => {
                        return Poll::Ready(Err(DirError::Write(io::ErrorKind::WriteZero.into())));
                    }
                    Ok(n) => {
                        self.in_pipe -= n;
                        self.bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(DirError::Write(e))),
                }
            }

            if self.read_done {
                return match Pin::new(&mut *dst).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
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

/// The spliced relay; see the parent module.
pub(super) async fn relay(
    pipes: Pipes,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    let mut up = Dir::new(pipes.up, to_upstream);
    let mut down = Dir::new(pipes.down, to_client);
    let mut idle = opts.idle_timeout.map(IdleCheck::new);
    let mut up_done = false;
    let mut down_done = false;
    let mut first_closed: Option<Side> = None;

    let end = poll_fn(|cx| {
        if !up_done {
            match up.poll_copy(cx, client, upstream) {
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
            match down.poll_copy(cx, upstream, client) {
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
            && idle.poll_idle(cx, up.bytes + down.bytes).is_ready()
        {
            return Poll::Ready(RelayEnd::IdleTimeout);
        }
        Poll::Pending
    })
    .await;

    RelayOutcome {
        up_bytes: up.bytes,
        down_bytes: down.bytes,
        end,
        path: RelayPath::Splice,
    }
}
