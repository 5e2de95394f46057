//! End-to-end tests of the server: a test escaper (plain connect), an origin server built on
//! px-http, and raw client sockets, all on loopback port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use px_core::{
    Auditor, ConnectError, Escaper, Handle, ModuleLookup, Resolver, Server, TcpConnectRequest,
    UpstreamConn, UpstreamStream, UserGroup,
};
use px_http::{
    BodyFraming, HeadLimits, Method, RequestHead, ResponseHead, copy_body, request_framing,
};
use px_yaml::{ConfigError, Val, load_str};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::config::HttpProxyConfig;

/// Connects plainly; `timeout.test` times out, `forbidden.test` is refused by "egress filter".
struct TestEscaper;

#[async_trait]
impl Escaper for TestEscaper {
    fn name(&self) -> &str {
        "default"
    }

    fn kind(&self) -> &'static str {
        "test"
    }

    async fn connect_tcp(&self, req: &TcpConnectRequest) -> Result<UpstreamConn, ConnectError> {
        let addr = match &req.target.host {
            px_core::Host::Domain(d) if d == "timeout.test" => return Err(ConnectError::TimedOut),
            px_core::Host::Domain(d) if d == "forbidden.test" => {
                return Err(ConnectError::ForbiddenIp("10.0.0.1".parse().unwrap()));
            }
            px_core::Host::Domain(d) if d == "localhost" => {
                SocketAddr::from(([127, 0, 0, 1], req.target.port))
            }
            px_core::Host::Domain(_) => return Err(ConnectError::HostUnreachable),
            px_core::Host::Ip(ip) => SocketAddr::new(*ip, req.target.port),
        };
        let s = TcpStream::connect(addr)
            .await
            .map_err(ConnectError::from_io)?;
        Ok(UpstreamConn {
            local_addr: s.local_addr().map_err(ConnectError::Io)?,
            peer_addr: addr,
            stream: UpstreamStream::Tcp(s),
            speed_limit: Default::default(),
        })
    }
}

/// Knows one escaper, `default`.
struct Lookup;

impl ModuleLookup for Lookup {
    fn resolver(&self, name: &str) -> Result<Arc<Handle<dyn Resolver>>, String> {
        Err(format!("no resolver {name}"))
    }
    fn escaper(&self, name: &str) -> Result<Arc<Handle<dyn Escaper>>, String> {
        match name {
            "default" => Ok(Arc::new(Handle::new(
                "default",
                Arc::new(TestEscaper) as Arc<dyn Escaper>,
            ))),
            _ => Err(format!("escaper `{name}` does not exist")),
        }
    }
    fn user_group(&self, name: &str) -> Result<Arc<Handle<dyn UserGroup>>, String> {
        Err(format!("no user group {name}"))
    }
    fn auditor(&self, name: &str) -> Result<Arc<Handle<dyn Auditor>>, String> {
        Err(format!("no auditor {name}"))
    }
    fn server(&self, name: &str) -> Result<Arc<Handle<dyn Server>>, String> {
        Err(format!("no server {name}"))
    }
}

/// Parses a server document as the daemon would (`name` and `type` taken first).
pub(super) fn parse_config(yaml: &str) -> Result<HttpProxyConfig, ConfigError> {
    let node = load_str(yaml, Path::new("test.yaml"))?;
    let mut map = Val::root(&node, "server[http]").map()?;
    let name = map.required("name")?.as_text()?;
    map.required("type")?;
    HttpProxyConfig::parse(&name, map, &Lookup)
}

/// Starts the proxy on port 0 with extra config lines; returns its address.
async fn start_proxy(extra: &str) -> SocketAddr {
    let cfg = Arc::new(
        parse_config(&format!(
            "name: http\ntype: http_proxy\nescaper: default\n{extra}"
        ))
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, peer)) = listener.accept().await {
            let info = px_core::ClientInfo::direct(peer, addr);
            tokio::spawn(super::conn::serve(Arc::clone(&cfg), s, info));
        }
    });
    addr
}

/// An origin server; counts accepted connections. Paths pick behaviours:
/// `/chunked` answers chunked, `/close` answers close-delimited, `/head` echoes the request head,
/// `/reject` answers 417 without reading the body; anything else echoes `METHOD body-length`.
async fn start_origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(origin_conn(s));
        }
    });
    (addr, conns)
}

