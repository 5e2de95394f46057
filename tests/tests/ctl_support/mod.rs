//! Shared by `control.rs` and `hot_upgrade.rs`: daemons of one group in a
//! private control directory, `g3proxy-ctl` runs, and a bounded load (HTTP
//! and SOCKS5 requests on fresh connections, long CONNECT tunnels moving
//! pattern bytes) that counts every failure instead of panicking.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use px_e2e::cmd::{self, Output};
use px_e2e::daemon::g3proxy_bin;
use px_e2e::pattern;

/// The g3proxy-ctl binary: `$PX_G3PROXY_CTL_BIN`, else beside g3proxy.
pub fn ctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PX_G3PROXY_CTL_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let p = g3proxy_bin().with_file_name("g3proxy-ctl");
    assert!(
        p.is_file(),
        "g3proxy-ctl is missing at {}: build it with `cargo build --workspace --bins`",
        p.display()
    );
    p
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A daemon group: a config file and a control directory of its own.
pub struct Group {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub config: PathBuf,
    pub ctl_dir: PathBuf,
}

impl Group {
    pub fn new(yaml: &str) -> Group {
        let dir = tempfile::Builder::new()
            .prefix("px-ctl-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("g3proxy.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let ctl_dir = dir.path().join("ctl");
        let name = format!(
            "ctl-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        Group {
            dir,
            name,
            config,
            ctl_dir,
        }
    }

    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config, yaml).expect("write config");
    }

    /// Starts a daemon of the group and waits (bounded) until it says it started.
    pub fn start(&self) -> Proc {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(g3proxy_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("-G")
            .arg(&self.name)
            .arg("--control-dir")
            .arg(&self.ctl_dir)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start g3proxy");
        let mut p = Proc {
            child,
            log,
            exit: None,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if p.logs().contains(" started (group") {
                break;
            }
            if let Some(st) = p.try_exit() {
                panic!("g3proxy exited with {st} at start:\n{}", p.logs());
            }
            assert!(
                Instant::now() < deadline,
                "g3proxy did not start in time:\n{}",
                p.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// `g3proxy-ctl -G GROUP --control-dir DIR ARGS...` (the group's newest daemon).
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_to(None, args)
    }

    /// The same, to one daemon by pid.
    pub fn ctl_to(&self, pid: Option<u32>, args: &[&str]) -> Output {
        let mut c = Command::new(ctl_bin());
        c.arg("-G")
            .arg(&self.name)
            .arg("--control-dir")
            .arg(&self.ctl_dir);
        if let Some(pid) = pid {
            c.arg("-p").arg(pid.to_string());
        }
        c.args(args);
        cmd::run(&mut c, Duration::from_secs(40))
    }

    /// Like [`Group::ctl`], asserting success; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.success(), "g3proxy-ctl {args:?}: {}", out.describe());
        out.stdout_str()
    }
}

/// One daemon process; SIGTERM (then SIGKILL) on drop.
pub struct Proc {
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

#[allow(unsafe_code)]
fn kill(pid: u32, sig: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with plain integers; the pid is our own unreaped child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&mut self, sig: i32) {
        if self.try_exit().is_none() {
            kill(self.pid(), sig);
        }
    }

    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.exit = Some(st);
        }
        self.exit
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log holds `text` (bounded).
    pub fn wait_log(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- daemon {} log ---\n{}", self.pid(), self.logs());
        }
        if self.try_exit().is_none() {
            kill(self.pid(), libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok();
    s.set_write_timeout(Some(IO_TIMEOUT)).ok();
    s.set_nodelay(true).ok();
    Ok(s)
}

/// One proxied `GET /hello` on a fresh connection.
pub fn http_get(proxy: u16, origin: SocketAddr) -> Result<(), String> {
    let mut s = connect(proxy)?;
    let req = format!(
        "GET http://{origin}/hello HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    if text.starts_with("HTTP/1.1 200") && text.ends_with("hello world\n") {
        Ok(())
    } else {
        Err(format!("bad response: {:?}", &text[..text.len().min(200)]))
    }
}

/// One SOCKS5 CONNECT to an echo server on a fresh connection, 32 bytes echoed.
pub fn socks_echo(proxy: u16, echo: SocketAddr) -> Result<(), String> {
    let mut s = connect(proxy)?;
    let io = |e: std::io::Error| format!("socks: {e}");
    s.write_all(&[5, 1, 0]).map_err(io)?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r).map_err(io)?;
    if r != [5, 0] {
        return Err(format!("socks greeting reply {r:?}"));
    }
    let SocketAddr::V4(v4) = echo else {
        return Err("ipv4 echo only".into());
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&v4.ip().octets());
    req.extend_from_slice(&v4.port().to_be_bytes());
    s.write_all(&req).map_err(io)?;
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).map_err(io)?;
    if rep[1] != 0 {
        return Err(format!("socks reply {}", rep[1]));
    }
    let data = pattern::make(32);
    s.write_all(&data).map_err(io)?;
    let mut back = [0u8; 32];
    s.read_exact(&mut back).map_err(io)?;
    if back[..] != data[..] {
        return Err("socks echo mismatch".into());
    }
    Ok(())
}

