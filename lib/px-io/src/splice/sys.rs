//! The syscalls of the zero-copy path, pipe2(2), splice(2) and
//! fcntl(F_SETPIPE_SZ), wrapped safely. This is the only module of px-io with
//! `unsafe` code.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((r, w))
}

/// Moves up to `len` bytes from `from` to `to` without blocking (one of them
/// must be a pipe). Returns the bytes moved; 0 means EOF on `from`.
pub(crate) fn splice(from: RawFd, to: &impl AsRawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain fds and null offsets (both ends are read/written at their
    // current position); no memory is passed to the kernel.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sets the capacity of the pipe behind `fd` (fcntl F_SETPIPE_SZ); returns the
/// capacity the kernel gave (a power of two pages, at least `size`).
pub(crate) fn set_pipe_size(fd: &impl AsRawFd, size: usize) -> io::Result<usize> {
    let size = libc::c_int::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: fcntl on a plain fd with an integer argument; no memory is passed.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}
