//! Listeners: one accept loop per listening socket, spawning each client
//! task on the server the handle holds *now*, so a reloaded server takes the
//! next connection without re-binding.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};
use px_core::server::ClientInfo;
use px_core::value::ListenConfig;
use px_core::{Handle, Server};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// The listening sockets of the daemon.
pub struct ListenerSet {
    tasks: TaskTracker,
    stop: watch::Sender<bool>,
    loops: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl ListenerSet {
    /// An empty set whose client tasks go into `tasks`.
    pub fn new(tasks: TaskTracker) -> Self {
        let (stop, _) = watch::channel(false);
        ListenerSet {
            tasks,
            stop,
            loops: Mutex::new(Vec::new()),
        }
    }

    /// Binds the server's listen socket(s) and starts accepting.
    pub fn spawn(
        &self,
        server: Arc<Handle<dyn Server>>,
        cfg: &ListenConfig,
    ) -> std::io::Result<()> {
        for _ in 0..cfg.instance {
            let std_listener = px_socket::bind_tcp_listener(cfg)?;
            std_listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(std_listener)?;
            info!(
                "server {} listening on {}",
                server.name(),
                listener.local_addr()?
            );
            let stop = self.stop.subscribe();
            let name = server.name().to_string();
            let jh = tokio::spawn(accept_loop(
                listener,
                server.clone(),
                self.tasks.clone(),
                stop,
            ));
            self.loops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name, jh));
        }
        Ok(())
    }

    /// Stops every accept loop and closes the listening sockets.
    pub async fn stop_all(&self) {
        let _ = self.stop.send(true);
        let loops: Vec<_> =
            std::mem::take(&mut *self.loops.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, jh) in loops {
            if tokio::time::timeout(Duration::from_secs(5), jh)
                .await
                .is_err()
            {
                warn!("listener of server {name} did not stop in time");
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
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
