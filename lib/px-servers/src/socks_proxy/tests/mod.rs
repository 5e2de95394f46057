//! In-process tests of the socks_proxy server: real sockets on loopback, a mock escaper that
//! connects directly and fakes the failures a real one reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod config;
mod tcp;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use px_core::{
    ClientInfo, ConnectError, Escaper, Handle, Host, ModuleLookup, ResolveError, Server,
    TcpConnectRequest, UdpRelay, UdpRelayRequest, UpstreamAddr, UpstreamConn, UpstreamStream,
};
use px_socks::{AuthMethod, Socks5Reply, Socks5Request, SocksAddr};
use px_yaml::{ConfigError, Val, load_str};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Where the mock escaper sends a fake name: its real address, or the error it reports.
fn fake_resolve(target: &UpstreamAddr) -> Result<SocketAddr, ConnectError> {
    match &target.host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, target.port)),
        Host::Domain(d) => match d.as_str() {
            "localhost" => Ok(SocketAddr::from(([127, 0, 0, 1], target.port))),
            "forbidden.test" => Err(ConnectError::ForbiddenIp([10, 0, 0, 1].into())),
            "timeout.test" => Err(ConnectError::TimedOut),
            "netunreach.test" => Err(ConnectError::NetworkUnreachable),
            "hostunreach.test" => Err(ConnectError::HostUnreachable),
            other => Err(ConnectError::Resolve(ResolveError::NotFound(other.into()))),
        },
    }
}

struct MockEscaper {
    udp: bool,
    /// The speed limit its TCP connections carry.
    tcp_limit: px_core::value::SpeedLimit,
}

struct MockUdp(UdpSocket);

#[async_trait]
impl UdpRelay for MockUdp {
    async fn send_to(&self, payload: &[u8], target: &UpstreamAddr) -> Result<(), ConnectError> {
        let to = fake_resolve(target)?;
        self.0
            .send_to(payload, to)
            .await
            .map(|_| ())
            .map_err(ConnectError::from_io)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }
}

#[async_trait]
impl Escaper for MockEscaper {
    fn name(&self) -> &str {
        "default"
    }

    fn kind(&self) -> &'static str {
        "mock"
    }

    async fn connect_tcp(&self, req: &TcpConnectRequest) -> Result<UpstreamConn, ConnectError> {
        let to = fake_resolve(&req.target)?;
        let s = TcpStream::connect(to)
            .await
            .map_err(ConnectError::from_io)?;
        Ok(UpstreamConn {
            local_addr: s.local_addr().map_err(ConnectError::Io)?,
            peer_addr: to,
            stream: UpstreamStream::Tcp(s),
            speed_limit: self.tcp_limit,
        })
    }

    async fn open_udp(&self, req: &UdpRelayRequest) -> Result<Box<dyn UdpRelay>, ConnectError> {
        if !self.udp {
            return Err(ConnectError::Unsupported("udp relay"));
        }
        let ip: IpAddr = if req.client_addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        let s = UdpSocket::bind((ip, 0)).await.map_err(ConnectError::Io)?;
        Ok(Box::new(MockUdp(s)))
    }
}

/// The limit on the "slow" escaper's TCP connections: 16 KiB per 256 ms slice each way.
const SLOW_ESCAPER_LIMIT: px_core::value::SpeedLimit = px_core::value::SpeedLimit {
    shift_millis: 8,
    upload: Some(16 * 1024),
    download: Some(16 * 1024),
};

struct MockLookup;

