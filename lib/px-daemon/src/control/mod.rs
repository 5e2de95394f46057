//! The control socket: `<control-dir>/<group>_<pid>.sock`, plus the
//! `<group>.sock` symlink pointing at the group's newest daemon (see
//! `px_ctl_proto::naming`).
//!
//! It is served on a thread of its own (a current-thread runtime and a
//! `LocalSet`: capnp-rpc is `!Send`). Each connection is either capnp-rpc
//! (the bootstrap capability comes from the caller, `g3proxy/src/control.rs`)
//! or a listener hand-over to a successor (`px_ctl_proto::handover`), told
//! apart by its first 8 bytes. `controller.local.recv_timeout` bounds any
//! silence of a client and `send_timeout` any reply it does not read; at most
//! [`MAX_CONNECTIONS`] are served at once. A client sending garbage only ends
//! its own connection.

mod io;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use px_ctl_proto::{handover, naming};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::app::App;
use io::{ControlReader, ControlWriter};

/// How many control connections are served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Makes the bootstrap capability for each capnp-rpc connection (called on
/// the control thread).
pub type Bootstrap = Box<dyn Fn() -> capnp::capability::Client + Send>;

/// The running control socket; dropping it stops the thread and removes the
/// socket (and the group link, if it still points here).
pub struct ControlServer {
    path: PathBuf,
    link: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Points `<group>.sock` at our socket, atomically (a rename over the old link).
fn publish_link(path: &Path, link: &Path) -> std::io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let target = path.file_name().unwrap_or(path.as_os_str());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        link.file_name().and_then(|n| n.to_str()).unwrap_or("link"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

impl ControlServer {
    /// Binds the socket in `dir` (created if missing), points the group link
    /// at it, and starts serving.
    pub fn start(app: Arc<App>, dir: &Path, bootstrap: Bootstrap) -> std::io::Result<Self> {
        naming::check_group(&app.group).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(dir)?;
        let path = naming::unique_socket(dir, &app.group, std::process::id());
        let link = naming::group_link(dir, &app.group);
        // our pid is ours alone: a file there is left from a dead process
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        publish_link(&path, &link)?;
        let (stop, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve_thread(app, listener, bootstrap, stop_rx))?;
        info!("control socket {}", path.display());
        Ok(ControlServer {
            path,
            link,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cleanup(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            // bounded: the thread only has to leave its loop and drop its runtime
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        let _ = std::fs::remove_file(&self.path);
        if std::fs::read_link(&self.link).ok().as_deref() == self.path.file_name().map(Path::new) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn serve_thread(
    app: Arc<App>,
    listener: std::os::unix::net::UnixListener,
    bootstrap: Bootstrap,
    mut stop: oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!("control: cannot start runtime: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    let bootstrap = Rc::new(bootstrap);
    local.block_on(&rt, async move {
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                warn!("control: {e}");
                return;
            }
        };
        let active = Rc::new(Cell::new(0usize));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        if active.get() >= MAX_CONNECTIONS {
                            warn!("control: {MAX_CONNECTIONS} connections open, closing a new one");
                            continue;
                        }
                        active.set(active.get() + 1);
                        let active = Rc::clone(&active);
                        let app = Arc::clone(&app);
                        let bootstrap = Rc::clone(&bootstrap);
                        tokio::task::spawn_local(async move {
                            serve_conn(app, stream, bootstrap).await;
                            active.set(active.get() - 1);
                        });
                    }
                    Err(e) => {
                        warn!("control: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
}

async fn serve_conn(app: Arc<App>, mut stream: UnixStream, bootstrap: Rc<Bootstrap>) {
    let ctl = app.controller;
    let mut first = [0u8; 8];
    match tokio::time::timeout(ctl.recv_timeout, stream.read_exact(&mut first)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            debug!("control: connection closed before a message: {e}");
            return;
        }
        Err(_) => {
            debug!("control: client silent, dropped");
            return;
        }
    }
    if first == handover::MAGIC {
        serve_handover(app, stream).await;
        return;
    }
    let (r, w) = stream.into_split();
    let reader = ControlReader::new(first.to_vec(), r, ctl.recv_timeout).compat();
    let writer = ControlWriter::new(w, ctl.send_timeout).compat_write();
    let rpc = px_ctl_proto::rpc::serve(reader, writer, bootstrap());
    if let Err(e) = rpc.await {
        debug!("control: connection ended: {e}");
    }
}

async fn serve_handover(app: Arc<App>, stream: UnixStream) {
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            warn!("hand-over: {e}");
            return;
        }
    };
    if let Err(e) = std_stream.set_nonblocking(false) {
        warn!("hand-over: {e}");
        return;
    }
    // the successor starts listening between our reply and its `offline`
    let wait = app.controller.recv_timeout.max(Duration::from_secs(10));
    let give_app = Arc::clone(&app);
    let r = tokio::task::spawn_blocking(move || {
        handover::give(
            std_stream,
            wait,
            |keys| {
                let given = give_app.listeners.dup_for_handover(keys);
                info!(
                    "hand-over: a new daemon asked for {} listen addresses, giving {} sockets",
                    keys.len(),
                    given.len()
                );
                given
            },
            || app.handed_over(),
        )
    })
    .await;
    match r {
        Ok(Ok(true)) => info!("hand-over: done, the new daemon accepts on our sockets"),
        Ok(Ok(false)) => warn!("hand-over: the new daemon gave up; going on as before"),
        Ok(Err(e)) => warn!("hand-over failed: {e}; going on as before"),
        Err(e) => warn!("hand-over task failed: {e}"),
    }
}
