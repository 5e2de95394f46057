//! The io_uring relay path (feature `io-uring`), for two plain TCP sockets.
//!
//! Each tokio worker thread that relays gets, on first use, its own ring
//! thread (`px-uring`, inheriting the worker's CPU affinity) running one
//! io_uring. A relay hands duplicates of both sockets' descriptors to that
//! thread over a channel (plus a write to the ring's eventfd) and awaits the
//! outcome; the ring thread copies with `Recv`/`Send`/`Shutdown` operations
//! through a provided-buffer pool (see `driver`), with half-close, the idle
//! timeout and cancellation when the task drops the relay. Nothing crosses
//! threads per read or write: the only hand-offs are the start and the end.
//!
//! Chosen by [`crate::relay_tcp`] before splice when [`eligible`]: the feature
//! is built, [`available`] (io_uring can be set up here with the operations
//! used, probed once per process; `PX_IO_NO_URING` set turns it off), the
//! caller allows a zero-copy path and no speed limit applies. Per connection it
//! falls back to splice or the userspace loop when the worker's ring cannot be
//! started, the descriptors cannot be duplicated, or bytes already read past a
//! protocol head cannot be written at once (the fallback then sends the rest).
//! The outcome says `RelayPath::IoUring` when the ring carried the relay.

mod driver;
mod sys;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::relay::{RelayEnd, RelayOpts, RelayOutcome, RelayPath};
use driver::{Job, Msg, Reply};

/// Submission queue entries per ring.
const SQ_ENTRIES: u32 = 256;
/// Size of each pool buffer (a receive takes a whole one, however little
/// arrives; 64 KiB, a loopback segment, keeps bulk transfers to few operations).
const BUF_SIZE: u32 = 64 * 1024;
/// Most pool buffers per ring (4 MiB at 64 KiB); they are allocated 16 at a
/// time as concurrent transfers need them, and a direction that finds none
/// waits for the next one given back.
const MAX_BUFS: u16 = 64;

/// True when io_uring can carry relays here: probed once per process (a ring
/// with every operation the relay uses and a provided-buffer ring); setting
/// the environment variable `PX_IO_NO_URING` turns it off.
pub fn available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        if std::env::var_os("PX_IO_NO_URING").is_some() {
            log::info!("io_uring relay path disabled by PX_IO_NO_URING");
            return false;
        }
        match sys::probe() {
            Ok(()) => true,
            Err(e) => {
                log::info!("io_uring relay path unavailable, using splice/userspace: {e}");
                false
            }
        }
    })
}

/// True when a relay between two plain TCP sockets may take the io_uring path.
pub fn eligible(opts: &RelayOpts) -> bool {
    opts.allow_splice && opts.effective_limit().is_unlimited() && available()
}

/// The handle of a ring thread: its channel and eventfd.
struct Handle {
    tx: Option<mpsc::Sender<Msg>>,
    wake: File,
}

impl Handle {
    /// Starts a ring thread; fails when its ring cannot be set up.
    fn start() -> io::Result<Handle> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("px-uring".to_string())
            .spawn(move || {
                let ring = sys::Ring::new(SQ_ENTRIES, BUF_SIZE, MAX_BUFS);
                match ring.and_then(|r| r.waker().map(|w| (r, w))) {
                    Ok((ring, wake)) => {
                        if ready_tx.send(Ok(wake)).is_ok() {
                            driver::run(ring, rx);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let wake = ready_rx
            .recv()
            .map_err(|_| io::Error::other("io_uring thread ended"))??;
        Ok(Handle {
            tx: Some(tx),
            wake: File::from(wake),
        })
    }

    /// Sends a message and wakes the ring; gives the message back if the ring is gone.
    fn send(&self, msg: Msg) -> Result<(), Msg> {
        let Some(tx) = &self.tx else {
            return Err(msg);
        };
        tx.send(msg).map_err(|e| e.0)?;
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if let Err(e) = (&self.wake).write_all(&1u64.to_ne_bytes()) {
            log::warn!("io_uring wake-up failed: {e}");
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // close the channel first, then wake the thread so it sees that
        drop(self.tx.take());
        self.wake();
    }
}

enum Local {
    Unstarted,
    Running(Arc<Handle>),
    Failed,
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local::Unstarted) };
}

/// This thread's ring, started on first use; `None` when it cannot be.
fn local_ring() -> Option<Arc<Handle>> {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        match &*l {
            Local::Running(h) => Some(Arc::clone(h)),
            Local::Failed => None,
            Local::Unstarted => match Handle::start() {
                Ok(h) => {
                    let h = Arc::new(h);
                    *l = Local::Running(Arc::clone(&h));
                    Some(h)
                }
                Err(e) => {
                    log::warn!("io_uring ring thread cannot start, relays here fall back: {e}");
                    *l = Local::Failed;
                    None
                }
            },
        }
    })
}

/// Forgets this thread's ring (it ended); the next relay starts a new one.
fn forget_ring() {
    LOCAL.with(|l| *l.borrow_mut() = Local::Unstarted);
}

/// Sends a `Cancel` for the relay when its future is dropped before the end.
struct CancelOnDrop {
    handle: Arc<Handle>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.handle.send(Msg::Cancel(self.id));
        }
    }
}

