//! The quit sequence on SIGTERM / SIGINT: close listeners (after
//! `server_offline_delay`), let running tasks end within `task_wait_timeout`,
//! then return so the process exits 0. A second signal forces the quit at once.

use std::sync::Arc;

use log::{info, warn};
use tokio::signal::unix::{SignalKind, signal};

use crate::app::App;
use crate::config::RuntimeConfig;

/// Waits for a quit signal, then runs the graceful quit; returns when done.
pub async fn run_until_quit(app: Arc<App>, runtime: &RuntimeConfig) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, going offline"),
        _ = int.recv() => info!("SIGINT received, going offline"),
    }
    let graceful = async {
        tokio::time::sleep(runtime.server_offline_delay).await;
        app.listeners.stop_all().await;
        app.tasks.close();
        let alive = app.tasks.len();
        if alive > 0 {
            info!("waiting for {alive} running tasks to end");
        }
        if tokio::time::timeout(runtime.task_wait_timeout, app.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                "{} tasks still running after {:?}, quitting anyway",
                app.tasks.len(),
                runtime.task_wait_timeout
            );
        }
    };
    tokio::select! {
        _ = graceful => {}
        _ = term.recv() => warn!("second quit signal, quitting now"),
        _ = int.recv() => warn!("second quit signal, quitting now"),
    }
    info!("offline");
    Ok(())
}
