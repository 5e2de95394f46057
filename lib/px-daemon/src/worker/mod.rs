//! Worker runtimes (the `worker:` section, g3's "unaided runtime"): one
//! thread per worker, each driving a current-thread tokio runtime of its
//! own, pinned to its CPUs when `sched_affinity` says so.
//!
//! The listeners ([`crate::listen`]) use them two ways:
//! - a server with `listen_in_worker: true` gets one SO_REUSEPORT listener
//!   per worker; each accept loop runs on its worker and spawns the client
//!   tasks there, so a connection never leaves the thread (and CPU) that
//!   accepted it;
//! - the other servers accept on the main runtime and hand each connection
//!   to a worker in turn ([`Workers::pick`]), or, with `follow_cpu_affinity`,
//!   to the worker pinned to the CPU the connection came in on.
//!
//! Every client task goes into the App's one task tracker, whatever runtime
//! it runs on, so a graceful quit waits for the tasks of every worker. The
//! worker runtimes stop after that ([`Workers::shutdown`]); tasks still
//! running then are dropped.
//!
//! ```yaml
//! worker:
//!   thread_number: 2
//!   sched_affinity: true      # worker i on CPU i; or {0: 0, 1: [1, 2]}
//! server:
//!   - name: http
//!     type: http_proxy
//!     escaper: default
//!     listen: "[::]:8080"
//!     listen_in_worker: true
//! ```

pub(crate) mod sys;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::{ReuseportBalancing, WorkerConfig};

/// How long a worker thread may take to start its runtime.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One worker runtime.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The worker id (0, 1, ...), as `sched_affinity` and logs name it.
    pub id: usize,
    /// Spawns onto the worker's runtime.
    pub handle: Handle,
    /// The CPUs the worker thread is pinned to (`None`: not pinned).
    pub cpus: Option<Vec<usize>>,
}

impl Worker {
    /// The CPU the worker is pinned to, when it is pinned to exactly one.
    pub fn single_cpu(&self) -> Option<usize> {
        match self.cpus.as_deref() {
            Some([cpu]) => Some(*cpu),
            _ => None,
        }
    }
}

/// The worker runtimes of the daemon (none without a `worker:` section).
pub struct Workers {
    list: Vec<Worker>,
    next: AtomicUsize,
    balancing: ReuseportBalancing,
    stop: watch::Sender<bool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("list", &self.list).finish()
    }
}

type Started = std::io::Result<(Handle, Option<Vec<usize>>)>;

impl Workers {
    /// No worker runtimes: everything runs on the main runtime.
    pub fn none() -> Self {
        let (stop, _) = watch::channel(false);
        Workers {
            list: Vec::new(),
            next: AtomicUsize::new(0),
            balancing: ReuseportBalancing::Kernel,
            stop,
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Starts the worker threads and waits until each runtime runs.
    pub fn start(cfg: &WorkerConfig) -> std::io::Result<Self> {
        let mut workers = Workers::none();
        workers.balancing = cfg.reuseport_balancing;
        for id in 0..cfg.thread_number {
            let (tx, rx) = std::sync::mpsc::channel::<Started>();
            let cpus = cfg.sched_affinity.get(&id).cloned();
            let max_io = cfg.max_io_events_per_tick;
            let stop = workers.stop.subscribe();
            let mut builder = std::thread::Builder::new().name(format!("worker#{id}"));
            if let Some(size) = cfg.thread_stack_size {
                builder = builder.stack_size(size);
            }
            let thread = builder.spawn(move || run_worker(id, cpus, max_io, stop, tx))?;
            workers.lock_threads().push(thread);
            let (handle, cpus) = match rx.recv_timeout(START_TIMEOUT) {
                Ok(r) => r?,
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "worker#{id} did not start its runtime: {e}"
                    )));
                }
            };
            workers.list.push(Worker { id, handle, cpus });
        }
        info!(
            "{} worker runtimes started{}",
            workers.list.len(),
            match cfg.sched_affinity.len() {
                0 => String::new(),
                n => format!(", {n} pinned to CPUs"),
            }
        );
        Ok(workers)
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<std::thread::JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many worker runtimes run.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True without a `worker:` section.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The worker runtimes, by id.
    pub fn list(&self) -> &[Worker] {
        &self.list
    }

    /// How connections are spread over per-worker listeners.
    pub fn balancing(&self) -> ReuseportBalancing {
        self.balancing
    }

    /// The next worker in turn (`None` without workers).
    pub fn pick(&self) -> Option<&Worker> {
        match self.list.len() {
            0 => None,
            1 => self.list.first(),
            n => self.list.get(self.next.fetch_add(1, Ordering::Relaxed) % n),
        }
    }

    /// The worker pinned to exactly this CPU, if one is.
    pub fn on_cpu(&self, cpu: usize) -> Option<&Worker> {
        self.list.iter().find(|w| w.single_cpu() == Some(cpu))
    }

    /// Stops every worker runtime (tasks still running on them are dropped)
    /// and waits up to `timeout` for the threads to end.
    pub fn shutdown(&self, timeout: Duration) {
        let _ = self.stop.send(true);
        let threads = std::mem::take(&mut *self.lock_threads());
        if threads.is_empty() {
            return;
        }
        let deadline = Instant::now() + timeout;
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                warn!("a worker thread did not stop in time");
            }
        }
        debug!("worker runtimes stopped");
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // the threads end on their own; nobody waits for them here
        let _ = self.stop.send(true);
    }
}

