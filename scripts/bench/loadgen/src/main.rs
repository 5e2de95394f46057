//! px-bench-loadgen: the load tool of `scripts/bench.sh`.
//!
//! curl loops cap near 1.1k new tunnels/s, and wrk cannot speak CONNECT or SOCKS5,
//! so this tool does the tunnel scenarios. It uses blocking std sockets, one thread
//! per concurrent connection: cheap enough to saturate a single-core proxy from the
//! other core.
//!
//! ```text
//! loadgen rate --via connect --proxy 127.0.0.1:8080 --target 127.0.0.1:8000 \
//!              --path /small --conns 64 --duration 5
//!     new connection (+ CONNECT / SOCKS5 handshake) + one `GET path` with
//!     `Connection: close`, read to EOF; repeat until the time is up.
//! loadgen bulk --via socks5 --proxy 127.0.0.1:1080 --target 127.0.0.1:8000 \
//!              --path /16m --conns 2 --duration 5
//!     same loop, for a large object: reports MB/s (1 MB = 10^6 bytes).
//! loadgen hold --via connect --proxy 127.0.0.1:8080 --target 127.0.0.1:9000 \
//!              --count 10000 --ready-file F --hold 60
//!     opens COUNT tunnels (giving up after 32 failures or --duration s), writes a
//!     JSON line to F, keeps them open for HOLD s.
//! loadgen sink --listen 127.0.0.1:9000
//!     accepts connections and keeps them open without reading (target for `hold`).
//! ```
//!
//! `--via direct` skips the proxy (the target is connected to directly), which is
//! the "direct" column of the benchmark and also how a tcp_stream port is driven.
//! Every result is one JSON object on stdout; the exit status is non-zero when
//! nothing succeeded.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Direct,
    Connect,
    Socks5,
}

#[derive(Clone, Debug)]
struct Opts {
    mode: String,
    via: Via,
    proxy: Option<SocketAddr>,
    target: Option<SocketAddr>,
    path: String,
    conns: usize,
    duration: f64,
    count: usize,
    listen: Option<SocketAddr>,
    ready_file: Option<String>,
    hold: f64,
    timeout: Duration,
    buf: usize,
    rst: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen rate|bulk|hold|sink [--via direct|connect|socks5] [--proxy ADDR] \
         [--target ADDR] [--path P] [--conns N] [--duration S] [--count N] [--listen ADDR] \
         [--ready-file F] [--hold S] [--timeout S] [--buf BYTES] [--rst 0|1]"
    );
    std::process::exit(2)
}

fn addr(s: &str) -> SocketAddr {
    match s.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => {
            eprintln!("bad address {s}");
            usage()
        }
    }
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let mut o = Opts {
        mode,
        via: Via::Direct,
        proxy: None,
        target: None,
        path: "/".to_string(),
        conns: 16,
        duration: 5.0,
        count: 1000,
        listen: None,
        ready_file: None,
        hold: 3600.0,
        timeout: Duration::from_secs(10),
        buf: 256 * 1024,
        rst: false,
    };
    while let Some(k) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> f64 { v.parse().unwrap_or_else(|_| usage()) };
        match k.as_str() {
            "--via" => {
                o.via = match v.as_str() {
                    "direct" => Via::Direct,
                    "connect" | "http" => Via::Connect,
                    "socks5" | "socks" => Via::Socks5,
                    _ => usage(),
                }
            }
            "--proxy" => o.proxy = Some(addr(&v)),
            "--target" => o.target = Some(addr(&v)),
            "--path" => o.path = v,
            "--conns" => o.conns = num(&v).max(1.0) as usize,
            "--duration" => o.duration = num(&v),
            "--count" => o.count = num(&v) as usize,
            "--listen" => o.listen = Some(addr(&v)),
            "--ready-file" => o.ready_file = Some(v),
            "--hold" => o.hold = num(&v),
            "--timeout" => o.timeout = Duration::from_secs_f64(num(&v)),
            "--buf" => o.buf = num(&v).max(4096.0) as usize,
            "--rst" => o.rst = v == "1" || v == "yes" || v == "true",
            _ => usage(),
        }
    }
    o
}

#[cfg(target_os = "linux")]
extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, val: *const std::ffi::c_void, len: u32) -> i32;
}

