//! Listeners: one accept loop per listening socket, spawning each client
//! task on the server the handle holds *now*, so a reloaded server takes the
//! next connection without re-binding.
//!
//! Where the loops and tasks run (see [`crate::worker`]):
//! - without worker runtimes, on the main runtime, `listen.instance`
//!   sockets per server (SO_REUSEPORT when more than one);
//! - with `listen_in_worker: true` and workers, one socket per worker, its
//!   accept loop and every task it accepts on that worker; with
//!   `follow_cpu_affinity`, a socket whose worker is pinned to one CPU gets
//!   SO_INCOMING_CPU for it, and with `reuseport_balancing: cbpf` the group
//!   picks the socket by client IP;
//! - other servers, when there are workers: accepted on the main runtime,
//!   each connection moved to a worker in turn (or, with
//!   `follow_cpu_affinity`, to the worker pinned to the CPU it came in on).
//!
//! The set knows which server owns which socket, so a server reload whose
//! listen address changed re-binds that server alone ([`ListenerSet::prepare`]
//! binds the new sockets before anything changes, [`ListenerSet::replace`]
//! swaps them in), and a starting daemon can use sockets inherited from the
//! daemon it replaces ([`Inherited`], see `px_ctl_proto::handover`), and hand
//! its own to its successor ([`ListenerSet::dup_for_handover`]): every socket
//! of an address goes, the per-worker ones included, under the same key.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use log::{debug, info, warn};
use px_core::server::ClientInfo;
use px_core::value::ListenConfig;
use px_core::{Handle, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::config::ReuseportBalancing;
use crate::worker::{Worker, Workers};

/// The key a listening socket is handed over by: its configured address.
pub fn handover_key(cfg: &ListenConfig) -> String {
    cfg.address.to_string()
}

/// Listening sockets received from the previous daemon, by configured address.
#[derive(Default)]
pub struct Inherited {
    by_addr: Mutex<HashMap<String, Vec<std::net::TcpListener>>>,
}

impl Inherited {
    /// Takes the received `(address, socket)` pairs.
    pub fn new(list: Vec<(String, OwnedFd)>) -> Self {
        let mut by_addr: HashMap<String, Vec<std::net::TcpListener>> = HashMap::new();
        for (addr, fd) in list {
            by_addr
                .entry(addr)
                .or_default()
                .push(std::net::TcpListener::from(fd));
        }
        Inherited {
            by_addr: Mutex::new(by_addr),
        }
    }

    /// Every socket received for one address, in the order they came.
    fn take_all(&self, key: &str) -> Vec<std::net::TcpListener> {
        let mut g = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(key).unwrap_or_default()
    }

    /// How many inherited sockets were not used (closed when this is dropped).
    pub fn unused(&self) -> usize {
        let g = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        g.values().map(Vec::len).sum()
    }
}

struct Entry {
    server: String,
    key: String,
    listener: Arc<TcpListener>,
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
}

/// Sockets bound for a server but not accepting yet (see [`ListenerSet::prepare`]).
pub struct Prepared {
    key: String,
    sockets: Vec<std::net::TcpListener>,
    /// One socket per worker runtime, accepting there.
    in_worker: bool,
    follow_cpu_affinity: bool,
}

/// Where an accept loop runs and where it sends the client tasks.
#[derive(Clone)]
enum Placement {
    /// Accept and serve on the runtime the loop runs on.
    Here,
    /// Accept here (the main runtime); serve on a worker.
    Spread {
        workers: Arc<Workers>,
        follow_cpu: bool,
    },
}

/// The listening sockets of the daemon.
pub struct ListenerSet {
    tasks: TaskTracker,
    workers: Arc<Workers>,
    entries: Mutex<Vec<Entry>>,
}

/// The "shape" of a listen config: what decides how many sockets there are
/// and where they accept, beyond the address.
pub fn same_shape(a: &ListenConfig, b: &ListenConfig) -> bool {
    a.address == b.address
        && a.in_worker == b.in_worker
        && a.instance == b.instance
        && a.follow_cpu_affinity == b.follow_cpu_affinity
}

impl ListenerSet {
    /// An empty set whose client tasks go into `tasks`, run on `workers` where
    /// there are some.
    pub fn new(tasks: TaskTracker, workers: Arc<Workers>) -> Self {
        ListenerSet {
            tasks,
            workers,
            entries: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many sockets a listen config asks for here.
    pub fn wanted(&self, cfg: &ListenConfig) -> usize {
        if cfg.in_worker && !self.workers.is_empty() {
            self.workers.len()
        } else {
            cfg.instance.max(1)
        }
    }

    /// Binds (or takes from `inherited`) the sockets of one listen config.
    /// Every inherited socket of the address is used, even beyond the count
    /// asked for, so no connection waiting in one of them is lost.
    pub fn prepare(
        &self,
        cfg: &ListenConfig,
        inherited: Option<&Inherited>,
    ) -> std::io::Result<Prepared> {
        let key = handover_key(cfg);
        let wanted = self.wanted(cfg);
        let mut sockets = inherited.map(|i| i.take_all(&key)).unwrap_or_default();
        let taken = sockets.len();
        if taken > 0 {
            info!("listening on {key}: {taken} socket(s) taken over from the previous daemon");
            if taken < wanted {
                // a socket opened alone lacks SO_REUSEPORT: the ones bound
                // next join it only once it has the option too
                for s in &sockets {
                    if let Err(e) = socket2::SockRef::from(s).set_reuse_port(true) {
                        debug!("listening on {key}: SO_REUSEPORT on a taken socket: {e}");
                    }
                }
            }
        }
        while sockets.len() < wanted {
            match px_socket::bind_tcp_listener_opts(cfg, wanted > 1 || taken > 0) {
                Ok(s) => sockets.push(s),
                // the inherited socket(s) may lack SO_REUSEPORT: go on with them
                Err(e) if taken > 0 => {
                    warn!(
                        "listening on {key}: cannot open more than the {} socket(s) taken over \
                         ({e}); a restart opens {wanted}",
                        sockets.len()
                    );
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        for s in &sockets {
            s.set_nonblocking(true)?;
        }
        Ok(Prepared {
            key,
            sockets,
            in_worker: cfg.in_worker && !self.workers.is_empty(),
            follow_cpu_affinity: cfg.follow_cpu_affinity,
        })
    }

    /// Takes over the set's own sockets on `cfg`'s address, and binds more
    /// if `cfg` asks for more: for a reload that keeps the address but
    /// changes where the sockets accept.
    pub fn prepare_reshape(&self, cfg: &ListenConfig) -> std::io::Result<Prepared> {
        let own = Inherited::new(self.dup_for_handover(&[handover_key(cfg)]));
        self.prepare(cfg, Some(&own))
    }

    /// Binds the server's listen socket(s) (or takes inherited ones) and starts accepting.
    pub fn spawn(
        &self,
        server: Arc<Handle<dyn Server>>,
        cfg: &ListenConfig,
        inherited: Option<&Inherited>,
    ) -> std::io::Result<()> {
        let prepared = self.prepare(cfg, inherited)?;
        self.start(server, prepared)
    }

    /// Starts accepting on prepared sockets.
    pub fn start(
        &self,
        server: Arc<Handle<dyn Server>>,
        prepared: Prepared,
    ) -> std::io::Result<()> {
        let count = prepared.sockets.len();
        if prepared.in_worker
            && count > 1
            && self.workers.balancing() == ReuseportBalancing::Cbpf
            && let Some(first) = prepared.sockets.first()
        {
            match crate::worker::sys::attach_client_ip_balancing(first, count) {
                Ok(()) => info!(
                    "server {}: {count} listeners on {} balanced by client IP",
                    server.name(),
                    prepared.key
                ),
                Err(e) => warn!(
                    "server {}: cannot balance by client IP ({e}); the kernel's hash stays",
                    server.name()
                ),
            }
        }
        let mut started = Vec::new();
        for (i, s) in prepared.sockets.into_iter().enumerate() {
            let worker = match prepared.in_worker {
                true => self.workers.list().get(i % self.workers.len()),
                false => None,
            };
            let r = self.start_one(
                &server,
                &prepared.key,
                s,
                worker,
                prepared.follow_cpu_affinity,
            );
            match r {
                Ok(e) => started.push(e),
                Err(e) => {
                    stop_entries_now(started);
                    return Err(e);
                }
            }
        }
        self.lock().extend(started);
        Ok(())
    }

    fn start_one(
        &self,
        server: &Arc<Handle<dyn Server>>,
        key: &str,
        socket: std::net::TcpListener,
        worker: Option<&Worker>,
        follow_cpu: bool,
    ) -> std::io::Result<Entry> {
        // accepted sockets inherit TCP_NODELAY from their listener: one setsockopt here
        // instead of one per connection (set again on sockets taken over from an old process)
        if let Err(e) = socket2::SockRef::from(&socket).set_tcp_nodelay(true) {
            warn!("server {}: TCP_NODELAY on the listener: {e}", server.name());
        }
        let (stop, stop_rx) = watch::channel(false);
        let tasks = self.tasks.clone();
        let (listener, join) = match worker {
            Some(w) => {
                if follow_cpu && let Some(cpu) = w.single_cpu() {
                    let r = socket2::SockRef::from(&socket).set_cpu_affinity(cpu);
                    if let Err(e) = r {
                        warn!("server {}: SO_INCOMING_CPU {cpu}: {e}", server.name());
                    }
                }
                // register the socket with the worker's own reactor
                let listener = {
                    let _in_worker = w.handle.enter();
                    Arc::new(TcpListener::from_std(socket)?)
                };
                info!(
                    "server {} listening on {} in worker#{}",
                    server.name(),
                    listener.local_addr()?,
                    w.id
                );
                let fut = accept_loop(
                    Arc::clone(&listener),
                    server.clone(),
                    tasks,
                    stop_rx,
                    Placement::Here,
                    format!(" in worker#{}", w.id),
                );
                (listener, w.handle.spawn(fut))
            }
            None => {
                let listener = Arc::new(TcpListener::from_std(socket)?);
                info!(
                    "server {} listening on {}",
                    server.name(),
                    listener.local_addr()?
                );
                let placement = match self.workers.is_empty() {
                    true => Placement::Here,
                    false => Placement::Spread {
                        workers: Arc::clone(&self.workers),
                        follow_cpu,
                    },
                };
                let fut = accept_loop(
                    Arc::clone(&listener),
                    server.clone(),
                    tasks,
                    stop_rx,
                    placement,
                    String::new(),
                );
                (listener, tokio::spawn(fut))
            }
        };
        Ok(Entry {
            server: server.name().to_string(),
            key: key.to_string(),
            listener,
            stop,
            join,
        })
    }

    /// Replaces a server's sockets by prepared ones (or none): the new ones
    /// accept first, then the old ones stop.
    pub async fn replace(
        &self,
        server: Arc<Handle<dyn Server>>,
        prepared: Option<Prepared>,
    ) -> std::io::Result<()> {
        let old = self.take_server(server.name());
        if let Some(p) = prepared {
            self.start(server, p)?;
        }
        stop_entries(old).await;
        Ok(())
    }

    fn take_server(&self, name: &str) -> Vec<Entry> {
        let mut g = self.lock();
        let (mine, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut *g)
            .into_iter()
            .partition(|e| e.server == name);
        *g = rest;
        mine
    }

    /// Stops the accept loops of one server and closes its sockets.
    pub async fn stop_server(&self, name: &str) {
        stop_entries(self.take_server(name)).await;
    }

    /// Stops every accept loop and closes the listening sockets.
    pub async fn stop_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        stop_entries(all).await;
    }

    /// Whether any socket is still listening.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Duplicates the sockets listening on `keys` for a successor daemon
    /// (all of an address: one per worker for `listen_in_worker`).
    pub fn dup_for_handover(&self, keys: &[String]) -> Vec<(String, OwnedFd)> {
        let g = self.lock();
        let mut out = Vec::new();
        for e in g.iter().filter(|e| keys.contains(&e.key)) {
            let fd = std::os::fd::AsFd::as_fd(&*e.listener).try_clone_to_owned();
            match fd {
                Ok(fd) => out.push((e.key.clone(), fd)),
                Err(err) => warn!("cannot duplicate the socket on {}: {err}", e.key),
            }
        }
        out
    }
}

/// Stops loops that never went into the set (a start that failed half way).
fn stop_entries_now(entries: Vec<Entry>) {
    for e in entries {
        let _ = e.stop.send(true);
        e.join.abort();
    }
}

async fn stop_entries(entries: Vec<Entry>) {
    for e in &entries {
        let _ = e.stop.send(true);
    }
    for e in entries {
        if tokio::time::timeout(Duration::from_secs(5), e.join)
            .await
            .is_err()
        {
            warn!("listener of server {} did not stop in time", e.server);
        }
    }
}

/// The worker a connection accepted on the main runtime goes to.
fn choose<'a>(workers: &'a Workers, follow_cpu: bool, stream: &TcpStream) -> Option<&'a Worker> {
    if follow_cpu
        && let Ok(cpu) = socket2::SockRef::from(stream).cpu_affinity()
        && let Some(w) = workers.on_cpu(cpu)
    {
        return Some(w);
    }
    workers.pick()
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    server: Arc<Handle<dyn Server>>,
    tasks: TaskTracker,
    mut stop: watch::Receiver<bool>,
    placement: Placement,
    where_: String,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!("server {}: no local address: {e}", server.name());
            return;
        }
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let srv = server.get();
                    let client = ClientInfo::direct(peer, local);
                    match &placement {
                        Placement::Here => {
                            debug!("server {}: client {peer} accepted{where_}", server.name());
                            tasks.spawn(async move { srv.serve_tcp(stream, client).await });
                        }
                        Placement::Spread { workers, follow_cpu } => {
                            let Some(w) = choose(workers, *follow_cpu, &stream) else {
                                tasks.spawn(async move { srv.serve_tcp(stream, client).await });
                                continue;
                            };
                            debug!("server {}: client {peer} to worker#{}", server.name(), w.id);
                            // re-register the socket with the worker's reactor
                            let std_stream = match stream.into_std() {
                                Ok(s) => s,
                                Err(e) => {
                                    warn!("server {}: client {peer}: {e}", server.name());
                                    continue;
                                }
                            };
                            tasks.spawn_on(async move {
                                match TcpStream::from_std(std_stream) {
                                    Ok(s) => srv.serve_tcp(s, client).await,
                                    Err(e) => warn!("client {peer}: {e}"),
                                }
                            }, &w.handle);
                        }
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    warn!("server {}: accept failed: {e}", server.name());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    info!(
        "server {} stopped listening on {local}{where_}",
        server.name()
    );
}

#[cfg(test)]
#[path = "listen_tests.rs"]
mod tests;
