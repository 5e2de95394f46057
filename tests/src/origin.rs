//! An HTTP/1.1 origin server written with raw tokio I/O (no hyper), so every byte it
//! sends and accepts is known.
//!
//! It counts accepted TCP connections and requests (a test sees upstream connection
//! reuse on [`HttpOrigin::connections`]) and records each request head it receives
//! ([`HttpOrigin::requests`]: method, target, headers, body size, whether it came with
//! `Expect: 100-continue` or chunked).
//!
//! Routes (GET and HEAD; HEAD sends the same head without the body):
//! - `/hello`: `hello world\n` with Content-Length
//! - `/pattern/N`: N bytes of [`crate::pattern`] with Content-Length
//! - `/chunked/N`: the same N bytes, chunked (64 KiB chunks)
//! - `/close/N`: the same N bytes close-delimited (no length, `Connection: close`)
//! - `/status/CODE`: an empty response with that status
//! - any path added with [`HttpOrigin::route`]
//! - `/drop`: no response at all, the connection is closed (an upstream failure)
//! - anything else: 404
//!
//! POST and PUT to any path echo the request body (read by Content-Length or chunked)
//! back with Content-Length, plus `X-Body-Len` and `X-Body-Fnv1a` (see
//! [`crate::pattern::fnv1a_hex`]). With `Expect: 100-continue` it first sends
//! `HTTP/1.1 100 Continue`.
//!
//! Every response carries `X-Conn-Id` (1-based accept order) and `X-Req-Seq` (1-based
//! request number on that connection). Connections are kept alive (HTTP/1.1 default,
//! HTTP/1.0 only with `Connection: keep-alive`) until the client closes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::pattern;

const MAX_HEAD: usize = 64 * 1024;
const CHUNK: usize = 64 * 1024;

/// One request head as the origin saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub conn_id: usize,
    pub seq: usize,
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub expect_continue: bool,
    pub chunked: bool,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    conns: AtomicUsize,
    reqs: AtomicUsize,
    seen: Mutex<Vec<SeenRequest>>,
    routes: Mutex<HashMap<String, Vec<u8>>>,
}

/// The origin server; stops (with every connection it holds) on drop.
pub struct HttpOrigin {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl HttpOrigin {
    /// Start on 127.0.0.1 with a free port.
    pub fn start() -> HttpOrigin {
        Self::start_on(Ipv4Addr::LOCALHOST)
    }

    /// Start on `ip` (any 127.x.y.z works on Linux loopback, and `::1`) with a free port.
    pub fn start_on(ip: impl Into<IpAddr>) -> HttpOrigin {
        let ip: IpAddr = ip.into();
        let std_listener =
            std::net::TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = crate::runtime().spawn(async move {
            let listener = match TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("origin: listener: {e}");
                    return;
                }
            };
            let mut conns = JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let id = st.conns.fetch_add(1, Ordering::SeqCst) + 1;
                let st = st.clone();
                conns.spawn(async move {
                    let _ = serve_conn(stream, st, id).await;
                });
            }
        });
        HttpOrigin { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://IP:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://NAME:PORT{path}`, for tests that resolve NAME through the daemon.
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.conns.load(Ordering::SeqCst)
    }

    /// Request heads received so far.
    pub fn request_count(&self) -> usize {
        self.state.reqs.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serve `body` (with Content-Length) for GET/HEAD on `path`.
    pub fn route(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.state
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), body.into());
    }
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;
type Writer = tokio::net::tcp::OwnedWriteHalf;

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Read one line (with its `\n`), bounded by `limit` bytes.
async fn read_line(rd: &mut Reader, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let avail = rd.fill_buf().await?;
        if avail.is_empty() {
            return Ok(line);
        }
        if let Some(pos) = avail.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&avail[..=pos]);
            rd.consume(pos + 1);
            return Ok(line);
        }
        let n = avail.len();
        line.extend_from_slice(avail);
        rd.consume(n);
        if line.len() > limit {
            return Err(invalid("line too long"));
        }
    }
}

async fn read_head(rd: &mut Reader) -> std::io::Result<Option<Head>> {
    let mut total = 0;
    let first = loop {
        let l = read_line(rd, MAX_HEAD).await?;
        if l.is_empty() {
            return Ok(None);
        }
        total += l.len();
        // tolerate empty lines before a request (RFC 9112 2.2)
        if l != b"\r\n" && l != b"\n" {
            break l;
        }
        if total > MAX_HEAD {
            return Err(invalid("head too large"));
        }
    };
    let first = String::from_utf8_lossy(&first).trim_end().to_string();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {first:?}")));
    };
    let mut headers = Vec::new();
    loop {
        let l = read_line(rd, MAX_HEAD).await?;
        if l.is_empty() {
            return Err(invalid("eof inside head"));
        }
        total += l.len();
        if total > MAX_HEAD {
            return Err(invalid("head too large"));
        }
        let s = String::from_utf8_lossy(&l).trim_end().to_string();
        if s.is_empty() {
            break;
        }
        let (k, v) = s
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {s:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    }))
}

