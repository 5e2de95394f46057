//! The io_uring instance of one relay thread, wrapped safely: the ring, a
//! provided-buffer ring the kernel picks receive buffers from, and an eventfd
//! other threads write to wake the ring up. This is the only module of the
//! io_uring path with `unsafe` code.
//!
//! Every memory region an operation in flight can touch (the pool buffers,
//! the buffer ring, the eventfd's counter) is owned here and outlives the
//! operation: dropping a [`Ring`] cancels what is still in flight and waits
//! for it before freeing anything (and leaks the memory if the kernel does not
//! answer). Sockets are used through the ring's fixed-file table (a file
//! reference the ring holds, no descriptor of the process): a wrong or empty
//! index makes an operation fail, never touch memory.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fixed, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, cqueue, opcode, squeue};

/// The buffer group id of the pool.
const BGID: u16 = 0;
/// Buffers are added to the pool this many at a time.
const CHUNK_BUFS: u16 = 16;
/// Page alignment for the buffer ring and the buffers.
const PAGE: usize = 4096;

/// The opcodes the relay needs.
const NEEDED: [u8; 6] = [
    opcode::Recv::CODE,
    opcode::Send::CODE,
    opcode::Shutdown::CODE,
    opcode::AsyncCancel::CODE,
    opcode::Read::CODE,
    opcode::Nop::CODE,
];

/// One completion, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Completion {
    /// The operation's user data.
    pub(super) ud: u64,
    /// Its result: bytes, 0, or a negated errno.
    pub(super) res: i32,
    /// The pool buffer the kernel picked for a receive.
    pub(super) bid: Option<u16>,
}

/// The provided-buffer pool: a ring of buffer descriptors shared with the
/// kernel and the buffers themselves, allocated in chunks as the pool grows.
struct BufPool {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    entries: u16,
    tail: u16,
    buf_size: u32,
    chunks: Vec<*mut u8>,
    chunk_layout: Layout,
    count: u16,
    max: u16,
}

impl BufPool {
    fn new(buf_size: u32, max: u16) -> io::Result<BufPool> {
        let entries = max.max(CHUNK_BUFS).next_power_of_two();
        let ring_layout = Layout::from_size_align(usize::from(entries) * 16, PAGE)
            .map_err(|_| io::Error::other("buffer ring layout"))?;
        let chunk_layout =
            Layout::from_size_align(buf_size as usize * usize::from(CHUNK_BUFS), PAGE)
                .map_err(|_| io::Error::other("buffer chunk layout"))?;
        // SAFETY: the layout has a non-zero size (entries >= 16).
        let ring = unsafe { alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        if ring.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        Ok(BufPool {
            ring,
            ring_layout,
            entries,
            tail: 0,
            buf_size,
            chunks: Vec::new(),
            chunk_layout,
            count: 0,
            max: entries.min(max.max(CHUNK_BUFS)),
        })
    }

    fn addr(&self, bid: u16) -> Option<*mut u8> {
        let chunk = self.chunks.get(usize::from(bid / CHUNK_BUFS))?;
        let offset = usize::from(bid % CHUNK_BUFS) * self.buf_size as usize;
        // SAFETY: `offset` is within the chunk (the index is below CHUNK_BUFS
        // and every chunk holds CHUNK_BUFS buffers of buf_size bytes).
        Some(unsafe { chunk.add(offset) })
    }

    /// Puts a buffer back at the tail (not yet visible to the kernel).
    fn put(&mut self, bid: u16) {
        let Some(addr) = self.addr(bid) else {
            return;
        };
        let idx = usize::from(self.tail & (self.entries - 1));
        // SAFETY: idx < entries, the ring's length; the slot is past the tail
        // the kernel knows, so the kernel does not read it now.
        let entry = unsafe { &mut *self.ring.add(idx) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers put so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of the ring, which is
        // allocated, aligned for u16 and only ever written here; the kernel
        // reads it concurrently, hence the atomic release store.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Allocates one more chunk of buffers and hands it to the kernel; false
    /// at the maximum or out of memory.
    fn grow(&mut self) -> bool {
        if self.count >= self.max {
            return false;
        }
        // SAFETY: the chunk layout has a non-zero size.
        let chunk = unsafe { alloc(self.chunk_layout) };
        if chunk.is_null() {
            return false;
        }
        self.chunks.push(chunk);
        let first = self.count;
        self.count += CHUNK_BUFS;
        for bid in first..self.count {
            self.put(bid);
        }
        self.publish();
        true
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        for chunk in self.chunks.drain(..) {
            // SAFETY: allocated in `grow` with this layout, freed once.
            unsafe { dealloc(chunk, self.chunk_layout) };
        }
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ring.cast::<u8>(), self.ring_layout) };
    }
}

/// An io_uring with its buffer pool and wake-up eventfd, used by one thread.
pub(super) struct Ring {
    // declared first: dropped (closed) before the memory it used
    ring: IoUring,
    pool: Option<BufPool>,
    wake: OwnedFd,
    wake_buf: Box<u64>,
    inflight: usize,
    files: u32,
}

/// True when this kernel has io_uring with everything the relay uses.
pub(super) fn probe() -> io::Result<()> {
    let ring = IoUring::new(4)?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if let Some(op) = NEEDED.iter().find(|op| !probe.is_supported(**op)) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring opcode {op} unsupported"),
        ));
    }
    let mut pool = BufPool::new(4096, CHUNK_BUFS)?;
    // SAFETY: the ring memory is valid for `entries` entries and outlives the
    // registration: it is unregistered just below, before `pool` is dropped.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(pool.ring as u64, pool.entries, BGID, 0)?;
    }
    let grown = pool.grow();
    ring.submitter().unregister_buf_ring(BGID)?;
    if !grown {
        return Err(io::ErrorKind::OutOfMemory.into());
    }
    Ok(())
}