fn run_worker(
    id: usize,
    cpus: Option<Vec<usize>>,
    max_io_events_per_tick: Option<usize>,
    mut stop: watch::Receiver<bool>,
    started: std::sync::mpsc::Sender<Started>,
) {
    let pinned = match cpus {
        Some(cpus) => match sys::pin_current_thread(&cpus) {
            Ok(()) => {
                debug!("worker#{id} pinned to CPUs {cpus:?}");
                Some(cpus)
            }
            Err(e) => {
                warn!("worker#{id}: cannot pin to CPUs {cpus:?}: {e}; running unpinned");
                None
            }
        },
        None => None,
    };
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if let Some(n) = max_io_events_per_tick {
        builder.max_io_events_per_tick(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    if started.send(Ok((rt.handle().clone(), pinned))).is_err() {
        return;
    }
    // a current-thread runtime runs its tasks only while something blocks on it
    rt.block_on(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    debug!("worker#{id} stopped");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    fn cfg(n: usize, affinity: BTreeMap<usize, Vec<usize>>) -> WorkerConfig {
        WorkerConfig {
            thread_number: n,
            thread_stack_size: Some(256 * 1024),
            sched_affinity: affinity,
            max_io_events_per_tick: Some(64),
            reuseport_balancing: ReuseportBalancing::Kernel,
        }
    }

    #[test]
    fn workers_run_tasks_on_their_own_threads() {
        let w = Workers::start(&cfg(2, BTreeMap::new())).unwrap();
        assert_eq!(w.len(), 2);
        let mut names = Vec::new();
        for worker in w.list() {
            let (tx, rx) = std::sync::mpsc::channel();
            worker.handle.spawn(async move {
                let name = std::thread::current().name().map(str::to_string);
                tx.send(name).unwrap();
            });
            names.push(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        }
        assert_eq!(
            names,
            vec![Some("worker#0".to_string()), Some("worker#1".to_string())]
        );
        let picked: Vec<usize> = (0..4).map(|_| w.pick().unwrap().id).collect();
        assert_eq!(picked, vec![0, 1, 0, 1]);
        w.shutdown(Duration::from_secs(5));
        assert!(w.lock_threads().is_empty());
    }

    /// The first CPU this process may run on.
    fn first_allowed_cpu() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        let first = list.trim().split([',', '-']).next().unwrap();
        first.parse().unwrap()
    }

    #[test]
    fn pinned_worker_reports_its_cpu() {
        let cpu = first_allowed_cpu();
        let w = Workers::start(&cfg(1, [(0, vec![cpu])].into_iter().collect())).unwrap();
        assert_eq!(w.list()[0].single_cpu(), Some(cpu));
        assert_eq!(w.on_cpu(cpu).map(|w| w.id), Some(0));
        assert!(w.on_cpu(cpu + 1).is_none());
        w.shutdown(Duration::from_secs(5));
        let none = Workers::none();
        assert!(none.is_empty() && none.pick().is_none());
    }
}
