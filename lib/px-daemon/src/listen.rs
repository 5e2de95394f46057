//! Listeners: one accept loop per listening socket, spawning each client
//! task on the server the handle holds *now*, so a reloaded server takes the
//! next connection without re-binding.
//!
//! The set knows which server owns which socket, so a server reload whose
//! listen address changed re-binds that server alone ([`ListenerSet::prepare`]
//! binds the new sockets before anything changes, [`ListenerSet::replace`]
//! swaps them in), and a starting daemon can use sockets inherited from the
//! daemon it replaces ([`Inherited`], see `px_ctl_proto::handover`), and hand
//! its own to its successor ([`ListenerSet::dup_for_handover`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use log::{info, warn};
use px_core::server::ClientInfo;
use px_core::value::ListenConfig;
use px_core::{Handle, Server};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

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

    fn take(&self, key: &str) -> Option<std::net::TcpListener> {
        let mut g = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        g.get_mut(key).and_then(Vec::pop)
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
}

/// The listening sockets of the daemon.
pub struct ListenerSet {
    tasks: TaskTracker,
    entries: Mutex<Vec<Entry>>,
}

impl ListenerSet {
    /// An empty set whose client tasks go into `tasks`.
    pub fn new(tasks: TaskTracker) -> Self {
        ListenerSet {
            tasks,
            entries: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds (or takes from `inherited`) the sockets of one listen config.
    pub fn prepare(cfg: &ListenConfig, inherited: Option<&Inherited>) -> std::io::Result<Prepared> {
        let key = handover_key(cfg);
        let mut sockets = Vec::new();
        for _ in 0..cfg.instance.max(1) {
            let s = match inherited.and_then(|i| i.take(&key)) {
                Some(s) => {
                    info!("listening on {key}: socket taken over from the previous daemon");
                    s
                }
                None => px_socket::bind_tcp_listener(cfg)?,
            };
            s.set_nonblocking(true)?;
            sockets.push(s);
        }
        Ok(Prepared { key, sockets })
    }

    /// Binds the server's listen socket(s) (or takes inherited ones) and starts accepting.
    pub fn spawn(
        &self,
        server: Arc<Handle<dyn Server>>,
        cfg: &ListenConfig,
        inherited: Option<&Inherited>,
    ) -> std::io::Result<()> {
        let prepared = Self::prepare(cfg, inherited)?;
        self.start(server, prepared)
    }

    /// Starts accepting on prepared sockets.
    pub fn start(
        &self,
        server: Arc<Handle<dyn Server>>,
        prepared: Prepared,
    ) -> std::io::Result<()> {
        let mut started = Vec::new();
        for s in prepared.sockets {
            let listener = Arc::new(TcpListener::from_std(s)?);
            info!(
                "server {} listening on {}",
                server.name(),
                listener.local_addr()?
            );
            let (stop, stop_rx) = watch::channel(false);
            let join = tokio::spawn(accept_loop(
                Arc::clone(&listener),
                server.clone(),
                self.tasks.clone(),
                stop_rx,
            ));
            started.push(Entry {
                server: server.name().to_string(),
                key: prepared.key.clone(),
                listener,
                stop,
                join,
            });
        }
        self.lock().extend(started);
        Ok(())
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

    /// Duplicates the sockets listening on `keys` for a successor daemon.
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

async fn accept_loop(
    listener: Arc<TcpListener>,
    server: Arc<Handle<dyn Server>>,
    tasks: TaskTracker,
    mut stop: watch::Receiver<bool>,
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
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(async move {
                        srv.serve_tcp(stream, ClientInfo::direct(peer, local)).await;
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    warn!("server {}: accept failed: {e}", server.name());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    info!("server {} stopped listening on {local}", server.name());
}