async fn read_body(rd: &mut Reader, head: &Head) -> std::io::Result<(Vec<u8>, bool)> {
    let chunked = head
        .header("transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    if chunked {
        let mut body = Vec::new();
        loop {
            let line = read_line(rd, 8192).await?;
            if line.is_empty() {
                return Err(invalid("eof inside chunked body"));
            }
            let s = String::from_utf8_lossy(&line);
            let size_str = s
                .trim()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let size = usize::from_str_radix(&size_str, 16)
                .map_err(|_| invalid(format!("bad chunk size {s:?}")))?;
            if size == 0 {
                loop {
                    let t = read_line(rd, 8192).await?;
                    if t.is_empty() || t == b"\r\n" || t == b"\n" {
                        break;
                    }
                }
                return Ok((body, true));
            }
            let start = body.len();
            body.resize(start + size, 0);
            rd.read_exact(&mut body[start..]).await?;
            let crlf = read_line(rd, 8192).await?;
            if crlf != b"\r\n" && crlf != b"\n" {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
    }
    let len = match head.header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| invalid(format!("bad content-length {v:?}")))?,
        None => 0,
    };
    let mut body = vec![0u8; len];
    rd.read_exact(&mut body).await?;
    Ok((body, false))
}

fn path_of(target: &str) -> &str {
    // absolute-form -> path
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        return rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    }
    target
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

enum Reply {
    Fixed(u16, Vec<u8>, Vec<(String, String)>),
    Pattern {
        len: usize,
        chunked: bool,
        close: bool,
    },
}