async fn origin_conn(s: TcpStream) {
    let mut io = BufReader::new(s);
    loop {
        let Ok(head) = RequestHead::read(&mut io, &HeadLimits::default()).await else {
            return;
        };
        let px_http::RequestTarget::Origin(path) = &head.target else {
            panic!("origin got a non-origin-form target: {:?}", head.target);
        };
        let path = path.clone();
        if path == "/reject" {
            let _ = io
                .write_all(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
        if head.expects_continue() {
            io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .unwrap();
        }
        let framing = request_framing(&head).unwrap();
        let mut body = Vec::new();
        copy_body(&mut io, &mut body, framing, &mut Vec::new())
            .await
            .unwrap();
        let len = if framing == BodyFraming::Chunked {
            decoded_len(&body)
        } else {
            body.len()
        };
        let text = match path.as_str() {
            "/head" => {
                let mut t = String::new();
                for h in &head.headers {
                    t.push_str(&format!(
                        "{}: {}\n",
                        String::from_utf8_lossy(&h.name),
                        String::from_utf8_lossy(&h.value)
                    ));
                }
                t
            }
            _ => format!("{} {len}", head.method),
        };
        let rsp = match path.as_str() {
            "/chunked" => format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{text}\r\n0\r\n\r\n",
                text.len()
            ),
            "/close" => format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{text}"),
            _ => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nKeep-Alive: timeout=5\r\n\r\n{text}",
                text.len()
            ),
        };
        io.write_all(rsp.as_bytes()).await.unwrap();
        if path == "/close" || path == "/drop" {
            return;
        }
    }
}

/// Length of a chunked body once decoded (well-formed input only).
fn decoded_len(mut s: &[u8]) -> usize {
    let mut n = 0;
    loop {
        let nl = s.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = px_http::chunked::parse_chunk_size_line(&s[..nl]).unwrap() as usize;
        if size == 0 {
            return n;
        }
        n += size;
        s = &s[nl + 2 + size + 2..];
    }
}

/// A client connection to the proxy.
struct Client {
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(proxy: SocketAddr) -> Self {
        Client {
            io: BufReader::new(TcpStream::connect(proxy).await.unwrap()),
        }
    }

    async fn send(&mut self, raw: &str) {
        self.io.get_mut().write_all(raw.as_bytes()).await.unwrap();
    }

    /// Reads one response head (interim ones too) and its body as sent on the wire.
    async fn response(&mut self, method: Method) -> (ResponseHead, String) {
        let rsp = tokio::time::timeout(
            Duration::from_secs(10),
            ResponseHead::read(&mut self.io, &HeadLimits::default()),
        )
        .await
        .expect("response in time")
        .expect("a response");
        let framing = px_http::response_framing(&method, &rsp).unwrap();
        let mut body = Vec::new();
        copy_body(&mut self.io, &mut body, framing, &mut Vec::new())
            .await
            .unwrap();
        (rsp, String::from_utf8_lossy(&body).into_owned())
    }

    /// Whether the proxy closed the connection (EOF within a short time).
    async fn closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.io.fill_buf()).await,
            Ok(Ok(b)) if b.is_empty()
        ) || matches!(
            tokio::time::timeout(Duration::from_secs(1), self.io.fill_buf()).await,
            Ok(Err(_))
        )
    }
}

