//! The relay thread's event loop: many relays on one io_uring.
//!
//! Each relay is two directions, each a loop of three operations: `Recv` from
//! its source into a pool buffer the kernel picks (so an idle direction holds
//! no buffer), `Send` of those bytes to its destination (again for the rest
//! after a short send), and at EOF `Shutdown(SHUT_WR)` of the destination.
//! One operation per direction is in flight at a time, which bounds a relay to
//! two buffers and gives the same back-pressure as the userspace loop. When
//! the pool is empty (`ENOBUFS`) it grows by a chunk, up to its maximum; past
//! that the direction waits for the next buffer given back.
//!
//! A relay ends when both directions reached EOF, one fails, nothing moved for
//! its idle timeout (checked by a scan every quarter of the shortest timeout),
//! or its task dropped the future (a `Cancel` message). Ending cancels what is
//! still in flight; the outcome is sent once nothing is, and the sockets leave
//! the ring's fixed-file table then. A relay takes two table slots: the
//! duplicated descriptors it arrives with are closed as soon as the table holds
//! the sockets, so a relay costs the process no descriptor.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::sys::{Completion, Ring};
use crate::relay::{RelayEnd, Side};

/// User data of the eventfd read.
const WAKE_UD: u64 = u64::MAX;
/// User data of cancel operations (their completions are ignored).
const CANCEL_UD: u64 = u64::MAX - 2;

const RECV: u64 = 1;
const SEND: u64 = 2;
const SHUT: u64 = 3;

/// The shortest and longest pause between idle scans.
const MIN_TICK: Duration = Duration::from_millis(1);
const MAX_TICK: Duration = Duration::from_secs(1);

/// What a relay task sends to the ring thread.
pub(super) enum Msg {
    /// Relay these two sockets.
    Start(Job),
    /// The task gave up on relay `id` (its future was dropped).
    Cancel(u64),
}

/// One relay handed to the ring thread.
pub(super) struct Job {
    pub(super) id: u64,
    /// Duplicates of the client's and the upstream's socket.
    pub(super) client: OwnedFd,
    pub(super) upstream: OwnedFd,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) reply: oneshot::Sender<Reply>,
}

/// The ring thread's answer to a `Start`.
#[derive(Debug)]
pub(super) enum Reply {
    /// The relay ran on the ring.
    Done(Done),
    /// The ring could not take the relay (its fixed-file table is full): the
    /// task relays another way.
    Refused(io::Error),
}

/// How a relay on the ring ended.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) up_bytes: u64,
    pub(super) down_bytes: u64,
    pub(super) end: RelayEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Recv,
    Send { bid: u16, from: u32, to: u32 },
    Starved,
    Shutdown,
    Done,
}

impl Phase {
    fn kind(self) -> u64 {
        match self {
            Phase::Recv => RECV,
            Phase::Send { .. } => SEND,
            Phase::Shutdown => SHUT,
            Phase::Starved | Phase::Done => 0,
        }
    }
}

struct Dir {
    phase: Phase,
    inflight: bool,
    bytes: u64,
}

