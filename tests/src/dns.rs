//! DNS for the resolver tests.
//!
//! - [`Dnsmasq`]: Debian's dnsmasq on a free loopback port, in the foreground, answering
//!   only the names it is given (`--address=/NAME/IP`; an empty IP answers NXDOMAIN),
//!   logging each query to a file so a test can see the daemon asked it. Killed on drop.
//! - [`SilentDns`]: a bound UDP socket that never answers (a dead-but-present server).
//! - [`query_a`]: a minimal A query over UDP, used to wait until dnsmasq answers.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Path to dnsmasq (PATH, then /usr/sbin); panics saying which package to install.
pub fn dnsmasq_bin() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("dnsmasq");
            if p.is_file() {
                return p;
            }
        }
    }
    for p in ["/usr/sbin/dnsmasq", "/sbin/dnsmasq"] {
        if std::path::Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("dnsmasq is missing: `apt-get install dnsmasq-base` (scripts/test.sh does)");
}

/// A dnsmasq serving fixed records on 127.0.0.1.
pub struct Dnsmasq {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Dnsmasq {
    /// Start with `records` as `(name, ip)`; an empty ip makes the name NXDOMAIN.
    /// Waits (bounded) until the first record is answered.
    pub fn start(records: &[(&str, &str)]) -> Dnsmasq {
        let bin = dnsmasq_bin();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = crate::net::free_udp_port();
            let dir = tempfile::Builder::new()
                .prefix("px-dnsmasq-")
                .tempdir()
                .expect("tempdir");
            let mut cmd = Command::new(&bin);
            cmd.arg("--no-daemon")
                .arg("--conf-file=/dev/null")
                .arg(format!("--port={port}"))
                .arg("--listen-address=127.0.0.1")
                .arg("--bind-interfaces")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg("--no-poll")
                .arg("--user=root")
                .arg("--cache-size=0")
                .arg("--log-queries")
                .arg(format!(
                    "--log-facility={}",
                    dir.path().join("dnsmasq.log").display()
                ))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("dnsmasq.pid").display()
                ));
            for (name, ip) in records {
                cmd.arg(format!("--address=/{name}/{ip}"));
            }
            let err = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut d = Dnsmasq { child, port, dir };
            let probe = records
                .iter()
                .find(|(_, ip)| !ip.is_empty())
                .map(|(n, _)| *n);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(st)) = d.child.try_wait() {
                    last_err = format!("dnsmasq exited with {st}: {}", d.log());
                    break;
                }
                let ok = match probe {
                    Some(n) => query_a(d.addr(), n, Duration::from_millis(200)).is_ok(),
                    None => query_a(d.addr(), "probe.invalid", Duration::from_millis(200))
                        .map(|_| true)
                        .unwrap_or_else(|e| e.starts_with("rcode")),
                };
                if ok {
                    return d;
                }
                if Instant::now() >= deadline {
                    last_err = format!("dnsmasq did not answer within 10s: {}", d.log());
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("{last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// dnsmasq's query log and stderr.
    pub fn log(&self) -> String {
        let a = std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default();
        let b = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        format!("{a}{b}")
    }

    /// How many queries (any type) for `name` dnsmasq logged, excluding our readiness probes.
    pub fn queries_for(&self, name: &str) -> usize {
        let needle = format!(" {name} from ");
        self.log()
            .lines()
            .filter(|l| l.contains("query[") && l.contains(&needle))
            .count()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP "DNS server" that receives and never answers.
pub struct SilentDns {
    sock: UdpSocket,
}

impl SilentDns {
    pub fn start() -> SilentDns {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind silent dns");
        SilentDns { sock }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

fn encode_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

fn skip_name(msg: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *msg.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        i += 1 + len;
    }
}

/// Ask `server` for the A records of `name`. `Err("rcode N")` for an error answer.
pub fn query_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>, String> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id: u16 = (std::process::id() as u16) ^ 0x5a5a;
    sock.send_to(&encode_query(id, name), server)
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
    let msg = &buf[..n];
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id {
        return Err("bad answer".into());
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("rcode {rcode}"));
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
    let an = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(msg, i).ok_or("short")? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        i = skip_name(msg, i).ok_or("short")?;
        let rr = msg.get(i..i + 10).ok_or("short")?;
        let ty = u16::from_be_bytes([rr[0], rr[1]]);
        let rdlen = u16::from_be_bytes([rr[8], rr[9]]) as usize;
        let data = msg.get(i + 10..i + 10 + rdlen).ok_or("short")?;
        if ty == 1 && rdlen == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + rdlen;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_answers_and_logs() {
        let d = Dnsmasq::start(&[("origin.test", "127.0.0.1"), ("nx.test", "")]);
        let ips = query_a(d.addr(), "origin.test", Duration::from_secs(2)).unwrap();
        assert_eq!(ips, vec![Ipv4Addr::LOCALHOST]);
        let nx = query_a(d.addr(), "nx.test", Duration::from_secs(2));
        assert_eq!(nx, Err("rcode 3".to_string()), "nx.test must be NXDOMAIN");
        // the readiness probe and our query are both logged
        assert!(d.queries_for("origin.test") >= 2, "{}", d.log());
    }

    #[test]
    fn silent_dns_times_out() {
        let s = SilentDns::start();
        let r = query_a(
            SocketAddr::from((Ipv4Addr::LOCALHOST, s.port())),
            "origin.test",
            Duration::from_millis(200),
        );
        assert!(r.is_err());
    }
}