/// Closes with SO_LINGER {on, 0}: an RST instead of a FIN, so neither end keeps
/// the connection in TIME_WAIT. At tens of thousands of new connections a second,
/// TIME_WAIT entries of the proxy's listening port soon cover every ephemeral port
/// of the client, and each new SYN then lands on one of them.
fn abortive_close(s: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        #[repr(C)]
        struct Linger {
            onoff: i32,
            secs: i32,
        }
        let l = Linger { onoff: 1, secs: 0 };
        // SAFETY: a valid socket fd and a pointer to a live `struct linger` of the
        // given size; SOL_SOCKET = 1 and SO_LINGER = 13 on Linux.
        unsafe {
            setsockopt(
                s.as_raw_fd(),
                1,
                13,
                &l as *const Linger as *const std::ffi::c_void,
                std::mem::size_of::<Linger>() as u32,
            );
        }
    }
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Reads until the buffer holds a full HTTP head; returns (head length, bytes read).
fn read_head(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<(usize, usize)> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Err(other("response head too large".into()));
        }
        let r = s.read(&mut buf[n..])?;
        if r == 0 {
            return Err(other(format!(
                "EOF before the end of the response head ({n} bytes: {:?})",
                String::from_utf8_lossy(&buf[..n.min(120)])
            )));
        }
        n += r;
        if let Some(p) = find(&buf[..n], b"\r\n\r\n") {
            return Ok((p + 4, n));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn status_ok(head: &[u8]) -> bool {
    // "HTTP/1.x 200"
    head.len() >= 12 && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn content_length(head: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n") {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                return v.trim().parse().ok();
            }
        }
    }
    None
}

/// A connection to `target`, through the proxy when `via` says so.
fn open(o: &Opts, buf: &mut [u8]) -> io::Result<TcpStream> {
    let target = o
        .target
        .ok_or_else(|| other("--target is required".into()))?;
    let first = match o.via {
        Via::Direct => target,
        _ => o.proxy.ok_or_else(|| other("--proxy is required".into()))?,
    };
    let mut s = TcpStream::connect_timeout(&first, o.timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(o.timeout))?;
    s.set_write_timeout(Some(o.timeout))?;
    match o.via {
        Via::Direct => {}
        Via::Connect => {
            let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
            s.write_all(req.as_bytes())?;
            let (head, n) = read_head(&mut s, buf)?;
            if !status_ok(&buf[..head]) {
                return Err(other(format!(
                    "CONNECT refused: {:?}",
                    String::from_utf8_lossy(&buf[..head.min(80)])
                )));
            }
            if n != head {
                return Err(other("data after the CONNECT reply".into()));
            }
        }
        Via::Socks5 => {
            s.write_all(&[5, 1, 0])?;
            s.read_exact(&mut buf[..2])?;
            if buf[0] != 5 || buf[1] != 0 {
                return Err(other(format!("SOCKS5 method refused: {:?}", &buf[..2])));
            }
            let mut req = vec![5u8, 1, 0];
            match target {
                SocketAddr::V4(a) => {
                    req.push(1);
                    req.extend_from_slice(&a.ip().octets());
                }
                SocketAddr::V6(a) => {
                    req.push(4);
                    req.extend_from_slice(&a.ip().octets());
                }
            }
            req.extend_from_slice(&target.port().to_be_bytes());
            s.write_all(&req)?;
            s.read_exact(&mut buf[..4])?;
            if buf[0] != 5 || buf[1] != 0 {
                return Err(other(format!("SOCKS5 connect refused: reply {}", buf[1])));
            }
            let rest = match buf[3] {
                1 => 4 + 2,
                4 => 16 + 2,
                3 => {
                    s.read_exact(&mut buf[..1])?;
                    buf[0] as usize + 2
                }
                t => return Err(other(format!("SOCKS5 bad address type {t}"))),
            };
            s.read_exact(&mut buf[..rest])?;
        }
    }
    Ok(s)
}

/// One `GET path` with `Connection: close`, read to EOF; returns the body length.
fn get(o: &Opts, s: &mut TcpStream, buf: &mut [u8]) -> io::Result<u64> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n",
        o.path
    );
    s.write_all(req.as_bytes())?;
    let (head, n) = read_head(s, buf)?;
    if !status_ok(&buf[..head]) {
        return Err(other(format!(
            "GET failed: {:?}",
            String::from_utf8_lossy(&buf[..head.min(80)])
        )));
    }
    let cl = content_length(&buf[..head]);
    let mut body = (n - head) as u64;
    loop {
        if let Some(cl) = cl {
            if body >= cl {
                break;
            }
        }
        let r = s.read(buf)?;
        if r == 0 {
            break;
        }
        body += r as u64;
    }
    if let Some(cl) = cl {
        if body != cl {
            return Err(other(format!("short body: {body} of {cl} bytes")));
        }
    }
    Ok(body)
}

