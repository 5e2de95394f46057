//! The socket options of kernel TLS: `TCP_ULP` "tls" on a TCP socket, then
//! `SOL_TLS` `TLS_TX` / `TLS_RX` with the record keys. This is the only module
//! of px-tls with `unsafe` code.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use ktls::CryptoInfo;

/// `SOL_TLS` option: the transmit (write) keys (linux/tls.h).
const TLS_TX: libc::c_int = 1;
/// `SOL_TLS` option: the receive (read) keys.
const TLS_RX: libc::c_int = 2;

/// A direction of the TLS record layer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    /// What we write.
    Tx,
    /// What we read.
    Rx,
}

/// Attaches the "tls" upper layer protocol to a TCP socket. Until keys are
/// set, the socket carries bytes unchanged; fails with ENOENT on a kernel
/// without `CONFIG_TLS` (or without the module loaded).
pub(super) fn set_ulp(fd: RawFd) -> io::Result<()> {
    const NAME: &[u8] = b"tls";
    // SAFETY: NAME is valid for NAME.len() bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            NAME.as_ptr().cast::<libc::c_void>(),
            NAME.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Hands one direction's keys, IV and record sequence to the kernel.
pub(super) fn set_crypto(fd: RawFd, dir: Direction, info: &CryptoInfo) -> io::Result<()> {
    let name = match dir {
        Direction::Tx => TLS_TX,
        Direction::Rx => TLS_RX,
    };
    // SAFETY: `info.as_ptr()` points to the kernel struct inside `info`, valid
    // for `info.size()` bytes while `info` is borrowed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TLS,
            name,
            info.as_ptr(),
            info.size() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
