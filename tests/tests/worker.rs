//! Worker runtimes (`worker:`) and `listen_in_worker`, with the real binary:
//! one listening socket per worker (counted in /proc/net/tcp), worker threads
//! pinned to their CPUs (/proc/PID/task/*/status), HTTP and SOCKS served,
//! SIGTERM draining tunnels that live on the workers, hot upgrades handing
//! over every per-worker socket under load, a SIGHUP moving a server's
//! sockets into the workers, the fallback without `worker:`, tasks of other
//! servers spread over the workers, client-IP balancing (`cbpf`), and the
//! config errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ctl_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctl_support::{Group, Load, Tunnel, http_get, socks_echo};
use px_e2e::cmd;
use px_e2e::daemon::{Daemon, check_config, g3proxy_bin};
use px_e2e::echo::TcpEcho;
use px_e2e::net::{free_tcp_port, port_accepts};
use px_e2e::origin::HttpOrigin;

/// A config with an HTTP and a SOCKS proxy on loopback; `worker` is the
/// `worker:` section (or empty), `extra` more keys for both servers.
fn config(http: u16, socks: u16, worker: &str, extra: &str) -> String {
    format!(
        "log: stdout
runtime:
  thread_number: 1
  offline_handover_wait: 10s
{worker}
resolver:
  - name: default
    type: c-ares
    server: 127.0.0.1:9
escaper:
  - name: default
    type: direct_fixed
    resolver: default
    egress_network_filter: {{default: allow, allow: 127.0.0.1}}
server:
  - name: http
    type: http_proxy
    escaper: default
    listen: 127.0.0.1:{http}
{extra}
  - name: socks
    type: socks_proxy
    escaper: default
    listen: 127.0.0.1:{socks}
{extra}
"
    )
}

const TWO_PINNED: &str = "worker: {thread_number: 2, sched_affinity: true}";
const IN_WORKER: &str = "    listen_in_worker: true";

/// Listening TCP sockets on `port`, from /proc/net/tcp and tcp6.
fn listening_sockets(port: u16) -> usize {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
        })
        .count()
}

/// Waits (bounded) until `port` has `n` listening sockets.
fn wait_listening(port: u16, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if listening_sockets(port) == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Thread name -> Cpus_allowed_list, for every thread of `pid`.
fn thread_cpus(pid: u32) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(status) = std::fs::read_to_string(e.unwrap().path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.entry(field("Name:"))
            .or_default()
            .push(field("Cpus_allowed_list:"));
    }
    out
}

/// The CPUs this test may run on, as listed in /proc (e.g. "0-1").
fn my_cpus() -> (String, Vec<usize>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    (list, cpus)
}

#[test]
fn listen_in_worker_serves_from_pinned_workers() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let d = Daemon::start(&config(http, socks, TWO_PINNED, IN_WORKER), &[http, socks]);
    // one socket per worker on each port
    assert!(wait_listening(http, 2), "http: {}", listening_sockets(http));
    assert!(
        wait_listening(socks, 2),
        "socks: {}",
        listening_sockets(socks)
    );
    // the workers are threads of their own, each on its CPU
    let threads = thread_cpus(d.pid());
    let (all, allowed) = my_cpus();
    for i in 0..2 {
        let want = if allowed.contains(&i) {
            i.to_string()
        } else {
            all.clone() // the kernel refused the CPU: the worker runs unpinned
        };
        assert_eq!(
            threads.get(&format!("worker#{i}")),
            Some(&vec![want]),
            "threads: {threads:?}"
        );
    }
    // real clients, and enough connections to reach both workers
    let out = cmd::curl(&[
        "-x",
        &format!("http://127.0.0.1:{http}"),
        &origin.url("/hello"),
    ]);
    assert_eq!(out.stdout, b"hello world\n", "{}", out.describe());
    let out = cmd::curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{socks}"),
        &origin.url("/hello"),
    ]);
    assert_eq!(out.stdout, b"hello world\n", "{}", out.describe());
    for _ in 0..20 {
        http_get(http, origin.addr()).unwrap();
        socks_echo(socks, echo.addr()).unwrap();
    }
    assert!(
        d.logs().contains("2 worker runtimes started, 2 pinned"),
        "{}",
        d.logs()
    );
    assert!(d.logs().contains("listening on 127.0.0.1:"), "{}", d.logs());
    assert!(d.logs().contains(" in worker#1"), "{}", d.logs());
}