#[derive(Default)]
struct Tally {
    ops: u64,
    errors: u64,
    bytes: u64,
    lat_us: Vec<u32>,
    first_error: Option<String>,
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// `rate` and `bulk`: CONNS threads each looping open + GET until the deadline.
fn run_loop(o: &Opts) -> i32 {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..o.conns {
        let o = o.clone();
        let stop = stop.clone();
        handles.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut t = Tally::default();
                    let mut buf = vec![0u8; o.buf];
                    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let r = open(&o, &mut buf).and_then(|mut s| {
                            let n = get(&o, &mut s, &mut buf);
                            if o.rst {
                                abortive_close(&s);
                            } else {
                                let _ = s.shutdown(Shutdown::Both);
                            }
                            n
                        });
                        match r {
                            Ok(n) => {
                                t.ops += 1;
                                t.bytes += n;
                                t.lat_us
                                    .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                            Err(e) => {
                                t.errors += 1;
                                if t.first_error.is_none() {
                                    t.first_error = Some(e.to_string());
                                }
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                    t
                })
                .unwrap_or_else(|e| {
                    eprintln!("cannot spawn a thread: {e}");
                    std::process::exit(1)
                }),
        );
    }
    let mut all = Tally::default();
    for h in handles {
        if let Ok(t) = h.join() {
            all.ops += t.ops;
            all.errors += t.errors;
            all.bytes += t.bytes;
            all.lat_us.extend(t.lat_us);
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.lat_us.sort_unstable();
    println!(
        "{{\"mode\":{},\"ops\":{},\"errors\":{},\"elapsed_s\":{:.3},\"rate\":{:.1},\"bytes\":{},\
         \"mb_per_s\":{:.2},\"lat_p50_ms\":{:.3},\"lat_p99_ms\":{:.3},\"first_error\":{}}}",
        json_str(&o.mode),
        all.ops,
        all.errors,
        elapsed,
        all.ops as f64 / elapsed,
        all.bytes,
        all.bytes as f64 / 1e6 / elapsed,
        pct(&all.lat_us, 0.5),
        pct(&all.lat_us, 0.99),
        all.first_error
            .as_deref()
            .map(json_str)
            .unwrap_or_else(|| "null".into()),
    );
    if all.ops == 0 {
        1
    } else {
        0
    }
}

/// `hold`: open COUNT tunnels (16 threads), report, keep them open.
///
/// Opening stops early after 32 failures in all (a proxy out of file descriptors
/// leaves connections unaccepted, each costing a `--timeout`) or after `--duration`
/// seconds; the report says how many were opened.
fn run_hold(o: &Opts) -> i32 {
    let threads = 16.min(o.count.max(1));
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::with_capacity(o.count)));
    let errors = Arc::new(Mutex::new((0u64, None::<String>)));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.duration);
    let mut hs = Vec::new();
    for i in 0..threads {
        let n = o.count / threads + usize::from(i < o.count % threads);
        let o = o.clone();
        let held = held.clone();
        let errors = errors.clone();
        let stop = stop.clone();
        hs.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            let mut mine = Vec::with_capacity(n);
            while mine.len() < n && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match open(&o, &mut buf) {
                    Ok(s) => mine.push(s),
                    Err(e) => {
                        if let Ok(mut g) = errors.lock() {
                            g.0 += 1;
                            if g.1.is_none() {
                                g.1 = Some(e.to_string());
                            }
                            if g.0 >= 32 {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            if let Ok(mut g) = held.lock() {
                g.extend(mine);
            }
        }));
    }
    for h in hs {
        let _ = h.join();
    }
    let opened = held.lock().map(|g| g.len()).unwrap_or(0);
    let (errs, first) = errors.lock().map(|g| g.clone()).unwrap_or((0, None));
    let line = format!(
        "{{\"mode\":\"hold\",\"opened\":{opened},\"errors\":{errs},\"open_s\":{:.3},\"first_error\":{}}}",
        start.elapsed().as_secs_f64(),
        first.as_deref().map(json_str).unwrap_or_else(|| "null".into())
    );
    println!("{line}");
    if let Some(f) = &o.ready_file {
        let tmp = format!("{f}.tmp");
        if std::fs::write(&tmp, format!("{line}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, f);
        }
    }
    let _ = io::stdout().flush();
    std::thread::sleep(Duration::from_secs_f64(o.hold));
    drop(held);
    if opened == 0 {
        1
    } else {
        0
    }
}

/// `sink`: accept and keep every connection, never read.
fn run_sink(o: &Opts) -> i32 {
    let Some(l) = o.listen else { usage() };
    let listener = match TcpListener::bind(l) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bind {l}: {e}");
            return 1;
        }
    };
    let mut keep = Vec::new();
    loop {
        match listener.accept() {
            Ok((s, _)) => keep.push(s),
            Err(e) => {
                eprintln!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn main() {
    let o = parse_args();
    let code = match o.mode.as_str() {
        "rate" | "bulk" => run_loop(&o),
        "hold" => run_hold(&o),
        "sink" => run_sink(&o),
        _ => usage(),
    };
    std::process::exit(code)
}