#[tokio::test]
async fn keep_alive_on_both_sides() {
    let (origin, conns) = start_origin().await;
    let proxy = start_proxy("").await;
    let mut c = Client::connect(proxy).await;
    for i in 0..3 {
        c.send(&format!(
            "GET http://{origin}/x{i} HTTP/1.1\r\nHost: {origin}\r\n\r\n"
        ))
        .await;
        let (rsp, body) = c.response(Method::Get).await;
        assert_eq!((rsp.status, body.as_str()), (200, "GET 0"));
        assert!(
            !rsp.headers.contains("keep-alive"),
            "hop-by-hop Keep-Alive forwarded"
        );
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "upstream connection not reused"
    );
    // pipelined requests come back in order
    c.send(&format!(
        "HEAD http://{origin}/ HTTP/1.1\r\n\r\nPOST http://{origin}/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    ))
    .await;
    let (rsp, body) = c.response(Method::Head).await;
    assert_eq!((rsp.status, body.as_str()), (200, ""));
    let (_, body) = c.response(Method::Post).await;
    assert_eq!(body, "POST 3");
}

#[tokio::test]
async fn bodies_in_every_framing() {
    let (origin, _) = start_origin().await;
    let proxy = start_proxy("").await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "POST http://{origin}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    ))
    .await;
    assert_eq!(c.response(Method::Post).await.1, "POST 11");
    c.send(&format!("GET http://{origin}/chunked HTTP/1.1\r\n\r\n"))
        .await;
    let (rsp, body) = c.response(Method::Get).await;
    assert_eq!(
        rsp.headers.get("transfer-encoding").map(|v| &v[..]),
        Some(&b"chunked"[..])
    );
    assert_eq!(
        body, "5\r\nGET 0\r\n0\r\n\r\n",
        "chunks pass through unchanged"
    );
    c.send(&format!("GET http://{origin}/close HTTP/1.1\r\n\r\n"))
        .await;
    let (rsp, body) = c.response(Method::Get).await;
    assert_eq!(body, "GET 0");
    assert_eq!(
        rsp.headers.get("connection").map(|v| &v[..]),
        Some(&b"close"[..])
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn large_body_round_trip() {
    let (origin, _) = start_origin().await;
    let proxy = start_proxy("tcp_copy_buffer_size: 4K\n").await;
    let mut c = Client::connect(proxy).await;
    let body = vec![b'z'; 3 << 20];
    c.send(&format!(
        "PUT http://{origin}/ HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ))
    .await;
    c.io.get_mut().write_all(&body).await.unwrap();
    assert_eq!(
        c.response(Method::Put).await.1,
        format!("PUT {}", body.len())
    );
}

#[tokio::test]
async fn hop_by_hop_fields_are_dropped() {
    let (origin, _) = start_origin().await;
    let proxy = start_proxy("steal_forwarded_for: true\n").await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "GET http://{origin}/head HTTP/1.1\r\nHost: wrong.example\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\
         Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\n\
         Accept: */*\r\n\r\n"
    ))
    .await;
    let (_, body) = c.response(Method::Get).await;
    assert_eq!(
        body,
        format!("Host: {origin}\nAccept: */*\nConnection: keep-alive\n")
    );
}

#[tokio::test]
async fn expect_continue_is_relayed() {
    let (origin, _) = start_origin().await;
    let proxy = start_proxy("").await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "POST http://{origin}/ HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    ))
    .await;
    let (rsp, _) = c.response(Method::Post).await;
    assert_eq!(rsp.status, 100);
    c.send("data").await;
    let (rsp, body) = c.response(Method::Post).await;
    assert_eq!((rsp.status, body.as_str()), (200, "POST 4"));
    // a final status without 100: the body is never sent and the connection closes
    c.send(&format!(
        "POST http://{origin}/reject HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    ))
    .await;
    let (rsp, _) = c.response(Method::Post).await;
    assert_eq!(rsp.status, 417);
    assert!(c.closed().await);
}

#[tokio::test]
async fn http10_client_closes_by_default() {
    let (origin, _) = start_origin().await;
    let proxy = start_proxy("").await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!("GET http://{origin}/ HTTP/1.0\r\n\r\n"))
        .await;
    let (rsp, body) = c.response(Method::Get).await;
    assert_eq!((rsp.status, body.as_str()), (200, "GET 0"));
    assert!(c.closed().await);
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "GET http://{origin}/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    ))
    .await;
    c.response(Method::Get).await;
    c.send(&format!("GET http://{origin}/ HTTP/1.0\r\n\r\n"))
        .await;
    assert_eq!(c.response(Method::Get).await.0.status, 200);
}

#[tokio::test]
async fn connect_tunnel() {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = echo.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let proxy = start_proxy("").await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "CONNECT {echo_addr} HTTP/1.1\r\nHost: {echo_addr}\r\n\r\nearly"
    ))
    .await;
    let rsp = ResponseHead::read(&mut c.io, &HeadLimits::default())
        .await
        .unwrap();
    assert_eq!(
        (rsp.status, &rsp.reason[..]),
        (200, &b"Connection established"[..])
    );
    c.send(" bytes").await;
    let mut got = [0u8; 11];
    c.io.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"early bytes");
}

/// Sends `raw` on a fresh connection and returns the status of the reply.
async fn status_of(proxy: SocketAddr, raw: &str) -> u16 {
    let mut c = Client::connect(proxy).await;
    c.send(raw).await;
    let (rsp, body) = c.response(Method::Get).await;
    assert!(!body.is_empty(), "error replies carry a reason");
    assert_eq!(
        rsp.headers.get("connection").map(|v| &v[..]),
        Some(&b"close"[..])
    );
    rsp.status
}

#[tokio::test]
async fn error_statuses() {
    let (origin, _) = start_origin().await;
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = start_proxy(&format!(
        "req_header_max_size: 1K\ndst_port_filter: [{}, {closed_port}, 80, 443]\n",
        origin.port()
    ))
    .await;
    assert_eq!(status_of(proxy, "GARBAGE\r\n\r\n").await, 400);
    assert_eq!(
        status_of(proxy, "GET /relative HTTP/1.1\r\nHost: x\r\n\r\n").await,
        400
    );
    assert_eq!(
        status_of(proxy, "GET http://h/ HTTP/2.0\r\n\r\n").await,
        505
    );
    assert_eq!(
        status_of(proxy, "GET ftp://localhost/ HTTP/1.1\r\n\r\n").await,
        501
    );
    let big = format!(
        "GET http://{origin}/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    assert_eq!(status_of(proxy, &big).await, 431);
    assert_eq!(
        status_of(proxy, "GET http://localhost:1/ HTTP/1.1\r\n\r\n").await,
        403
    );
    assert_eq!(
        status_of(
            proxy,
            &format!("GET http://127.0.0.1:{closed_port}/ HTTP/1.1\r\n\r\n")
        )
        .await,
        502
    );
    assert_eq!(
        status_of(proxy, "GET http://timeout.test/ HTTP/1.1\r\n\r\n").await,
        504
    );
    assert_eq!(
        status_of(proxy, "CONNECT forbidden.test:443 HTTP/1.1\r\n\r\n").await,
        403
    );
    let conflicting =
        format!("POST http://{origin}/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(status_of(proxy, &conflicting).await, 400);
    // the daemon still serves after all that
    let mut c = Client::connect(proxy).await;
    c.send(&format!("GET http://{origin}/ HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(c.response(Method::Get).await.0.status, 200);
}

#[tokio::test]
async fn ingress_filter_and_timeouts() {
    let proxy = start_proxy("ingress_network_filter: {default: allow, deny: 127.0.0.1}\n").await;
    assert_eq!(
        status_of(proxy, "GET http://localhost/ HTTP/1.1\r\n\r\n").await,
        403
    );

    let proxy =
        start_proxy("req_header_recv_timeout: 300ms\npipeline_read_idle_timeout: 300ms\n").await;
    let mut c = Client::connect(proxy).await;
    let (rsp, _) = c.response(Method::Get).await;
    assert_eq!(rsp.status, 408);
    let mut c = Client::connect(proxy).await;
    c.send("GET http://localhost/ HTTP/1.1\r\n").await;
    assert_eq!(c.response(Method::Get).await.0.status, 408);
    // an idle keep-alive connection is closed without a reply
    let (origin, _) = start_origin().await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!("GET http://{origin}/ HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(c.response(Method::Get).await.0.status, 200);
    assert!(c.closed().await);
}

#[tokio::test]
async fn closed_kept_connection_is_replaced() {
    let (origin, conns) = start_origin().await;
    let proxy = start_proxy("").await;
    let mut c = Client::connect(proxy).await;
    // `/drop` answers with keep-alive framing, then closes anyway
    c.send(&format!("GET http://{origin}/drop HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(c.response(Method::Get).await.0.status, 200);
    for _ in 0..2 {
        c.send(&format!("GET http://{origin}/ HTTP/1.1\r\n\r\n"))
            .await;
        assert_eq!(c.response(Method::Get).await.1, "GET 0");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn custom_host_can_be_refused() {
    let (origin, _) = start_origin().await;
    let proxy = start_proxy("allow_custom_host: false\n").await;
    let raw = format!("GET http://{origin}/ HTTP/1.1\r\nHost: other.example\r\n\r\n");
    assert_eq!(status_of(proxy, &raw).await, 400);
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n"
    ))
    .await;
    assert_eq!(c.response(Method::Get).await.0.status, 200);
}

#[tokio::test]
async fn speed_limit_slows_forwarding() {
    let (origin, _) = start_origin().await;
    // 20000 bytes per 16 ms slice: 100 KB need at least four more slices
    let proxy =
        start_proxy("tcp_sock_speed_limit: {shift_millis: 4, upload: 20000, download: 20000}\n")
            .await;
    let mut c = Client::connect(proxy).await;
    let body = vec![b'x'; 100_000];
    let start = std::time::Instant::now();
    c.send(&format!(
        "PUT http://{origin}/ HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ))
    .await;
    c.io.get_mut().write_all(&body).await.unwrap();
    assert_eq!(c.response(Method::Put).await.1, "PUT 100000");
    assert!(
        start.elapsed() >= Duration::from_millis(60),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn stalled_body_ends_after_task_idle_time() {
    let (origin, _) = start_origin().await;
    // the shortest idle time g3proxy accepts: 2 s x 1
    let proxy = start_proxy("task_idle_check_interval: 2s\ntask_idle_max_count: 1\n").await;
    let mut c = Client::connect(proxy).await;
    c.send(&format!(
        "PUT http://{origin}/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"
    ))
    .await;
    let start = std::time::Instant::now();
    let (rsp, _) = c.response(Method::Put).await;
    let took = start.elapsed();
    assert_eq!(rsp.status, 408);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
}

/// The size of the future an async fn returns.
fn future_size<A, B, C, R, F: Fn(A, B, C) -> R>(_: F) -> usize {
    std::mem::size_of::<R>()
}

/// A connection's future lives as long as the connection (a CONNECT tunnel's too), so its size
/// is most of what an idle tunnel costs: TLS and per-request states are boxed out of it.
#[test]
fn connection_future_stays_small() {
    use tokio::net::TcpStream;
    let size = future_size(super::tls::serve::<TcpStream>);
    assert!(size <= 4096, "http_proxy connection future is {size} bytes");
}