impl ModuleLookup for MockLookup {
    fn resolver(&self, n: &str) -> Result<Arc<Handle<dyn px_core::Resolver>>, String> {
        Err(format!("no resolver {n}"))
    }
    fn escaper(&self, n: &str) -> Result<Arc<Handle<dyn Escaper>>, String> {
        let (udp, tcp_limit) = match n {
            "default" => (true, Default::default()),
            "tcponly" => (false, Default::default()),
            "slow" => (true, SLOW_ESCAPER_LIMIT),
            _ => return Err(format!("escaper {n} does not exist")),
        };
        let e: Arc<dyn Escaper> = Arc::new(MockEscaper { udp, tcp_limit });
        Ok(Arc::new(Handle::new(n, e)))
    }
    fn user_group(&self, n: &str) -> Result<Arc<Handle<dyn px_core::UserGroup>>, String> {
        Err(format!("no user group {n}"))
    }
    fn auditor(&self, n: &str) -> Result<Arc<Handle<dyn px_core::Auditor>>, String> {
        Err(format!("no auditor {n}"))
    }
    fn server(&self, n: &str) -> Result<Arc<Handle<dyn Server>>, String> {
        Err(format!("no server {n}"))
    }
}

/// Builds a server from YAML keys (after `name` and `type`).
fn build_yaml(yaml: &str) -> Result<Arc<dyn Server>, ConfigError> {
    let node = load_str(yaml, Path::new("socks.yaml"))?;
    let map = Val::root(&node, "server[socks]").map()?;
    super::build("socks", map, &MockLookup)
}

/// A server on a loopback port; each finished task is reported on `done`.
struct Proxy {
    addr: SocketAddr,
    done: mpsc::UnboundedReceiver<()>,
}

impl Proxy {
    async fn start(extra: &str) -> Proxy {
        Self::start_on("127.0.0.1:0", extra).await
    }

    async fn start_on(listen: &str, extra: &str) -> Proxy {
        Self::start_full(listen, "default", extra).await
    }

    /// A server on a loopback port using the given mock escaper.
    async fn start_with(escaper: &str, extra: &str) -> Proxy {
        Self::start_full("127.0.0.1:0", escaper, extra).await
    }

    async fn start_full(listen: &str, escaper: &str, extra: &str) -> Proxy {
        let server = build_yaml(&format!("escaper: {escaper}\n{extra}")).unwrap();
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, done) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((s, peer)) = listener.accept().await {
                let server = Arc::clone(&server);
                let tx = tx.clone();
                let local = s.local_addr().unwrap();
                tokio::spawn(async move {
                    server.serve_tcp(s, ClientInfo::direct(peer, local)).await;
                    let _ = tx.send(());
                });
            }
        });
        Proxy { addr, done }
    }

    /// Waits for one task to end.
    async fn task_ended(&mut self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.done.recv()).await,
            Ok(Some(()))
        )
    }
}

/// A TCP echo server.
async fn tcp_echo(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A UDP echo server.
async fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// Greets with "no auth" and sends a request; returns the stream and the reply.
async fn socks5(
    proxy: SocketAddr,
    command: px_socks::Socks5Command,
    target: SocksAddr,
) -> (TcpStream, Socks5Reply, SocksAddr) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut out = vec![5, 1, 0];
    Socks5Request { command, target }
        .write_to(&mut out)
        .unwrap();
    s.write_all(&out).await.unwrap();
    let mut sel = [0u8; 2];
    s.read_exact(&mut sel).await.unwrap();
    assert_eq!(
        AuthMethod::decode_selection(sel).unwrap(),
        AuthMethod::NoAuth
    );
    let (rep, bound) = tokio::time::timeout(Duration::from_secs(5), Socks5Reply::read(&mut s))
        .await
        .unwrap()
        .unwrap();
    (s, rep, bound)
}

/// Reads until EOF (or error) within `within`; true if the peer closed in time.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    let fut = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, fut).await.is_ok()
}

/// The size of the future an async fn returns.
fn future_size<A, B, C, R, F: Fn(A, B, C) -> R>(_: F) -> usize {
    std::mem::size_of::<R>()
}

/// A connection's future lives as long as its relay: the handshake, connect and UDP states
/// are boxed out of it.
#[test]
fn connection_future_stays_small() {
    use tokio::net::TcpStream;
    let size = future_size(super::SocksProxyServer::serve::<TcpStream>);
    assert!(
        size <= 4096,
        "socks_proxy connection future is {size} bytes"
    );
}
