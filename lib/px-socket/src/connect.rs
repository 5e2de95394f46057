//! One outgoing TCP connect: socket options, an optional bind address per
//! family, a timeout, and errors mapped to [`ConnectError`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use px_core::ConnectError;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use crate::opts::{TcpKeepaliveOpts, TcpMiscOpts};

/// What to bind an outgoing socket of one family to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BindIp {
    /// Let the kernel choose.
    #[default]
    Any,
    /// Bind to this address (port 0).
    Ip(IpAddr),
    /// This family must not be used (for example: bind IPs are configured,
    /// none of this family).
    Unavailable,
}

/// The bind choice for each family, picked per connection by the escaper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bind {
    /// For IPv4 targets.
    pub v4: BindIp,
    /// For IPv6 targets.
    pub v6: BindIp,
}

impl Bind {
    /// The bind choice for a target address.
    pub fn for_addr(&self, addr: &SocketAddr) -> BindIp {
        if addr.is_ipv4() { self.v4 } else { self.v6 }
    }
}

/// Connects to one address: applies `misc` (TCP_NODELAY defaults to on) and
/// `keepalive`, binds when asked, and gives up after `timeout`.
pub async fn connect_tcp(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    misc: &TcpMiscOpts,
    keepalive: &TcpKeepaliveOpts,
) -> Result<TcpStream, ConnectError> {
    // non-blocking from the start: saves the two fcntl calls of set_nonblocking per connect
    let kind = Type::STREAM.nonblocking();
    let s = Socket::new(Domain::for_address(addr), kind, Some(Protocol::TCP))
        .map_err(ConnectError::Io)?;
    misc.apply(&s, addr.is_ipv6(), true)
        .map_err(ConnectError::Io)?;
    keepalive.apply(&s).map_err(ConnectError::Io)?;
    if let Some(ip) = bind {
        s.bind(&SocketAddr::new(ip, 0).into())
            .map_err(ConnectError::Io)?;
    }
    let std_stream: std::net::TcpStream = s.into();
    let socket = TcpSocket::from_std_stream(std_stream);
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ConnectError::from_io(e)),
        Err(_) => Err(ConnectError::TimedOut),
    }
}

fn rank(e: &ConnectError) -> u8 {
    use px_core::ResolveError as R;
    match e {
        ConnectError::Refused => 9,
        ConnectError::TimedOut => 8,
        ConnectError::HostUnreachable => 7,
        ConnectError::Io(_) => 6,
        ConnectError::NetworkUnreachable => 5,
        ConnectError::ForbiddenIp(_) | ConnectError::Forbidden(_) => 4,
        ConnectError::Resolve(R::Refused) => 3,
        ConnectError::Resolve(R::InvalidName) => 3,
        ConnectError::Resolve(R::Timeout) => 2,
        ConnectError::Resolve(R::ServerFailure(_)) => 2,
        ConnectError::Resolve(R::NotFound(_)) => 1,
        ConnectError::Unsupported(_) => 0,
    }
}

/// Keeps the more informative of two errors: an answer from the target
/// (refused) over a timeout, over unreachable, over a local failure, over a
/// policy refusal, over a resolve failure. On a tie the earlier one stays.
pub fn more_informative(kept: Option<ConnectError>, new: ConnectError) -> ConnectError {
    match kept {
        Some(k) if rank(&k) >= rank(&new) => k,
        _ => new,
    }
}