/// Counts of a load run.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub http_ok: usize,
    pub socks_ok: usize,
    pub failures: Vec<String>,
}

/// Request workers hitting the HTTP and SOCKS ports until stopped or done.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// `workers` threads, each alternating HTTP GET and SOCKS echo, at most
    /// `max_each` requests per thread.
    pub fn start(
        http: u16,
        socks: u16,
        origin: SocketAddr,
        echo: SocketAddr,
        workers: usize,
        max_each: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let handles = (0..workers)
            .map(|w| {
                let stop = Arc::clone(&stop);
                let done = Arc::clone(&done);
                std::thread::spawn(move || {
                    let mut rep = LoadReport::default();
                    let mut i = w;
                    while !stop.load(Ordering::Relaxed) && i < max_each * workers {
                        if i % 3 == 2 {
                            match socks_echo(socks, echo) {
                                Ok(()) => rep.socks_ok += 1,
                                Err(e) => rep.failures.push(format!("socks #{i}: {e}")),
                            }
                        } else {
                            match http_get(http, origin) {
                                Ok(()) => rep.http_ok += 1,
                                Err(e) => rep.failures.push(format!("http #{i}: {e}")),
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        i += workers;
                    }
                    rep
                })
            })
            .collect();
        Load {
            stop,
            done,
            workers: handles,
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests finished (bounded by `timeout`).
    pub fn wait_done(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.done() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the workers and adds up their reports.
    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadReport::default();
        for h in self.workers {
            let r = h.join().expect("load worker");
            total.http_ok += r.http_ok;
            total.socks_ok += r.socks_ok;
            total.failures.extend(r.failures);
        }
        total
    }
}

/// A CONNECT tunnel through the HTTP proxy to an echo server, moving pattern
/// bytes in its own thread until stopped; then it half-closes and checks
/// that every byte came back in order.
pub struct Tunnel {
    stop: Arc<AtomicBool>,
    moved: Arc<AtomicUsize>,
    thread: JoinHandle<Result<usize, String>>,
}

impl Tunnel {
    pub fn open(proxy: u16, echo: SocketAddr) -> Tunnel {
        let mut s = connect(proxy).expect("tunnel connect");
        let req = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n");
        s.write_all(req.as_bytes()).expect("CONNECT");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("CONNECT reply");
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "CONNECT reply {:?}",
            String::from_utf8_lossy(&head)
        );
        let stop = Arc::new(AtomicBool::new(false));
        let moved = Arc::new(AtomicUsize::new(0));
        let (st, mv) = (Arc::clone(&stop), Arc::clone(&moved));
        let thread = std::thread::spawn(move || -> Result<usize, String> {
            let mut offset = 0u64;
            let mut chunk = vec![0u8; 16 * 1024];
            let mut back = vec![0u8; 16 * 1024];
            while !st.load(Ordering::Relaxed) {
                pattern::fill(offset, &mut chunk);
                s.write_all(&chunk)
                    .map_err(|e| format!("tunnel write at {offset}: {e}"))?;
                s.read_exact(&mut back)
                    .map_err(|e| format!("tunnel read at {offset}: {e}"))?;
                if back != chunk {
                    return Err(format!("tunnel bytes differ at offset {offset}"));
                }
                offset += chunk.len() as u64;
                mv.store(offset as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            s.shutdown(std::net::Shutdown::Write)
                .map_err(|e| format!("tunnel shutdown: {e}"))?;
            let mut rest = Vec::new();
            s.read_to_end(&mut rest)
                .map_err(|e| format!("tunnel close: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{} unexpected bytes at close", rest.len()));
            }
            Ok(offset as usize)
        });
        Tunnel {
            stop,
            moved,
            thread,
        }
    }

    /// Bytes echoed so far.
    pub fn moved(&self) -> usize {
        self.moved.load(Ordering::Relaxed)
    }

    /// Waits until the tunnel moved `n` more bytes than now (bounded).
    pub fn wait_progress(&self, n: usize, timeout: Duration) -> bool {
        let start = self.moved();
        let deadline = Instant::now() + timeout;
        while self.moved() < start + n {
            if Instant::now() >= deadline || self.thread.is_finished() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Ends the tunnel; returns the bytes moved, or what went wrong.
    pub fn close(self) -> Result<usize, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err("tunnel thread panicked".into()))
    }
}

/// The path of a file in the group dir.
pub fn path_in(g: &Group, name: &str) -> PathBuf {
    g.dir.path().join(name)
}

/// Whether `p` exists (symlinks followed or not).
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
