//! Listening sockets: a TCP listener from a [`ListenConfig`] (SO_REUSEADDR,
//! optional SO_REUSEPORT, backlog, IPV6_V6ONLY, SO_MARK), and bound UDP sockets.

use std::io;
use std::net::SocketAddr;

use px_core::value::ListenConfig;
use socket2::{Domain, Protocol, Socket, Type};

use crate::opts::UdpMiscOpts;

/// Binds a non-blocking TCP listener; SO_REUSEPORT is set when the config asks
/// for more than one instance. Wrap it with `tokio::net::TcpListener::from_std`.
pub fn bind_tcp_listener(cfg: &ListenConfig) -> io::Result<std::net::TcpListener> {
    bind_tcp_listener_opts(cfg, cfg.instance > 1)
}

/// Binds a non-blocking TCP listener, with SO_REUSEPORT when `reuse_port`
/// (one listener per worker on the same address).
pub fn bind_tcp_listener_opts(
    cfg: &ListenConfig,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let addr = cfg.address;
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(cfg.ipv6_only)?;
    }
    if let Some(mark) = cfg.netfilter_mark {
        s.set_mark(mark)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    let backlog = i32::try_from(cfg.backlog).unwrap_or(i32::MAX);
    s.listen(backlog)?;
    Ok(s.into())
}

/// Binds a non-blocking UDP socket with misc options, ready for tokio
/// (`tokio::net::UdpSocket::from_std`). For `[::]` binds, IPV6_V6ONLY is cleared
/// so IPv4-mapped peers work too.
pub fn bind_udp_socket(addr: SocketAddr, misc: &UdpMiscOpts) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        s.set_only_v6(false)?;
    }
    misc.apply(&s, addr.is_ipv6())?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reuse_port_allows_two_listeners() {
        let mut cfg = ListenConfig::new("127.0.0.1:0".parse().unwrap());
        cfg.instance = 2;
        cfg.backlog = 16;
        let a = bind_tcp_listener(&cfg).unwrap();
        cfg.address = a.local_addr().unwrap();
        let b = bind_tcp_listener(&cfg).unwrap();
        assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
        // without reuseport the same address is taken
        assert!(bind_tcp_listener_opts(&cfg, false).is_err());
    }

    #[test]
    fn v6_only_listener() {
        let mut cfg = ListenConfig::new("[::1]:0".parse().unwrap());
        cfg.ipv6_only = true;
        match bind_tcp_listener(&cfg) {
            Ok(l) => assert!(l.local_addr().unwrap().is_ipv6()),
            Err(e) => eprintln!("no IPv6 loopback here: {e}"),
        }
    }
}
