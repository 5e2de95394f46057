//! The standalone thread a caching resolver runs its upstream queries on.
//!
//! Each `c-ares` or `hickory` module owns one thread with a single-threaded
//! tokio runtime, as g3proxy does: queries survive the worker runtime that
//! asked for them, and a resolver replaced by a reload can finish what it has
//! in flight. When the module is dropped the thread waits until no query is in
//! flight, or `graceful_stop_wait` at most, then stops (cancelling the rest).
//!
//! No keys of its own; it reads `graceful_stop_wait` from the cache config.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};

/// Counts queries in flight so a stopping thread knows when it is idle.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// Marks one query started; the guard marks it done when dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }

    async fn wait_idle(&self) {
        while self.count.load(Ordering::Acquire) > 0 {
            self.idle.notified().await;
        }
    }
}

/// One query in flight; dropping it (done or cancelled) counts it out.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_one();
        }
    }
}

/// Owning side of a resolver thread: dropping it starts the graceful stop.
#[derive(Debug)]
pub(crate) struct ResolverThread {
    handle: Handle,
    in_flight: Arc<InFlight>,
    _stop: oneshot::Sender<()>,
}

impl ResolverThread {
    /// Starts the thread `resolver-NAME`.
    pub(crate) fn start(name: &str, graceful_stop_wait: Duration) -> std::io::Result<Self> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let in_flight = Arc::new(InFlight::default());
        let tracker = Arc::clone(&in_flight);
        std::thread::Builder::new()
            .name(format!("resolver-{name}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async move {
                    // an Err means the owner is gone without sending: stop as well
                    let _ = stop_rx.await;
                    let _ = tokio::time::timeout(graceful_stop_wait, tracker.wait_idle()).await;
                });
                // dropping the runtime cancels what is left
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("resolver thread exited at start"))??;
        Ok(ResolverThread {
            handle,
            in_flight,
            _stop: stop_tx,
        })
    }

    /// The runtime to spawn queries on.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The in-flight counter queries register with.
    pub(crate) fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Instant;

    use super::*;

    #[test]
    fn idle_thread_stops_at_once_and_busy_one_waits() {
        let t = ResolverThread::start("t", Duration::from_secs(5)).unwrap();
        let h = t.handle().clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let guard = t.in_flight().start();
        h.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(guard);
            let _ = tx.send(());
        });
        let started = Instant::now();
        drop(t);
        // the query in flight still completes after the owner is gone
        rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));

        let t = ResolverThread::start("t2", Duration::from_millis(100)).unwrap();
        let h = t.handle().clone();
        let guard = t.in_flight().start();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        h.spawn(async move {
            let _g = guard;
            let _tx = tx;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        drop(t);
        // cancelled after graceful_stop_wait: the sender is dropped
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(3)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
