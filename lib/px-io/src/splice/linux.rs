//! The Linux splice loop: per direction, socket -> pipe -> socket.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use super::poll_write_pending;
use super::sys;
use crate::copy::{DirError, Duplex, drive};
use crate::relay::{RelayOpts, RelayOutcome, RelayPath, Side};

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
    let up = Dir::new(pipes.up, to_upstream);
    let down = Dir::new(pipes.down, to_client);
    let mut duplex = SpliceDuplex {
        up,
        down,
        client,
        upstream,
    };
    let end = drive(&mut duplex, opts.idle_timeout).await;
    let (up, down) = (duplex.up, duplex.down);

    RelayOutcome {
        up_bytes: up.bytes,
        down_bytes: down.bytes,
        end,
        path: RelayPath::Splice,
    }
}

/// The two spliced directions between two TCP sockets.
struct SpliceDuplex<'a, 'p> {
    up: Dir<'p>,
    down: Dir<'p>,
    client: &'a mut TcpStream,
    upstream: &'a mut TcpStream,
}

impl Duplex for SpliceDuplex<'_, '_> {
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