/// Writes what fits now without blocking; the count written.
fn write_now(s: &TcpStream, data: &[u8]) -> usize {
    let mut done = 0;
    while done < data.len() {
        match s.try_write(&data[done..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// Relays two TCP sockets on this thread's ring, or falls back (see the module doc).
pub(crate) async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
) -> RelayOutcome {
    let up0 = write_now(upstream, to_upstream);
    let down0 = write_now(client, to_client);
    if up0 < to_upstream.len() || down0 < to_client.len() {
        return fallback(
            client,
            upstream,
            &to_upstream[up0..],
            &to_client[down0..],
            opts,
            (up0, down0),
        )
        .await;
    }
    let Some(handle) = local_ring() else {
        return fallback(client, upstream, b"", b"", opts, (up0, down0)).await;
    };
    let fds = client
        .as_fd()
        .try_clone_to_owned()
        .and_then(|c| upstream.as_fd().try_clone_to_owned().map(|u| (c, u)));
    let (cfd, ufd) = match fds {
        Ok(f) => f,
        Err(e) => {
            log::debug!("io_uring relay: cannot duplicate the sockets, falling back: {e}");
            return fallback(client, upstream, b"", b"", opts, (up0, down0)).await;
        }
    };
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (reply, done) = oneshot::channel();
    let job = Job {
        id,
        client: cfd,
        upstream: ufd,
        idle_timeout: opts.idle_timeout,
        reply,
    };
    if handle.send(Msg::Start(job)).is_err() {
        forget_ring();
        return fallback(client, upstream, b"", b"", opts, (up0, down0)).await;
    }
    let mut guard = CancelOnDrop {
        handle,
        id,
        armed: true,
    };
    let outcome = match done.await {
        Ok(Reply::Refused(e)) => {
            guard.armed = false;
            log::debug!("io_uring relay refused, falling back: {e}");
            return fallback(client, upstream, b"", b"", opts, (up0, down0)).await;
        }
        Ok(Reply::Done(d)) => RelayOutcome {
            up_bytes: up0 as u64 + d.up_bytes,
            down_bytes: down0 as u64 + d.down_bytes,
            end: d.end,
            path: RelayPath::IoUring,
        },
        Err(_) => {
            forget_ring();
            RelayOutcome {
                up_bytes: up0 as u64,
                down_bytes: down0 as u64,
                end: RelayEnd::UpstreamRead(io::Error::other("io_uring relay thread ended")),
                path: RelayPath::IoUring,
            }
        }
    };
    guard.armed = false;
    crate::relay::count_path(RelayPath::IoUring);
    outcome
}

/// The splice or userspace relay, with the bytes already written counted.
async fn fallback(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    to_upstream: &[u8],
    to_client: &[u8],
    opts: &RelayOpts,
    written: (usize, usize),
) -> RelayOutcome {
    let mut out =
        crate::relay::relay_tcp_no_uring(client, upstream, to_upstream, to_client, opts).await;
    out.up_bytes += written.0 as u64;
    out.down_bytes += written.1 as u64;
    out
}
