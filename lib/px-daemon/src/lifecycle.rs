//! The daemon's life after start: SIGHUP reloads what changed
//! ([`crate::reload::reload_changed`]); SIGTERM, SIGINT, `g3proxy-ctl
//! offline` and a successor taking the listeners make it go offline:
//!
//! 1. the listeners close: at once when a successor took them over; after
//!    `server_offline_delay` on a signal; on `g3proxy-ctl offline`, as soon as
//!    a successor takes them over or after `offline_handover_wait` (they go on
//!    accepting meanwhile, so a restart under systemd refuses nothing);
//! 2. running tasks end within `task_wait_timeout` (default 10 h);
//! 3. the function returns and the process exits 0.
//!
//! A second SIGTERM or SIGINT forces the quit at once.

use std::sync::Arc;
use std::time::Duration;

use log::{error, info, warn};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::app::{App, DaemonState, OfflineCause};

/// Waits until the daemon goes offline, then runs the graceful quit.
pub async fn run_until_quit(app: Arc<App>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut state = app.subscribe();
    let cause = loop {
        if let Some(c) = state.borrow_and_update().offline {
            break c;
        }
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM received, going offline");
                break OfflineCause::Signal;
            }
            _ = int.recv() => {
                info!("SIGINT received, going offline");
                break OfflineCause::Signal;
            }
            _ = hup.recv() => {
                info!("SIGHUP received, reloading what changed");
                let app = Arc::clone(&app);
                tokio::spawn(async move {
                    match crate::reload::reload_changed(&app).await {
                        Ok(s) => info!("SIGHUP: {s}"),
                        Err(e) => error!("SIGHUP reload failed, nothing changed:\n{e}"),
                    }
                });
            }
            r = state.changed() => {
                if r.is_err() {
                    break OfflineCause::Signal;
                }
            }
        }
    };
    app.request_offline(cause);
    match cause {
        OfflineCause::Ctl => info!("going offline (g3proxy-ctl offline)"),
        OfflineCause::HandedOver => info!("a new daemon took over the listeners, going offline"),
        OfflineCause::Signal => {}
    }
    let graceful = async {
        let wait = match cause {
            OfflineCause::Signal => app.runtime.server_offline_delay,
            OfflineCause::Ctl => app
                .runtime
                .offline_handover_wait
                .max(app.runtime.server_offline_delay),
            OfflineCause::HandedOver => Duration::ZERO,
        };
        wait_handed_over(&mut state, wait).await;
        app.listeners.stop_all().await;
        app.tasks.close();
        let alive = app.tasks.len();
        if alive > 0 {
            info!("waiting for {alive} running tasks to end");
        }
        if tokio::time::timeout(app.runtime.task_wait_timeout, app.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                "{} tasks still running after {:?}, quitting anyway",
                app.tasks.len(),
                app.runtime.task_wait_timeout
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

/// Waits `wait` at most, less when a successor takes the listeners over.
async fn wait_handed_over(state: &mut watch::Receiver<DaemonState>, wait: Duration) {
    if wait.is_zero() {
        return;
    }
    let _ = tokio::time::timeout(wait, state.wait_for(|s| s.handed_over)).await;
}
