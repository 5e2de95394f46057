//! Pipes for the splice path, taken from a bounded per-thread pool and given
//! back when empty.
//!
//! A spliced direction holds a pipe only while it moves data: it takes one when
//! its source becomes readable and gives it back as soon as the source has
//! nothing more to read and the pipe is empty, so idle tunnels hold no pipe and
//! a busy worker thread reuses a few pipes instead of making two per tunnel. A
//! pipe that still holds bytes (its relay ended mid-transfer) is closed, never
//! pooled. At most [`POOL_MAX`] pipes wait per thread; beyond that they are
//! closed. Pipes that wait in a pool cost two file descriptors and a little
//! kernel memory for their slot array: an empty pipe holds no data pages.
//!
//! New pipes are grown to [`PIPE_SIZE`] (1 MiB, the largest an unprivileged
//! process may ask for by default) with one fcntl when made: a spliced 16 MiB
//! transfer over loopback then costs about 330 µs of CPU per MB instead of
//! about 480 with the default 64 KiB pipe, as each splice call moves up to
//! 1 MiB. The kernel counts pipe capacity per user
//! (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by default: beyond it, new
//! pipes of that user start small); an idle pooled pipe holds no pages, and a
//! full one holds what the sockets would otherwise buffer. If growing fails
//! (a lower `pipe-max-size`, the per-user hard limit), pipes keep the default
//! size and later pipes are not grown.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::sys;

/// The most pipes kept per thread.
pub(super) const POOL_MAX: usize = 16;

/// The capacity new pipes are grown to.
pub(super) const PIPE_SIZE: usize = 1 << 20;

/// The capacity of a pipe the kernel made with its defaults.
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Cleared when growing a pipe failed once: later pipes keep the default size.
static GROW: AtomicBool = AtomicBool::new(true);

/// A non-blocking pipe: bytes written to `w` are read from `r`.
pub(super) struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

impl Pipe {
    /// How many bytes the pipe holds at most.
    pub(super) fn capacity(&self) -> usize {
        self.cap
    }

    /// The read end.
    pub(super) fn r(&self) -> RawFd {
        self.r.as_raw_fd()
    }

    /// The write end.
    pub(super) fn w(&self) -> RawFd {
        self.w.as_raw_fd()
    }
}

/// Pipe use on one thread (see [`thread_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Pipes created on this thread (`pipe2` calls that succeeded).
    pub created: u64,
    /// Pipes taken from this thread's pool instead.
    pub reused: u64,
    /// Pipes waiting in this thread's pool now.
    pub pooled: usize,
}

struct Pool {
    pipes: Vec<Pipe>,
    created: u64,
    reused: u64,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { pipes: Vec::new(), created: 0, reused: 0 })
    };
}

/// A pipe from this thread's pool, or a new one.
pub(super) fn take() -> io::Result<Pipe> {
    let pooled = POOL
        .try_with(|p| {
            let mut p = p.try_borrow_mut().ok()?;
            let pipe = p.pipes.pop()?;
            p.reused += 1;
            Some(pipe)
        })
        .ok()
        .flatten();
    if let Some(pipe) = pooled {
        return Ok(pipe);
    }
    let (r, w) = sys::pipe()?;
    let mut cap = DEFAULT_PIPE_SIZE;
    if GROW.load(Ordering::Relaxed) {
        match sys::set_pipe_size(&w, PIPE_SIZE) {
            Ok(n) => cap = n,
            Err(e) => {
                GROW.store(false, Ordering::Relaxed);
                log::debug!("splice pipes keep the default size: F_SETPIPE_SZ failed: {e}");
            }
        }
    }
    let _ = POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.created += 1;
        }
    });
    Ok(Pipe { r, w, cap })
}

/// Gives an empty pipe back to this thread's pool (closes it when the pool is
/// full). The caller guarantees that nothing is left in the pipe.
pub(super) fn give(pipe: Pipe) {
    let _ = POOL.try_with(move |p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && p.pipes.len() < POOL_MAX
        {
            p.pipes.push(pipe);
        }
    });
}

/// Pipe use on the calling thread: pipes created, pipes reused from the pool,
/// and pipes waiting in it now.
pub fn thread_stats() -> PipeStats {
    POOL.try_with(|p| {
        p.try_borrow()
            .map(|p| PipeStats {
                created: p.created,
                reused: p.reused,
                pooled: p.pipes.len(),
            })
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pipes_are_reused_and_the_pool_is_bounded() {
        let before = thread_stats();
        let a = take().unwrap();
        let b = take().unwrap();
        let fd = a.r();
        give(a);
        let again = take().unwrap();
        assert_eq!(again.r(), fd, "the pooled pipe comes back");
        assert!(again.capacity() >= DEFAULT_PIPE_SIZE);
        give(again);
        give(b);
        let s = thread_stats();
        assert_eq!(s.created, before.created + 2);
        assert_eq!(s.reused, before.reused + 1);
        assert_eq!(s.pooled, before.pooled + 2);
        let many: Vec<Pipe> = (0..POOL_MAX + 8).map(|_| take().unwrap()).collect();
        for p in many {
            give(p);
        }
        assert_eq!(thread_stats().pooled, POOL_MAX);
    }
}