async fn write_pattern_body(wr: &mut Writer, len: usize, chunked: bool) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0usize;
    while off < len {
        let n = CHUNK.min(len - off);
        pattern::fill(off as u64, &mut buf[..n]);
        if chunked {
            wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            wr.write_all(&buf[..n]).await?;
            wr.write_all(b"\r\n").await?;
        } else {
            wr.write_all(&buf[..n]).await?;
        }
        off += n;
    }
    if chunked {
        wr.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

async fn serve_conn(stream: TcpStream, st: Arc<State>, conn_id: usize) -> std::io::Result<()> {
    stream.set_nodelay(true).ok();
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(CHUNK, rd);
    let mut seq = 0usize;
    loop {
        let Some(head) = read_head(&mut rd).await? else {
            return Ok(());
        };
        seq += 1;
        st.reqs.fetch_add(1, Ordering::SeqCst);
        let is_head = head.method.eq_ignore_ascii_case("HEAD");
        let has_body =
            head.header("content-length").is_some() || head.header("transfer-encoding").is_some();
        let expect = head
            .header("expect")
            .map(|v| v.eq_ignore_ascii_case("100-continue"))
            .unwrap_or(false);
        if expect && has_body {
            wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            wr.flush().await?;
        }
        let (body, chunked) = read_body(&mut rd, &head).await?;
        st.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(SeenRequest {
                conn_id,
                seq,
                method: head.method.clone(),
                target: head.target.clone(),
                version: head.version.clone(),
                headers: head.headers.clone(),
                body_len: body.len(),
                expect_continue: expect,
                chunked,
            });

        let http10 = head.version.eq_ignore_ascii_case("HTTP/1.0");
        let keep_alive = if head.has_token("connection", "close") {
            false
        } else if http10 {
            head.has_token("connection", "keep-alive")
        } else {
            true
        };

        let path = path_of(&head.target).to_string();
        let custom = st
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&path)
            .cloned();
        let method = head.method.to_ascii_uppercase();
        if path == "/drop" {
            wr.shutdown().await.ok();
            return Ok(());
        }
        let reply = if method == "POST" || method == "PUT" {
            Reply::Fixed(
                200,
                body.clone(),
                vec![
                    ("X-Body-Len".into(), body.len().to_string()),
                    ("X-Body-Fnv1a".into(), pattern::fnv1a_hex(&body)),
                    ("X-Body-Chunked".into(), chunked.to_string()),
                ],
            )
        } else if let Some(b) = custom {
            Reply::Fixed(200, b, vec![])
        } else if path == "/hello" {
            Reply::Fixed(200, b"hello world\n".to_vec(), vec![])
        } else if let Some(n) = path.strip_prefix("/pattern/").and_then(|n| n.parse().ok()) {
            Reply::Pattern {
                len: n,
                chunked: false,
                close: false,
            }
        } else if let Some(n) = path.strip_prefix("/chunked/").and_then(|n| n.parse().ok()) {
            Reply::Pattern {
                len: n,
                chunked: true,
                close: false,
            }
        } else if let Some(n) = path.strip_prefix("/close/").and_then(|n| n.parse().ok()) {
            Reply::Pattern {
                len: n,
                chunked: false,
                close: true,
            }
        } else if let Some(c) = path.strip_prefix("/status/").and_then(|n| n.parse().ok()) {
            Reply::Fixed(c, Vec::new(), vec![])
        } else {
            Reply::Fixed(404, b"not found\n".to_vec(), vec![])
        };

        let mut h = String::new();
        let close_after;
        match &reply {
            Reply::Fixed(code, b, extra) => {
                h.push_str(&format!("HTTP/1.1 {code} {}\r\n", reason(*code)));
                if *code != 204 && *code != 304 {
                    h.push_str(&format!("Content-Length: {}\r\n", b.len()));
                }
                for (k, v) in extra {
                    h.push_str(&format!("{k}: {v}\r\n"));
                }
                close_after = !keep_alive;
            }
            Reply::Pattern {
                len,
                chunked,
                close,
            } => {
                h.push_str("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n");
                if *close {
                    close_after = true;
                } else {
                    if *chunked {
                        h.push_str("Transfer-Encoding: chunked\r\n");
                    } else {
                        h.push_str(&format!("Content-Length: {len}\r\n"));
                    }
                    close_after = !keep_alive;
                }
            }
        }
        h.push_str(&format!("X-Conn-Id: {conn_id}\r\nX-Req-Seq: {seq}\r\n"));
        if close_after {
            h.push_str("Connection: close\r\n");
        } else if http10 {
            h.push_str("Connection: keep-alive\r\n");
        }
        h.push_str("\r\n");
        wr.write_all(h.as_bytes()).await?;
        if !is_head {
            match reply {
                Reply::Fixed(_, b, _) => wr.write_all(&b).await?,
                Reply::Pattern {
                    len,
                    chunked,
                    close,
                } => {
                    write_pattern_body(&mut wr, len, chunked && !close).await?;
                }
            }
        }
        wr.flush().await?;
        if close_after {
            wr.shutdown().await.ok();
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::RawConn;

    #[test]
    fn get_head_keepalive_and_counters() {
        let o = HttpOrigin::start();
        let mut c = RawConn::connect(o.port());
        c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world\n");
        assert_eq!(r.header("x-conn-id"), Some("1"));
        c.send(b"HEAD /pattern/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(true);
        assert_eq!(r.header("content-length"), Some("1000"));
        assert_eq!(r.header("x-req-seq"), Some("2"));
        c.send(b"GET /chunked/200000 HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(false);
        pattern::check(&r.body, 200_000).unwrap();
        c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response(false).status, 404);
        assert_eq!(o.connections(), 1);
        assert_eq!(o.request_count(), 4);
        // a second connection is counted
        let mut c2 = RawConn::connect(o.port());
        c2.send(b"GET http://127.0.0.1/hello HTTP/1.0\r\n\r\n");
        let r = c2.read_response(false);
        assert_eq!(r.body, b"hello world\n");
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(
            c2.wait_closed(std::time::Duration::from_secs(5)),
            crate::net::Closed::Eof
        );
        assert_eq!(o.connections(), 2);
    }

    #[test]
    fn post_echo_content_length_chunked_and_expect() {
        let o = HttpOrigin::start();
        let mut c = RawConn::connect(o.port());
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde");
        let r = c.read_response(false);
        assert_eq!(r.body, b"abcde");
        assert_eq!(
            r.header("x-body-fnv1a"),
            Some(pattern::fnv1a_hex(b"abcde").as_str())
        );
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n",
        );
        let r = c.read_response(false);
        assert_eq!(r.body, b"abcdefg");
        assert_eq!(r.header("x-body-chunked"), Some("true"));
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        let interim = c.read_until(b"\r\n\r\n").unwrap();
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        c.send(b"xyz");
        let r = c.read_response(false);
        assert_eq!(r.body, b"xyz");
        let seen = o.requests();
        assert_eq!(seen.len(), 3);
        assert!(seen[2].expect_continue);
        assert!(seen[1].chunked);
    }

    #[test]
    fn close_delimited_and_custom_route() {
        let o = HttpOrigin::start();
        o.route("/custom", b"custom body".to_vec());
        let mut c = RawConn::connect(o.port());
        c.send(b"GET /custom HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response(false).body, b"custom body");
        c.send(b"GET /close/70000 HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(false);
        assert!(r.header("content-length").is_none());
        assert_eq!(r.header("connection"), Some("close"));
        pattern::check(&r.body, 70_000).unwrap();
    }
}