#[test]
fn sigterm_drains_worker_tunnels_then_exits_0() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let echo = TcpEcho::start();
    let mut d = Daemon::start(&config(http, socks, TWO_PINNED, IN_WORKER), &[http, socks]);
    // enough tunnels for the kernel to put some on each worker's socket
    let tunnels: Vec<Tunnel> = (0..6).map(|_| Tunnel::open(http, echo.addr())).collect();
    for t in &tunnels {
        assert!(t.wait_progress(16 * 1024, Duration::from_secs(5)));
    }
    d.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while listening_sockets(http) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(listening_sockets(http), 0, "the listeners stay open");
    assert!(!port_accepts(http));
    for t in &tunnels {
        assert!(
            t.wait_progress(32 * 1024, Duration::from_secs(5)),
            "a tunnel stalled after SIGTERM:\n{}",
            d.logs()
        );
    }
    assert!(d.try_exit().is_none(), "exited with tunnels open");
    for t in tunnels {
        t.close().unwrap();
    }
    let st = d
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running:\n{}", d.logs()));
    assert_eq!(st.code(), Some(0), "{}", d.logs());
}

#[test]
fn hot_upgrade_hands_over_every_per_worker_socket() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let g = Group::new(&config(http, socks, TWO_PINNED, IN_WORKER));
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let mut current = g.start();
    assert!(wait_listening(http, 2) && wait_listening(socks, 2));
    let load = Load::start(http, socks, origin.addr(), echo.addr(), 4, 1200);
    load.wait_done(100, Duration::from_secs(10));
    for round in 0..2 {
        let tunnels: Vec<Tunnel> = (0..4).map(|_| Tunnel::open(http, echo.addr())).collect();
        assert!(tunnels[0].wait_progress(16 * 1024, Duration::from_secs(5)));
        let mut old = std::mem::replace(&mut current, g.start());
        let logs = current.logs();
        assert!(
            logs.contains("taking over 4 listening sockets"),
            "round {round}: not every per-worker socket came over:\n{logs}"
        );
        assert!(
            logs.contains("2 socket(s) taken over"),
            "round {round}:\n{logs}"
        );
        assert!(
            old.wait_log("going offline", Duration::from_secs(10)),
            "round {round}:\n{}",
            old.logs()
        );
        for t in &tunnels {
            assert!(
                t.wait_progress(32 * 1024, Duration::from_secs(5)),
                "round {round}: an old tunnel stalled"
            );
        }
        for t in tunnels {
            t.close()
                .unwrap_or_else(|e| panic!("round {round}: old tunnel: {e}"));
        }
        let st = old
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("round {round}: old daemon still runs:\n{}", old.logs()));
        assert_eq!(st.code(), Some(0), "{}", old.logs());
        // the sockets live on in the new daemon: still one per worker
        assert_eq!(listening_sockets(http), 2, "round {round}");
        assert_eq!(listening_sockets(socks), 2, "round {round}");
        load.wait_done(load.done() + 200, Duration::from_secs(10));
    }
    let report = load.finish();
    assert!(
        report.failures.is_empty(),
        "{} failures, first: {:?}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(report.http_ok + report.socks_ok >= 500, "{report:?}");
}

