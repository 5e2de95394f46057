//! Listener hand-over: a starting daemon takes the listening sockets of the
//! running daemon of its group, so no connection is refused while one
//! process replaces the other (any kernel: the accept queue is never closed).
//!
//! It runs on the control socket, told apart from capnp-rpc by its first 8
//! bytes ([`MAGIC`]; a capnp message never starts with them: they would
//! declare over a billion segments). Then, all integers u32 little-endian:
//!
//! 1. new -> old: a frame (length + UTF-8) with the listen addresses it
//!    wants, one per line, as written in its config (`127.0.0.1:8080`);
//! 2. old -> new: batches of `count`, `length` with `count` descriptors
//!    attached (SCM_RIGHTS), then `length` bytes: `count` lines naming the
//!    address of each descriptor in order; a batch of 0, 0 ends the list;
//! 3. new, listening on them now: a frame `offline`; old: a frame `ok`, and
//!    it stops accepting and goes offline. A new process that closes the
//!    connection without step 3 cancels the hand-over: the old one goes on.
//!
//! Both ends accept on the same sockets between steps 2 and 3, so a
//! connection waiting in the accept queue is taken by one of them.

#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The first 8 bytes of a hand-over connection.
pub const MAGIC: [u8; 8] = *b"PXHOVER1";

/// Descriptors per batch (below the kernel's SCM_MAX_FD of 253).
const BATCH: usize = 200;

/// The largest frame either side accepts.
const MAX_FRAME: usize = 64 * 1024;

/// Writes one frame: length, then bytes.
pub fn write_frame(s: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| io::Error::other("frame too large"))?;
    s.write_all(&len.to_le_bytes())?;
    s.write_all(data)
}

/// Reads one frame (at most 64 KiB).
pub fn read_frame(s: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("hand-over frame of {len} bytes is too large"),
        ));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn frame_text(s: &mut impl Read) -> io::Result<String> {
    String::from_utf8(read_frame(s)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "hand-over frame is not UTF-8"))
}

/// Sends `data` with `fds` attached to its first byte.
fn send_with_fds(s: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u8; space.max(1)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes we own, enough for one
        // header carrying `fds.len()` descriptors (CMSG_SPACE above).
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(io::Error::other("no room for the control message"));
            }
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr() as *const u8,
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    let sent = loop {
        // SAFETY: msg points at buffers that live across the call.
        let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if sent < data.len() {
        // the descriptors went with the first byte; the rest is plain data
        (&*s).write_all(&data[sent..])?;
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes; descriptors attached to them are returned.
fn recv_with_fds(s: &UnixStream, buf: &mut [u8]) -> io::Result<Vec<OwnedFd>> {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((BATCH * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at buffers that live across the call.
        let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` with well-formed headers; we walk
    // them with the CMSG macros and read each descriptor unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = len / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned((data as *const RawFd).add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("hand-over descriptors were truncated"));
    }
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the old daemon closed the hand-over",
        ));
    }
    if n < buf.len() {
        (&*s).read_exact(&mut buf[n..])?;
    }
    Ok(fds)
}

/// The new process's side: listeners received, waiting for [`Taken::finish`].
pub struct Taken {
    stream: UnixStream,
    /// `(listen address as the old daemon's config wrote it, socket)`.
    pub listeners: Vec<(String, OwnedFd)>,
}

/// Asks the daemon behind `path` for its listeners on `addresses`. `Ok(None)`
/// when no daemon answers there (none running: bind afresh).
pub fn take(path: &Path, addresses: &[String], timeout: Duration) -> io::Result<Option<Taken>> {
    let mut s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(&MAGIC)?;
    write_frame(&mut s, addresses.join("\n").as_bytes())?;
    let mut listeners = Vec::new();
    loop {
        let mut head = [0u8; 8];
        let fds = recv_with_fds(&s, &mut head)?;
        let count = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if count == 0 && len == 0 && fds.is_empty() {
            break;
        }
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad hand-over batch",
            ));
        }
        let mut text = vec![0u8; len];
        s.read_exact(&mut text)?;
        let text = String::from_utf8(text)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad hand-over batch"))?;
        let names: Vec<&str> = text.lines().collect();
        if names.len() != count || fds.len() != count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "hand-over batch names {} sockets, says {count}, carries {}",
                    names.len(),
                    fds.len()
                ),
            ));
        }
        listeners.extend(names.into_iter().map(str::to_string).zip(fds));
    }
    Ok(Some(Taken {
        stream: s,
        listeners,
    }))
}