/// The soft RLIMIT_NOFILE.
fn nofile_limit() -> u32 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid rlimit for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rc != 0 {
        return 1024;
    }
    u32::try_from(rl.rlim_cur).unwrap_or(u32::MAX)
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with no pointers. Blocking on purpose: io_uring
    // returns EAGAIN for reads of an O_NONBLOCK file instead of polling it.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd succeeded, so `fd` is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Ring {
    /// A ring of `entries` submission slots, a pool of `buf_size`-byte buffers
    /// (16 at first, up to `max_bufs`), and its eventfd.
    pub(super) fn new(entries: u32, buf_size: u32, max_bufs: u16) -> io::Result<Ring> {
        let wake = eventfd()?;
        let cq = entries.saturating_mul(8);
        let ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_cqsize(cq).build(entries))?;
        // the kernel refuses a table larger than RLIMIT_NOFILE
        let files = nofile_limit().clamp(64, 1 << 16);
        ring.submitter().register_files_sparse(files)?;
        let mut pool = BufPool::new(buf_size, max_bufs)?;
        // SAFETY: the buffer ring memory is valid for `entries` entries and is
        // freed only after the ring is closed (field order) or never (leak in Drop).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                pool.ring as u64,
                pool.entries,
                BGID,
                0,
            )?;
        }
        if !pool.grow() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        Ok(Ring {
            ring,
            pool: Some(pool),
            wake,
            wake_buf: Box::new(0),
            inflight: 0,
            files,
        })
    }

    /// Slots of the fixed-file table.
    pub(super) fn files(&self) -> u32 {
        self.files
    }

    /// Puts these sockets into the fixed-file table from index `at` (the ring
    /// takes its own reference: the descriptors may be closed afterwards).
    pub(super) fn install(&mut self, at: u32, fds: &[RawFd]) -> io::Result<()> {
        let n = self.ring.submitter().register_files_update(at, fds)?;
        if n != fds.len() {
            return Err(io::Error::other("fixed-file table update incomplete"));
        }
        Ok(())
    }

    /// Empties two fixed-file slots from index `at`.
    pub(super) fn remove(&mut self, at: u32) {
        if let Err(e) = self.ring.submitter().register_files_update(at, &[-1, -1]) {
            log::debug!("io_uring: cannot empty fixed files {at}..: {e}");
        }
    }

    /// A duplicate of the wake-up eventfd, for the threads that hand work over.
    pub(super) fn waker(&self) -> io::Result<OwnedFd> {
        self.wake.try_clone()
    }

    /// The size of every pool buffer.
    pub(super) fn buf_size(&self) -> u32 {
        self.pool.as_ref().map_or(0, |p| p.buf_size)
    }

    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry built by this module references only memory
            // owned by this Ring (pool buffers, wake_buf), which outlives the
            // operation (see Drop).
            let pushed = unsafe { self.ring.submission().push(sqe) };
            match pushed {
                Ok(()) => {
                    self.inflight += 1;
                    return Ok(());
                }
                Err(_) => {
                    // the submission queue is full: hand it to the kernel first
                    self.ring.submit()?;
                }
            }
        }
    }

    /// Receives from fixed file `file` into a pool buffer the kernel picks.
    pub(super) fn recv(&mut self, file: u32, ud: u64) -> io::Result<()> {
        let len = self.buf_size();
        let sqe = opcode::Recv::new(Fixed(file), std::ptr::null_mut(), len)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(ud);
        self.push(&sqe)
    }

    /// Sends bytes `from..to` of pool buffer `bid` to fixed file `file`.
    pub(super) fn send(
        &mut self,
        file: u32,
        bid: u16,
        from: u32,
        to: u32,
        ud: u64,
    ) -> io::Result<()> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| io::Error::other("no buffer pool"))?;
        if from >= to || to > pool.buf_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad buffer range",
            ));
        }
        let base = pool
            .addr(bid)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad buffer id"))?;
        // SAFETY: from < to <= buf_size, so the pointer stays inside buffer `bid`.
        let ptr = unsafe { base.add(from as usize) };
        let sqe = opcode::Send::new(Fixed(file), ptr.cast_const(), to - from)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud);
        self.push(&sqe)
    }

    /// Shuts down `how` (libc::SHUT_WR, ...) of the socket in fixed file `file`.
    pub(super) fn shutdown(&mut self, file: u32, how: i32, ud: u64) -> io::Result<()> {
        let sqe = opcode::Shutdown::new(Fixed(file), how)
            .build()
            .user_data(ud);
        self.push(&sqe)
    }

    /// Cancels the operation with user data `target`.
    pub(super) fn cancel(&mut self, target: u64, ud: u64) -> io::Result<()> {
        let sqe = opcode::AsyncCancel::new(target).build().user_data(ud);
        self.push(&sqe)
    }

    /// Waits for a write to the eventfd (one read of its counter).
    pub(super) fn arm_wake(&mut self, ud: u64) -> io::Result<()> {
        let fd = self.wake.as_raw_fd();
        let buf: *mut u64 = &mut *self.wake_buf;
        let sqe = opcode::Read::new(io_uring::types::Fd(fd), buf.cast::<u8>(), 8)
            .build()
            .user_data(ud);
        self.push(&sqe)
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn recycle(&mut self, bid: u16) {
        if let Some(pool) = &mut self.pool {
            pool.put(bid);
            pool.publish();
        }
    }

    /// Adds a chunk of buffers to the pool; false when it is at its maximum.
    pub(super) fn grow(&mut self) -> bool {
        self.pool.as_mut().is_some_and(BufPool::grow)
    }

    /// Buffers allocated so far.
    pub(super) fn buffers(&self) -> u16 {
        self.pool.as_ref().map_or(0, |p| p.count)
    }

    /// Submits what is queued and waits for a completion, at most `timeout`.
    pub(super) fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            None => self.ring.submit_and_wait(1),
            Some(t) => {
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves every available completion into `out`.
    pub(super) fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let flags = cqe.flags();
            if !cqueue::more(flags) {
                self.inflight = self.inflight.saturating_sub(1);
            }
            out.push(Completion {
                ud: cqe.user_data(),
                res: cqe.result(),
                bid: cqueue::buffer_select(flags),
            });
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // cancel everything, then wait (bounded) until the kernel let go of it
        let any = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any())
            .build()
            .user_data(u64::MAX - 1);
        let _ = self.push(&any);
        let mut scratch = Vec::new();
        for _ in 0..100 {
            if self.inflight == 0 {
                break;
            }
            let _ = self.submit_and_wait(Some(Duration::from_millis(10)));
            scratch.clear();
            self.reap(&mut scratch);
        }
        if self.inflight == 0 {
            let _ = self.ring.submitter().unregister_buf_ring(BGID);
        } else if let Some(pool) = self.pool.take() {
            // the kernel may still write into the buffers: never free them
            std::mem::forget(pool);
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
        }
    }
}