#[test]
fn hot_upgrade_into_workers_and_back() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let plain = config(http, socks, "", "");
    let g = Group::new(&plain);
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let mut current = g.start();
    assert_eq!(listening_sockets(http), 1);
    let load = Load::start(http, socks, origin.addr(), echo.addr(), 3, 1500);
    load.wait_done(100, Duration::from_secs(10));
    // one socket per address comes over; the new daemon adds one per worker
    g.write_config(&config(http, socks, TWO_PINNED, IN_WORKER));
    let mut old = std::mem::replace(&mut current, g.start());
    assert!(
        current.logs().contains("taking over 2 listening sockets"),
        "{}",
        current.logs()
    );
    assert_eq!(
        old.wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(listening_sockets(http), 2, "{}", current.logs());
    assert_eq!(listening_sockets(socks), 2, "{}", current.logs());
    load.wait_done(load.done() + 200, Duration::from_secs(10));
    // and back: a daemon without workers keeps accepting on every socket it got
    g.write_config(&plain);
    let mut old = std::mem::replace(&mut current, g.start());
    assert!(
        current.logs().contains("taking over 4 listening sockets"),
        "{}",
        current.logs()
    );
    assert_eq!(
        old.wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(listening_sockets(http), 2);
    load.wait_done(load.done() + 200, Duration::from_secs(10));
    let report = load.finish();
    assert!(
        report.failures.is_empty(),
        "{} failures, first: {:?}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)]
    );
}

#[test]
fn sighup_moves_sockets_into_the_workers_without_loss() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let mut d = Daemon::start(&config(http, socks, TWO_PINNED, ""), &[http, socks]);
    assert_eq!(listening_sockets(http), 1);
    let load = Load::start(http, socks, origin.addr(), echo.addr(), 3, 1000);
    load.wait_done(100, Duration::from_secs(10));
    std::fs::write(d.config_path(), config(http, socks, TWO_PINNED, IN_WORKER)).unwrap();
    d.signal("HUP");
    assert!(wait_listening(http, 2), "{}", d.logs());
    assert!(wait_listening(socks, 2), "{}", d.logs());
    load.wait_done(load.done() + 300, Duration::from_secs(10));
    let report = load.finish();
    assert!(
        report.failures.is_empty(),
        "{:?}\n{}",
        &report.failures[..report.failures.len().min(5)],
        d.logs()
    );
    assert!(
        d.logs().contains("reloaded: server[http], server[socks]"),
        "{}",
        d.logs()
    );
}

#[test]
fn without_worker_section_listen_in_worker_falls_back() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let d = Daemon::start(&config(http, socks, "", IN_WORKER), &[http, socks]);
    http_get(http, origin.addr()).unwrap();
    socks_echo(socks, echo.addr()).unwrap();
    assert_eq!(listening_sockets(http), 1);
    let threads = thread_cpus(d.pid());
    assert!(
        !threads.keys().any(|n| n.starts_with("worker#")),
        "{threads:?}"
    );
    drop(d);
    // `instance` still counts without workers
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let extra = format!("{IN_WORKER}\n    listen: {{address: 127.0.0.1:{http}, instance: 3}}");
    let yaml = config(http, socks, "", "").replace(
        &format!("    listen: 127.0.0.1:{http}\n"),
        &format!("{extra}\n"),
    );
    let _d = Daemon::start(&yaml, &[http, socks]);
    assert_eq!(listening_sockets(http), 3);
    http_get(http, origin.addr()).unwrap();
}