impl Taken {
    /// Tells the old daemon that we accept on the sockets now: it goes offline.
    pub fn finish(mut self) -> io::Result<()> {
        write_frame(&mut self.stream, b"offline")?;
        let reply = frame_text(&mut self.stream)?;
        if reply == "ok" {
            Ok(())
        } else {
            Err(io::Error::other(format!("old daemon answered {reply:?}")))
        }
    }
}

/// The old process's side, after [`MAGIC`] was read: `give` returns the
/// listeners for the addresses asked for (each a dup the caller owns);
/// `offline` runs when the new process confirms. Blocking: run it on a
/// blocking thread. Returns whether the hand-over completed.
pub fn give(
    mut s: UnixStream,
    timeout: Duration,
    give: impl FnOnce(&[String]) -> Vec<(String, OwnedFd)>,
    offline: impl FnOnce(),
) -> io::Result<bool> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let asked = frame_text(&mut s)?;
    let asked: Vec<String> = asked
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let listeners = give(&asked);
    for batch in listeners.chunks(BATCH) {
        let text: String = batch.iter().map(|(a, _)| format!("{a}\n")).collect();
        let mut data = Vec::with_capacity(8 + text.len());
        data.extend_from_slice(&(batch.len() as u32).to_le_bytes());
        data.extend_from_slice(&(text.len() as u32).to_le_bytes());
        let fds: Vec<RawFd> = batch.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        send_with_fds(&s, &data, &fds)?;
        s.write_all(text.as_bytes())?;
    }
    s.write_all(&[0u8; 8])?;
    drop(listeners);
    // the new process may take its time to start listening; the read timeout
    // is the bound, and a closed connection means it gave up
    match frame_text(&mut s) {
        Ok(cmd) if cmd == "offline" => {
            offline();
            write_frame(&mut s, b"ok")?;
            Ok(true)
        }
        Ok(cmd) => {
            let _ = write_frame(&mut s, b"unknown command");
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown hand-over command {cmd:?}"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn listeners_move_between_processes_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sock");
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let a1 = l1.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut magic = [0u8; 8];
            s.read_exact(&mut magic).unwrap();
            assert_eq!(magic, MAGIC);
            give(
                s,
                Duration::from_secs(5),
                |asked| {
                    assert_eq!(asked, ["a1".to_string(), "nope".to_string()]);
                    vec![
                        ("a1".to_string(), OwnedFd::from(l1.try_clone().unwrap())),
                        ("a2".to_string(), OwnedFd::from(l2.try_clone().unwrap())),
                    ]
                },
                move || tx.send(()).unwrap(),
            )
            .unwrap()
        });
        let taken = take(
            &path,
            &["a1".to_string(), "nope".to_string()],
            Duration::from_secs(5),
        )
        .unwrap()
        .unwrap();
        assert_eq!(taken.listeners.len(), 2);
        assert_eq!(taken.listeners[0].0, "a1");
        let got = TcpListener::from(taken.listeners[0].1.try_clone().unwrap());
        assert_eq!(got.local_addr().unwrap(), a1);
        taken.finish().unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(t.join().unwrap());
        // nobody at a path: no daemon to take from
        assert!(
            take(&dir.path().join("none.sock"), &[], Duration::from_secs(1))
                .unwrap()
                .is_none()
        );
    }
}
