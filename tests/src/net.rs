//! Ports and raw client sockets with bounded waits.
//!
//! - [`free_tcp_port`] / [`free_udp_port`]: a port that binds on 127.0.0.1 right now, picked
//!   below the kernel's ephemeral range (so outgoing connections cannot grab it before the
//!   daemon binds it); a process-wide set keeps two tests of one binary apart.
//! - [`RawConn`]: a std `TcpStream` with read and write timeouts and its own read buffer,
//!   to write exact bytes (bad input, keep-alive by hand, `Expect: 100-continue`) and read
//!   HTTP responses, or to see how and when the peer closed.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::WAIT;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn remember(port: u16) -> bool {
    let mut g = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashSet::new).insert(port)
}

/// The kernel's ephemeral range (`ip_local_port_range`): outgoing connections take their
/// local ports from it at any moment, so listening ports are picked below it.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32768)
}

/// A pseudo-random port in [10000, ephemeral low), different per process and call.
fn candidate(n: u32) -> u16 {
    let low = 10000u32;
    let high = u32::from(ephemeral_low()).max(low + 2000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x =
        u64::from(std::process::id()) << 32 | u64::from(nanos ^ n.wrapping_mul(0x9E37_79B9));
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (low + (x % u64::from(high - low)) as u32) as u16
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range so no
/// outgoing connection can take it before the daemon binds it.
pub fn free_tcp_port() -> u16 {
    for n in 0..1000 {
        let port = candidate(n);
        if tcp_free(port) && remember(port) {
            return port;
        }
    }
    panic!("no free tcp port found");
}

/// A port free for both UDP and TCP on 127.0.0.1 (DNS servers listen on both).
pub fn free_udp_port() -> u16 {
    for n in 0..1000 {
        let port = candidate(n);
        if udp_free(port) && tcp_free(port) && remember(port) {
            return port;
        }
    }
    panic!("no free udp port found");
}

/// `127.0.0.1:port`
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether something accepts TCP connections on `127.0.0.1:port` right now.
pub fn port_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&local(port), Duration::from_millis(300)).is_ok()
}

/// Wait (bounded) until `127.0.0.1:port` accepts connections.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if port_accepts(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How a read that waited for the peer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed (FIN).
    Eof,
    /// The peer reset the connection.
    Reset,
    /// Nothing happened before the timeout: the connection is still open.
    StillOpen,
}

/// A parsed HTTP response read from a [`RawConn`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The head exactly as received.
    pub head: String,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client TCP connection with timeouts on every read and write.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connect to `127.0.0.1:port` (5 s connect timeout, 10 s read/write timeouts).
    pub fn connect(port: u16) -> RawConn {
        Self::connect_addr(local(port))
    }

    pub fn connect_addr(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(WAIT)).ok();
        stream.set_write_timeout(Some(WAIT)).ok();
        stream.set_nodelay(true).ok();
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, data: &[u8]) {
        self.stream
            .write_all(data)
            .unwrap_or_else(|e| panic!("write {} bytes: {e}", data.len()));
    }

    /// Write, returning the error instead of panicking (the peer may have closed).
    pub fn try_send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(data)
    }

    /// Half-close our side.
    pub fn shutdown_write(&self) {
        self.stream.shutdown(std::net::Shutdown::Write).ok();
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Read exactly `n` bytes (bounded by the read timeout of each read).
    pub fn read_exact_n(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => panic!(
                    "peer closed after {} of {n} bytes: {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(_) => {}
                Err(e) => panic!("read {n} bytes (have {}): {e}", self.buf.len()),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Read up to and including `delim`; `None` if the peer closed or timed out first.
    pub fn read_until(&mut self, delim: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, delim) {
                return Some(self.buf.drain(..pos + delim.len()).collect());
            }
            match self.fill() {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Bytes already received but not consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Read an HTTP response head and its body. `head_request`: the request was HEAD
    /// (no body follows whatever the headers say).
    pub fn read_response(&mut self, head_request: bool) -> RawResponse {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`RawConn::read_response`], but an error instead of a panic.
    pub fn try_read_response(&mut self, head_request: bool) -> Result<RawResponse, String> {
        let head = self.read_until(b"\r\n\r\n").ok_or_else(|| {
            format!(
                "no complete response head (got {:?})",
                String::from_utf8_lossy(&self.buf)
            )
        })?;
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for l in lines {
            if l.is_empty() {
                continue;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut resp = RawResponse {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
            head,
        };
        if head_request || status / 100 == 1 || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .map(|v| v.to_ascii_lowercase().contains("chunked"))
            .unwrap_or(false);
        if chunked {
            let mut body = Vec::new();
            loop {
                let line = self
                    .read_until(b"\r\n")
                    .ok_or("connection ended inside a chunk size line")?;
                let line = String::from_utf8_lossy(&line).into_owned();
                let size_str = line
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let size = usize::from_str_radix(size_str.trim(), 16)
                    .map_err(|_| format!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    // trailers, then the empty line
                    loop {
                        let t = self
                            .read_until(b"\r\n")
                            .ok_or("connection ended inside trailers")?;
                        if t == b"\r\n" {
                            break;
                        }
                    }
                    break;
                }
                while self.buf.len() < size + 2 {
                    match self.fill() {
                        Ok(0) | Err(_) => return Err("connection ended inside a chunk".into()),
                        Ok(_) => {}
                    }
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
            }
            resp.body = body;
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| format!("bad content-length {cl:?}"))?;
            while self.buf.len() < n {
                match self.fill() {
                    Ok(0) | Err(_) => {
                        return Err(format!(
                            "connection ended after {} of {n} body bytes",
                            self.buf.len()
                        ));
                    }
                    Ok(_) => {}
                }
            }
            resp.body = self.buf.drain(..n).collect();
        } else {
            // close-delimited
            loop {
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(format!("close-delimited body not ended: {e}")),
                }
            }
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    /// Wait up to `timeout` for the peer to close; bytes that arrive meanwhile are kept
    /// (see [`RawConn::pending`]).
    pub fn wait_closed(&mut self, timeout: Duration) -> Closed {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Closed::StillOpen;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let r = self.fill();
            self.stream.set_read_timeout(Some(WAIT)).ok();
            match r {
                Ok(0) => return Closed::Eof,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Closed::Reset,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => return Closed::Reset,
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let a = free_tcp_port();
        let b = free_tcp_port();
        assert_ne!(a, b);
        TcpListener::bind(local(a)).unwrap();
        let u = free_udp_port();
        UdpSocket::bind(local(u)).unwrap();
        assert!(!port_accepts(b));
    }
}
