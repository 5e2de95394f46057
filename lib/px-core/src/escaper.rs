//! The `Escaper` trait: how a task reaches its target (direct, through a proxy, routed).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::addr::UpstreamAddr;
use crate::error::ConnectError;
use crate::resolver::ResolveStrategy;
use crate::value::{SpeedLimit, UdpSpeedLimit};

/// Any bidirectional byte stream a proxy can relay (TLS streams, wrapped sockets).
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> AsyncStream for T {}

/// What a server asks an escaper for: a TCP connection to a target.
#[derive(Debug, Clone)]
pub struct TcpConnectRequest {
    /// The target as the client named it.
    pub target: UpstreamAddr,
    /// The client's address, for logs and hash-based egress selection.
    pub client_addr: SocketAddr,
    /// A per-user or per-site override of the escaper's resolve strategy.
    pub resolve_strategy: Option<ResolveStrategy>,
}

/// The upstream side of a connection: a plain TCP socket (eligible for splice)
/// or any other stream (TLS to a next proxy, ...).
pub enum UpstreamStream {
    /// A plain TCP socket.
    Tcp(TcpStream),
    /// Anything else that carries bytes.
    Other(Box<dyn AsyncStream>),
}

/// A connection an escaper made, with what a relay needs to know about it.
pub struct UpstreamConn {
    /// The stream to relay over.
    pub stream: UpstreamStream,
    /// Our local address on the upstream socket (the egress address).
    pub local_addr: SocketAddr,
    /// The address actually connected to (the target, or the next proxy).
    pub peer_addr: SocketAddr,
    /// The escaper's per-socket speed limit for this connection.
    pub speed_limit: SpeedLimit,
}

/// What a server asks an escaper for: a UDP relay for one client association.
#[derive(Debug, Clone)]
pub struct UdpRelayRequest {
    /// The client's address (the TCP control connection's peer).
    pub client_addr: SocketAddr,
    /// A per-user override of the escaper's resolve strategy.
    pub resolve_strategy: Option<ResolveStrategy>,
}

/// The upstream side of a UDP association: sends to any target, receives from any.
#[async_trait]
pub trait UdpRelay: Send + Sync {
    /// Sends one datagram to a target (resolving and filtering it first).
    async fn send_to(&self, payload: &[u8], target: &UpstreamAddr) -> Result<(), ConnectError>;
    /// Receives one datagram and the address it came from.
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)>;
    /// The escaper's per-socket UDP speed limit.
    fn speed_limit(&self) -> UdpSpeedLimit {
        UdpSpeedLimit::default()
    }
}

/// An escaper module: the egress side of every task.
#[async_trait]
pub trait Escaper: Send + Sync {
    /// The module name.
    fn name(&self) -> &str;

    /// The module type as written in config (`direct_fixed`, ...).
    fn kind(&self) -> &'static str;

    /// Connects to the target over TCP.
    async fn connect_tcp(&self, req: &TcpConnectRequest) -> Result<UpstreamConn, ConnectError>;

    /// Opens a UDP relay for one client association.
    async fn open_udp(&self, _req: &UdpRelayRequest) -> Result<Box<dyn UdpRelay>, ConnectError> {
        Err(ConnectError::Unsupported("udp relay"))
    }

    /// Takes dynamic data pushed by `g3proxy-ctl escaper NAME publish JSON`.
    fn publish(&self, _json: &str) -> Result<(), String> {
        Err(format!(
            "escaper type {} does not support publish",
            self.kind()
        ))
    }
}

/// A shared escaper object.
pub type ArcEscaper = Arc<dyn Escaper>;