/// g3proxy run with `-v` (debug logs name the worker of each connection),
/// its control socket in a temp dir; killed on drop.
struct Verbose {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Verbose {
    fn start(yaml: &str, ports: &[u16]) -> Verbose {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("g3proxy.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let log = dir.path().join("daemon.log");
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(g3proxy_bin())
            .arg("-v")
            .arg("-c")
            .arg(&cfg)
            .arg("-G")
            .arg(format!("worker-v-{}", std::process::id()))
            .arg("--control-dir")
            .arg(dir.path().join("ctl"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let v = Verbose {
            child,
            log,
            _dir: dir,
        };
        for &p in ports {
            assert!(
                px_e2e::net::wait_port(p, Duration::from_secs(10)),
                "{}",
                v.logs()
            );
        }
        v
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `n` lines containing `text`.
    fn wait_count(&self, text: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = self
                .logs()
                .lines()
                .filter(|l| l.contains(text))
                .map(str::to_string)
                .collect();
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Verbose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}", self.logs());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker ids named by log lines `... client IP:PORT <verb> worker#N`, per client IP.
fn workers_by_ip(lines: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in lines {
        let Some(rest) = l.split("client ").nth(1) else {
            continue;
        };
        let addr = rest.split_whitespace().next().unwrap_or_default();
        let ip = addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(addr);
        let worker = l.rsplit("worker#").next().unwrap_or_default().trim();
        out.entry(ip.to_string())
            .or_default()
            .insert(worker.to_string());
    }
    out
}

#[test]
fn other_servers_hand_connections_to_the_workers_in_turn() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let origin = HttpOrigin::start();
    let v = Verbose::start(&config(http, socks, TWO_PINNED, ""), &[http, socks]);
    for _ in 0..6 {
        http_get(http, origin.addr()).unwrap();
    }
    let lines = v.wait_count("server http: client 127.0.0.1:", 6);
    let used = workers_by_ip(&lines);
    assert_eq!(
        used.get("127.0.0.1").map(|s| s.len()),
        Some(2),
        "both workers take turns: {lines:?}"
    );
}

/// `curl --interface IP -x http://127.0.0.1:PORT URL`: a proxied GET from a chosen source IP.
fn curl_from(ip: &str, http: u16, url: &str) {
    let out = cmd::curl(&[
        "--interface",
        ip,
        "-x",
        &format!("http://127.0.0.1:{http}"),
        url,
    ]);
    assert_eq!(out.stdout, b"hello world\n", "{}", out.describe());
}

#[test]
fn cbpf_balancing_keeps_each_client_ip_on_one_worker() {
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let origin = HttpOrigin::start();
    let worker = "worker: {thread_number: 2, reuseport_balancing: cbpf}";
    let v = Verbose::start(&config(http, socks, worker, IN_WORKER), &[http, socks]);
    assert!(
        v.logs().contains("2 listeners on 127.0.0.1:"),
        "the program was not attached:\n{}",
        v.logs()
    );
    let ips: Vec<String> = (2..8).map(|i| format!("127.0.0.{i}")).collect();
    for _ in 0..4 {
        for ip in &ips {
            curl_from(ip, http, &origin.url("/hello"));
        }
    }
    let lines = v.wait_count("server http: client 127.0.0.", 4 * ips.len());
    let used = workers_by_ip(&lines);
    for ip in &ips {
        let w = used
            .get(ip)
            .unwrap_or_else(|| panic!("{ip} not seen: {lines:?}"));
        assert_eq!(w.len(), 1, "{ip} reached {w:?}");
        // the program takes the IPv4 address modulo 2 workers
        let last: usize = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!(w.contains(&(last % 2).to_string()), "{ip} on {w:?}");
    }
    // the kernel's own hash, for contrast, spreads one client over both
    drop(v);
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    let v = Verbose::start(&config(http, socks, TWO_PINNED, IN_WORKER), &[http, socks]);
    for _ in 0..24 {
        http_get(http, origin.addr()).unwrap();
    }
    let lines = v.wait_count("server http: client 127.0.0.1:", 24);
    let used = workers_by_ip(&lines);
    assert_eq!(used.get("127.0.0.1").map(|s| s.len()), Some(2), "{lines:?}");
}

#[test]
fn worker_config_errors_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let (http, socks) = (free_tcp_port(), free_tcp_port());
    for (worker, want) in [
        (
            "worker:\n  thread_number: 2\n  sched_affinity: {0: 0, 5: 1}",
            "worker.sched_affinity.5: worker 5 does not exist",
        ),
        ("worker: {reuseport_balancing: ebpf}", "reuseport_balancing"),
        ("worker: {thread_name: x}", "unknown key `thread_name`"),
    ] {
        let path = dir.path().join("g3proxy.yaml");
        std::fs::write(&path, config(http, socks, worker, "")).unwrap();
        let (st, err) = check_config(&path);
        assert!(!st.success(), "{worker}: accepted");
        assert!(err.contains(want), "{worker}: {err}");
        assert!(err.contains("g3proxy.yaml:"), "{err}");
    }
    let path = dir.path().join("g3proxy.yaml");
    std::fs::write(&path, config(http, socks, TWO_PINNED, IN_WORKER)).unwrap();
    let (st, err) = check_config(&path);
    assert!(st.success(), "{err}");
    let bad_scale = config(http, socks, "", "").replace(
        &format!("listen: 127.0.0.1:{http}"),
        &format!("listen: {{address: 127.0.0.1:{http}, scale: lots}}"),
    );
    std::fs::write(&path, bad_scale).unwrap();
    let (st, err) = check_config(&path);
    assert!(!st.success() && err.contains("scale"), "{err}");
}
