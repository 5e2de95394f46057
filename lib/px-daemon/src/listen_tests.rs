//! Tests of the listeners with and without worker runtimes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::*;
use crate::config::WorkerConfig;

/// Records the thread each client task ran on.
struct Probe {
    listen: ListenConfig,
    threads: Mutex<Vec<String>>,
    /// TCP_NODELAY of each accepted socket.
    nodelay: Mutex<Vec<bool>>,
}

#[async_trait]
impl Server for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    fn kind(&self) -> &'static str {
        "probe"
    }
    fn listen(&self) -> Option<&ListenConfig> {
        Some(&self.listen)
    }
    async fn serve_tcp(&self, s: TcpStream, _c: ClientInfo) {
        self.nodelay.lock().unwrap().push(s.nodelay().unwrap());
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.threads.lock().unwrap().push(name);
    }
}

fn two_workers() -> Arc<Workers> {
    let cfg = WorkerConfig {
        thread_number: 2,
        thread_stack_size: None,
        sched_affinity: Default::default(),
        max_io_events_per_tick: None,
        reuseport_balancing: ReuseportBalancing::Kernel,
    };
    Arc::new(Workers::start(&cfg).unwrap())
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Serves `n` connections through a fresh set and returns where they ran.
async fn run(in_worker: bool, n: usize) -> (usize, Vec<String>) {
    let workers = two_workers();
    let tasks = TaskTracker::new();
    let set = ListenerSet::new(tasks.clone(), Arc::clone(&workers));
    let mut listen = ListenConfig::new(free_addr());
    listen.in_worker = in_worker;
    let probe = Arc::new(Probe {
        listen: listen.clone(),
        threads: Mutex::new(Vec::new()),
        nodelay: Mutex::new(Vec::new()),
    });
    let handle: Arc<Handle<dyn Server>> = Arc::new(Handle::new("probe", probe.clone()));
    set.spawn(Arc::clone(&handle), &listen, None).unwrap();
    let sockets = set.lock().len();
    for _ in 0..n {
        let c = TcpStream::connect(listen.address).await.unwrap();
        drop(c);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while probe.threads.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    set.stop_all().await;
    tasks.close();
    tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .unwrap();
    workers.shutdown(Duration::from_secs(5));
    let threads = probe.threads.lock().unwrap().clone();
    // set once on the listener, inherited by every accepted socket
    let nodelay = probe.nodelay.lock().unwrap().clone();
    assert_eq!(nodelay.len(), threads.len());
    assert!(nodelay.iter().all(|on| *on), "TCP_NODELAY: {nodelay:?}");
    (sockets, threads)
}

#[tokio::test]
async fn in_worker_listeners_serve_on_their_workers() {
    let (sockets, threads) = run(true, 24).await;
    assert_eq!(sockets, 2);
    assert_eq!(threads.len(), 24);
    let used: BTreeSet<&str> = threads.iter().map(String::as_str).collect();
    // the kernel spreads 24 connections over both sockets
    assert_eq!(
        used,
        BTreeSet::from(["worker#0", "worker#1"]),
        "{threads:?}"
    );
}

#[tokio::test]
async fn main_listener_hands_tasks_to_workers_in_turn() {
    let (sockets, threads) = run(false, 4).await;
    assert_eq!(sockets, 1);
    let used: BTreeSet<&str> = threads.iter().map(String::as_str).collect();
    assert_eq!(
        used,
        BTreeSet::from(["worker#0", "worker#1"]),
        "{threads:?}"
    );
}

#[tokio::test]
async fn without_workers_in_worker_is_one_socket_here() {
    let tasks = TaskTracker::new();
    let set = ListenerSet::new(tasks, Arc::new(Workers::none()));
    let mut listen = ListenConfig::new(free_addr());
    listen.in_worker = true;
    assert_eq!(set.wanted(&listen), 1);
    listen.instance = 3;
    assert_eq!(set.wanted(&listen), 3);
    let p = set.prepare(&listen, None).unwrap();
    assert_eq!(p.sockets.len(), 3);
    assert!(!p.in_worker);
}

#[tokio::test]
async fn inherited_sockets_are_all_used() {
    let workers = two_workers();
    let set = ListenerSet::new(TaskTracker::new(), Arc::clone(&workers));
    let mut listen = ListenConfig::new(free_addr());
    // one socket bound alone (no SO_REUSEPORT), as a daemon without workers has it
    let alone = px_socket::bind_tcp_listener(&listen).unwrap();
    let key = handover_key(&listen);
    let inherited = Inherited::new(vec![(key.clone(), alone.into())]);
    listen.in_worker = true;
    let p = set.prepare(&listen, Some(&inherited)).unwrap();
    // the taken socket got SO_REUSEPORT, so a second one joined it
    assert_eq!(p.sockets.len(), 2);
    assert_eq!(inherited.unused(), 0);
    // three inherited for an address that wants one: all three are kept
    let three: Vec<(String, OwnedFd)> = p
        .sockets
        .iter()
        .chain(p.sockets.iter().take(1))
        .map(|s| {
            (
                key.clone(),
                std::os::fd::AsFd::as_fd(s).try_clone_to_owned().unwrap(),
            )
        })
        .collect();
    let plain = ListenerSet::new(TaskTracker::new(), Arc::new(Workers::none()));
    listen.in_worker = false;
    let q = plain
        .prepare(&listen, Some(&Inherited::new(three)))
        .unwrap();
    assert_eq!(q.sockets.len(), 3);
    workers.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn follow_cpu_affinity_sets_incoming_cpu_on_pinned_worker_sockets() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    let cpu: usize = list
        .trim()
        .split([',', '-'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cfg = WorkerConfig {
        thread_number: 1,
        thread_stack_size: None,
        sched_affinity: [(0, vec![cpu])].into_iter().collect(),
        max_io_events_per_tick: None,
        reuseport_balancing: ReuseportBalancing::Kernel,
    };
    let workers = Arc::new(Workers::start(&cfg).unwrap());
    let set = ListenerSet::new(TaskTracker::new(), Arc::clone(&workers));
    let mut listen = ListenConfig::new(free_addr());
    listen.in_worker = true;
    listen.follow_cpu_affinity = true;
    let probe = Arc::new(Probe {
        listen: listen.clone(),
        threads: Mutex::new(Vec::new()),
        nodelay: Mutex::new(Vec::new()),
    });
    let handle: Arc<Handle<dyn Server>> = Arc::new(Handle::new("probe", probe));
    set.spawn(handle, &listen, None).unwrap();
    let got: Vec<usize> = set
        .lock()
        .iter()
        .map(|e| socket2::SockRef::from(&*e.listener).cpu_affinity().unwrap())
        .collect();
    assert_eq!(got, vec![cpu]);
    set.stop_all().await;
    workers.shutdown(Duration::from_secs(5));
}