struct Relay {
    id: u64,
    /// Fixed-file index of the client; the upstream's is the next one.
    base: u32,
    /// [client -> upstream, upstream -> client]
    dirs: [Dir; 2],
    idle: Option<Duration>,
    last_active: Instant,
    first_closed: Option<Side>,
    end: Option<RelayEnd>,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Relay {
    /// (source, destination) fixed files of direction `d`.
    fn ends(&self, d: usize) -> (u32, u32) {
        let (c, u) = (self.base, self.base + 1);
        if d == 0 { (c, u) } else { (u, c) }
    }
}

/// The side a direction reads from (0: the client, 1: the upstream).
fn source(d: usize) -> Side {
    if d == 0 { Side::Client } else { Side::Upstream }
}

fn read_error(d: usize, e: io::Error) -> RelayEnd {
    if d == 0 {
        RelayEnd::ClientRead(e)
    } else {
        RelayEnd::UpstreamRead(e)
    }
}

fn write_error(d: usize, e: io::Error) -> RelayEnd {
    if d == 0 {
        RelayEnd::UpstreamWrite(e)
    } else {
        RelayEnd::ClientWrite(e)
    }
}

fn ud(slot: usize, d: usize, kind: u64) -> u64 {
    ((slot as u64) << 8) | ((d as u64) << 4) | kind
}

fn errno(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

struct Driver {
    ring: Ring,
    relays: Vec<Option<Relay>>,
    free: Vec<usize>,
    ids: HashMap<u64, usize>,
    starved: VecDeque<(usize, usize)>,
    active: usize,
    now: Instant,
    next_scan: Option<Instant>,
    wake_broken: bool,
}

/// Runs the ring thread until every relay task handle is gone and no relay is left.
pub(super) fn run(ring: Ring, rx: Receiver<Msg>) {
    let mut d = Driver {
        ring,
        relays: Vec::new(),
        free: Vec::new(),
        ids: HashMap::new(),
        starved: VecDeque::new(),
        active: 0,
        now: Instant::now(),
        next_scan: None,
        wake_broken: false,
    };
    if let Err(e) = d.ring.arm_wake(WAKE_UD) {
        log::warn!("io_uring relay thread: cannot wait for work: {e}");
        return;
    }
    let mut cqes: Vec<Completion> = Vec::with_capacity(256);
    let mut disconnected = false;
    loop {
        d.now = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(Msg::Start(job)) => d.start(job),
                Ok(Msg::Cancel(id)) => d.cancel(id),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        if disconnected && d.active == 0 {
            break;
        }
        let mut timeout = d.next_scan.map(|t| t.saturating_duration_since(d.now));
        if d.wake_broken || disconnected {
            timeout = Some(timeout.map_or(MAX_TICK / 100, |t| t.min(MAX_TICK / 100)));
        }
        if let Err(e) = d.ring.submit_and_wait(timeout) {
            log::error!("io_uring relay thread stops: {e}");
            d.fail_all(&e);
            return;
        }
        d.now = Instant::now();
        cqes.clear();
        d.ring.reap(&mut cqes);
        for c in &cqes {
            d.dispatch(*c);
        }
        if d.next_scan.is_some_and(|t| d.now >= t) {
            d.scan();
        }
    }
    log::debug!(
        "io_uring relay thread ends ({} pool buffers were allocated)",
        d.ring.buffers()
    );
}

impl Driver {
    fn start(&mut self, job: Job) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.relays.push(None);
                self.relays.len() - 1
            }
        };
        let base = u32::try_from(slot * 2)
            .ok()
            .filter(|b| b + 1 < self.ring.files());
        let installed = match base {
            Some(b) => self
                .ring
                .install(b, &[job.client.as_raw_fd(), job.upstream.as_raw_fd()])
                .map(|()| b),
            None => Err(io::Error::other("io_uring fixed-file table full")),
        };
        // the ring holds the sockets now (or refuses them): the duplicates go
        drop((job.client, job.upstream));
        let base = match installed {
            Ok(b) => b,
            Err(e) => {
                self.free.push(slot);
                let _ = job.reply.send(Reply::Refused(e));
                return;
            }
        };
        let new_dir = || Dir {
            phase: Phase::Recv,
            inflight: false,
            bytes: 0,
        };
        self.relays[slot] = Some(Relay {
            id: job.id,
            base,
            dirs: [new_dir(), new_dir()],
            idle: job.idle_timeout,
            last_active: self.now,
            first_closed: None,
            end: None,
            reply: Some(job.reply),
        });
        self.ids.insert(job.id, slot);
        self.active += 1;
        if let Some(idle) = job.idle_timeout {
            let at = self.now + tick(idle);
            self.next_scan = Some(self.next_scan.map_or(at, |t| t.min(at)));
        }
        for d in 0..2 {
            self.submit(slot, d);
        }
    }

    /// Submits the operation of direction `d`'s current phase.
    fn submit(&mut self, slot: usize, d: usize) {
        let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (src, dst) = relay.ends(d);
        let phase = relay.dirs[d].phase;
        let r = match phase {
            Phase::Recv => self.ring.recv(src, ud(slot, d, RECV)),
            Phase::Send { bid, from, to } => self.ring.send(dst, bid, from, to, ud(slot, d, SEND)),
            Phase::Shutdown => self.ring.shutdown(dst, libc::SHUT_WR, ud(slot, d, SHUT)),
            Phase::Starved | Phase::Done => return,
        };
        match r {
            Ok(()) => relay.dirs[d].inflight = true,
            Err(e) => {
                let end = match phase {
                    Phase::Recv => read_error(d, e),
                    _ => write_error(d, e),
                };
                self.end(slot, end);
            }
        }
    }

    fn dispatch(&mut self, c: Completion) {
        if c.ud == WAKE_UD {
            if c.res < 0 && c.res != -libc::EINTR && c.res != -libc::ECANCELED {
                if !self.wake_broken {
                    log::warn!(
                        "io_uring relay thread: eventfd read failed: {}",
                        errno(c.res)
                    );
                }
                self.wake_broken = true;
            }
            if let Err(e) = self.ring.arm_wake(WAKE_UD) {
                log::warn!("io_uring relay thread: cannot re-arm its eventfd: {e}");
                self.wake_broken = true;
            }
            return;
        }
        if c.ud >= CANCEL_UD {
            return;
        }
        let slot = (c.ud >> 8) as usize;
        let d = ((c.ud >> 4) & 0xf) as usize;
        let kind = c.ud & 0xf;
        let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
            if let Some(bid) = c.bid {
                self.ring.recycle(bid);
            }
            return;
        };
        if d > 1 {
            return;
        }
        relay.dirs[d].inflight = false;
        if relay.end.is_some() {
            if let Some(bid) = c.bid {
                self.ring.recycle(bid);
            }
            self.finish_if_quiet(slot);
            return;
        }
        match kind {
            RECV => self.on_recv(slot, d, c),
            SEND => self.on_send(slot, d, c.res),
            SHUT => self.on_shutdown(slot, d, c.res),
            _ => {}
        }
    }

    fn on_recv(&mut self, slot: usize, d: usize, c: Completion) {
        let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match (c.res, c.bid) {
            (n, Some(bid)) if n > 0 => {
                relay.last_active = self.now;
                relay.dirs[d].phase = Phase::Send {
                    bid,
                    from: 0,
                    to: n.unsigned_abs(),
                };
            }
            (n, None) if n > 0 => {
                let e = io::Error::other("io_uring recv returned no buffer");
                return self.end(slot, read_error(d, e));
            }
            (0, bid) => {
                if let Some(bid) = bid {
                    self.ring.recycle(bid);
                }
                relay.dirs[d].phase = Phase::Shutdown;
            }
            (n, _) if n == -libc::ENOBUFS => {
                if !self.ring.grow() {
                    relay.dirs[d].phase = Phase::Starved;
                    self.starved.push_back((slot, d));
                    return;
                }
            }
            (n, _) if n == -libc::EINTR || n == -libc::EAGAIN => {}
            (n, _) => return self.end(slot, read_error(d, errno(n))),
        }
        self.submit(slot, d);
    }

    fn on_send(&mut self, slot: usize, d: usize, res: i32) {
        let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Phase::Send { bid, from, to } = relay.dirs[d].phase else {
            return;
        };
        if res == -libc::EINTR || res == -libc::EAGAIN {
            return self.submit(slot, d);
        }
        if res < 0 {
            return self.end(slot, write_error(d, errno(res)));
        }
        if res == 0 {
            let e = io::Error::new(io::ErrorKind::WriteZero, "write zero bytes");
            return self.end(slot, write_error(d, e));
        }
        let n = res.unsigned_abs();
        relay.dirs[d].bytes += u64::from(n);
        relay.last_active = self.now;
        let from = from.saturating_add(n);
        if from < to {
            relay.dirs[d].phase = Phase::Send { bid, from, to };
        } else {
            relay.dirs[d].phase = Phase::Recv;
            self.ring.recycle(bid);
            self.feed_starved();
        }
        self.submit(slot, d);
    }

    fn on_shutdown(&mut self, slot: usize, d: usize, res: i32) {
        let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if res < 0 && res != -libc::ENOTCONN {
            return self.end(slot, write_error(d, errno(res)));
        }
        relay.dirs[d].phase = Phase::Done;
        let first = *relay.first_closed.get_or_insert(source(d));
        if relay.dirs.iter().all(|x| x.phase == Phase::Done) {
            self.end(slot, RelayEnd::Closed(first));
        }
    }

    /// A buffer came back: the oldest starved direction receives again.
    fn feed_starved(&mut self) {
        while let Some((slot, d)) = self.starved.pop_front() {
            let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if relay.end.is_none() && relay.dirs[d].phase == Phase::Starved {
                relay.dirs[d].phase = Phase::Recv;
                self.submit(slot, d);
                return;
            }
        }
    }

    /// Ends a relay (the first reason wins): cancels what is in flight and
    /// finishes once nothing is.
    fn end(&mut self, slot: usize, end: RelayEnd) {
        let Some(relay) = self.relays.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if relay.end.is_some() {
            return;
        }
        relay.end = Some(end);
        let mut cancels = Vec::new();
        for (d, dir) in relay.dirs.iter().enumerate() {
            if dir.inflight {
                cancels.push(ud(slot, d, dir.phase.kind()));
            }
        }
        for target in cancels {
            if let Err(e) = self.ring.cancel(target, CANCEL_UD) {
                log::debug!("io_uring cancel failed: {e}");
            }
        }
        self.finish_if_quiet(slot);
    }

    /// Sends the outcome and frees the slot when no operation is in flight.
    fn finish_if_quiet(&mut self, slot: usize) {
        let quiet = self
            .relays
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.dirs.iter().all(|d| !d.inflight));
        if !quiet {
            return;
        }
        let Some(mut relay) = self.relays.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for dir in &relay.dirs {
            if let Phase::Send { bid, .. } = dir.phase {
                self.ring.recycle(bid);
            }
        }
        self.ring.remove(relay.base);
        self.ids.remove(&relay.id);
        self.free.push(slot);
        self.active = self.active.saturating_sub(1);
        let end = relay
            .end
            .take()
            .unwrap_or_else(|| RelayEnd::ClientRead(io::Error::other("io_uring relay ended")));
        if let Some(reply) = relay.reply.take() {
            let _ = reply.send(Reply::Done(Done {
                up_bytes: relay.dirs[0].bytes,
                down_bytes: relay.dirs[1].bytes,
                end,
            }));
        }
    }

    fn cancel(&mut self, id: u64) {
        if let Some(slot) = self.ids.get(&id).copied() {
            self.end(
                slot,
                RelayEnd::ClientRead(io::Error::other("relay task cancelled")),
            );
        }
    }

    /// Ends the relays idle for their timeout; schedules the next scan.
    fn scan(&mut self) {
        let mut next: Option<Duration> = None;
        let mut idle = Vec::new();
        for (slot, relay) in self.relays.iter().enumerate() {
            let Some(relay) = relay else { continue };
            let Some(limit) = relay.idle else { continue };
            if relay.end.is_some() {
                continue;
            }
            if self.now.saturating_duration_since(relay.last_active) >= limit {
                idle.push(slot);
            } else {
                let t = tick(limit);
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        for slot in idle {
            self.end(slot, RelayEnd::IdleTimeout);
        }
        self.next_scan = next.map(|t| self.now + t);
    }

    /// The ring failed: every relay ends with its error.
    fn fail_all(&mut self, e: &io::Error) {
        for relay in self.relays.iter_mut().filter_map(Option::take) {
            let mut relay = relay;
            if let Some(reply) = relay.reply.take() {
                let _ = reply.send(Reply::Done(Done {
                    up_bytes: relay.dirs[0].bytes,
                    down_bytes: relay.dirs[1].bytes,
                    end: RelayEnd::UpstreamRead(io::Error::new(
                        e.kind(),
                        format!("io_uring failed: {e}"),
                    )),
                }));
            }
        }
    }
}

/// The idle scan period for a timeout: a quarter of it, within bounds.
fn tick(idle: Duration) -> Duration {
    (idle / 4).clamp(MIN_TICK, MAX_TICK)
}
