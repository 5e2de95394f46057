//! The `Server` trait: a listener-side module that serves client connections.

use std::net::SocketAddr;

use async_trait::async_trait;
use tokio::net::TcpStream;

use crate::escaper::AsyncStream;
use crate::value::ListenConfig;

/// Who a connection came from.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The client address used for ACLs and logs (from PROXY protocol when present).
    pub peer_addr: SocketAddr,
    /// The address our socket is bound to.
    pub local_addr: SocketAddr,
    /// The TCP peer address of the socket, before any PROXY protocol header.
    pub socket_peer_addr: SocketAddr,
}

impl ClientInfo {
    /// Info for a socket accepted directly (no PROXY protocol).
    pub fn direct(peer_addr: SocketAddr, local_addr: SocketAddr) -> Self {
        ClientInfo {
            peer_addr,
            local_addr,
            socket_peer_addr: peer_addr,
        }
    }
}

/// A client stream handed from a port server to the next server.
pub enum AcceptedStream {
    /// A plain TCP socket.
    Tcp(TcpStream),
    /// A stream with an outer layer already removed (TLS, PROXY protocol with buffered bytes).
    Other(Box<dyn AsyncStream>),
}

/// A server module.
#[async_trait]
pub trait Server: Send + Sync {
    /// The module name.
    fn name(&self) -> &str;

    /// The module type as written in config (`http_proxy`, ...).
    fn kind(&self) -> &'static str;

    /// The listen socket config, when this server listens by itself.
    fn listen(&self) -> Option<&ListenConfig>;

    /// Serves a client accepted on this server's own listener; returns when the task ends.
    async fn serve_tcp(&self, stream: TcpStream, client: ClientInfo);

    /// Serves a client stream handed on by a port server.
    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        match stream {
            AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
            AcceptedStream::Other(_) => {
                log::warn!(
                    "server {} ({}) cannot serve a stream from a port server",
                    self.name(),
                    self.kind()
                );
            }
        }
    }
}
