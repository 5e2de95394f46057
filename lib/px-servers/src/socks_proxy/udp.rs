//! SOCKS5 UDP ASSOCIATE, in g3proxy's two modes.
//!
//! - `enable_udp_associate: true` (standard UDP ASSOCIATE): each client datagram names its own
//!   target; replies carry the address they came from.
//! - otherwise, g3proxy's simplified "UDP connect": the first datagram's target becomes the only
//!   peer; datagrams to other targets are dropped and only that peer's replies are relayed, each
//!   headed with the target as the client wrote it. A first target refused by policy, or that the
//!   escaper cannot send to, ends the association.
//!
//! The client-side UDP socket is bound on the IP of the TCP connection's local address (with
//! `udp_socket_buffer` applied), and the reply tells the client that IP, mapped through
//! `transmute_udp_echo_ip`, with the bound port. The client's DST.ADDR hint limits who may use the
//! association: its IP (the TCP peer's IP when the hint is all-zero, as PySocks sends) and its port
//! when non-zero. The first valid datagram from a matching source locks the association to that
//! exact source address. The association ends when the TCP control connection closes, when no
//! datagram arrives within `udp_client_initial_timeout`, or after the idle timeout
//! (`task_idle_check_interval` × `task_idle_max_count`). Fragmented datagrams (FRAG ≠ 0), bad
//! headers and payloads over `udp_relay_packet_size` are dropped.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use px_core::value::UdpSpeedLimit;
use px_core::{ClientInfo, ConnectError, UdpRelay, UdpRelayRequest, UpstreamAddr, UserCtx};
use px_socks::{
    Socks5Reply, SocksAddr, UDP_HEADER_MAX_LEN, decode_udp_header, encode_udp_header_before,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::UdpSocket;

use super::config::{SocketBufferConfig, SocksProxyConfig};
use super::limit::DatagramLimiter;
use super::tcp_connect::{CONNECT_GUARD, reply_for, upstream_of};
use crate::common::check_target;
use crate::common::user::{TaskUser, udp_limit};

/// How an association ended.
#[derive(Debug)]
pub(crate) enum UdpEnd {
    /// The TCP control connection closed (or failed).
    ControlClosed,
    /// No datagram moved for the idle timeout.
    Idle,
    /// The client sent no datagram within `udp_client_initial_timeout`.
    NoClientDatagram,
    /// The client-side UDP socket failed.
    ClientIo(io::Error),
    /// The escaper's UDP relay failed.
    RemoteIo(io::Error),
    /// UDP connect: the first target is refused by the server's rules.
    Denied(String),
    /// UDP connect: the escaper could not send to the first target.
    Upstream(ConnectError),
}

impl std::fmt::Display for UdpEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UdpEnd::ControlClosed => f.write_str("control connection closed"),
            UdpEnd::Idle => f.write_str("idle"),
            UdpEnd::NoClientDatagram => f.write_str("no datagram from the client"),
            UdpEnd::ClientIo(e) => write!(f, "client socket error: {e}"),
            UdpEnd::RemoteIo(e) => write!(f, "remote socket error: {e}"),
            UdpEnd::Denied(d) => write!(f, "denied: {d}"),
            UdpEnd::Upstream(e) => write!(f, "upstream: {e}"),
        }
    }
}

/// Binds the client-facing UDP socket on `ip` with the configured buffer sizes.
pub(crate) fn bind_client_socket(ip: IpAddr, buf: SocketBufferConfig) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(n) = buf.recv {
        s.set_recv_buffer_size(n)?;
    }
    if let Some(n) = buf.send {
        s.set_send_buffer_size(n)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Errors a UDP socket reports for an earlier datagram (ICMP); the socket is still usable.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The one peer of a UDP connect association.
struct FixedPeer {
    /// The target as the client wrote it, echoed in reply headers.
    target: SocksAddr,
    /// The same target for the escaper.
    upstream: UpstreamAddr,
    /// For a domain target: the first address replies came from.
    peer: OnceLock<SocketAddr>,
}

impl FixedPeer {
    fn accepts(&self, from: SocketAddr) -> bool {
        match self.upstream.socket_addr() {
            Some(sa) => canonical(sa) == from,
            None => *self.peer.get_or_init(|| from) == from,
        }
    }
}

/// One association's shared state, used by both directions.
struct Session<'a> {
    cfg: &'a SocksProxyConfig,
    /// The server's `udp_sock_speed_limit` and the user's, the stricter each way.
    udp_limit: UdpSpeedLimit,
    expect_ip: IpAddr,
    expect_port: Option<u16>,
    client_addr: OnceLock<SocketAddr>,
    fixed: OnceLock<FixedPeer>,
    packets: AtomicU64,
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
}

impl<'a> Session<'a> {
    fn new(
        cfg: &'a SocksProxyConfig,
        client: &ClientInfo,
        hint: &SocksAddr,
        user: Option<&UserCtx>,
    ) -> Self {
        let (expect_ip, expect_port) = match hint {
            SocksAddr::Ip(sa) if !sa.ip().is_unspecified() => (sa.ip().to_canonical(), sa.port()),
            _ => (client.peer_addr.ip().to_canonical(), hint.port()),
        };
        Session {
            cfg,
            udp_limit: udp_limit(cfg.udp_sock_speed_limit, user),
            expect_ip,
            expect_port: (expect_port != 0).then_some(expect_port),
            client_addr: OnceLock::new(),
            fixed: OnceLock::new(),
            packets: AtomicU64::new(0),
            up_bytes: AtomicU64::new(0),
            down_bytes: AtomicU64::new(0),
        }
    }

    /// True when `from` may use the association (before or after it is locked).
    fn client_matches(&self, from: SocketAddr) -> bool {
        match self.client_addr.get() {
            Some(locked) => *locked == from,
            None => {
                from.ip() == self.expect_ip && self.expect_port.is_none_or(|p| p == from.port())
            }
        }
    }

    fn name(&self) -> &str {
        &self.cfg.common.name
    }

    async fn client_to_remote(&self, sock: &UdpSocket, relay: &dyn UdpRelay) -> UdpEnd {
        let packet_size = self.cfg.udp_relay_packet_size;
        let mut buf = vec![0u8; UDP_HEADER_MAX_LEN + packet_size + 1];
        let sl = self.udp_limit;
        let mut recv_limit =
            DatagramLimiter::new(sl.upload_bytes, sl.upload_packets, sl.shift_millis);
        let el = relay.speed_limit();
        let mut send_limit =
            DatagramLimiter::new(el.upload_bytes, el.upload_packets, el.shift_millis);
        let mut since_yield = 0usize;
        loop {
            recv_limit.ready().await;
            let (n, from) = match sock.recv_from(&mut buf).await {
                Ok((n, from)) => (n, canonical(from)),
                Err(e) if transient(&e) => continue,
                Err(e) => return UdpEnd::ClientIo(e),
            };
            if !self.client_matches(from) {
                log::debug!(
                    "socks {}: udp datagram from stranger {from} dropped",
                    self.name()
                );
                continue;
            }
            recv_limit.consume(n);
            let (target, hlen) = match decode_udp_header(&buf[..n]) {
                Ok(x) => x,
                Err(e) => {
                    log::debug!(
                        "socks {}: udp datagram from {from} dropped: {e}",
                        self.name()
                    );
                    continue;
                }
            };
            let _ = self.client_addr.set(from);
            let payload = &buf[hlen..n];
            if payload.len() > packet_size {
                log::debug!(
                    "socks {}: udp datagram over {packet_size} bytes dropped",
                    self.name()
                );
                continue;
            }
            let Some(upstream) = upstream_of(&target) else {
                log::debug!(
                    "socks {}: udp target {target} is not a valid host",
                    self.name()
                );
                continue;
            };
            let associate = self.cfg.udp_associate;
            if associate {
                if let Err(d) = check_target(&self.cfg.common, &upstream) {
                    log::debug!("socks {}: udp datagram dropped: {d}", self.name());
                    continue;
                }
            } else {
                match self.fixed.get() {
                    None => {
                        if let Err(d) = check_target(&self.cfg.common, &upstream) {
                            return UdpEnd::Denied(d.to_string());
                        }
                        let _ = self.fixed.set(FixedPeer {
                            target,
                            upstream: upstream.clone(),
                            peer: OnceLock::new(),
                        });
                    }
                    Some(f) if f.upstream != upstream => {
                        log::debug!(
                            "socks {}: udp connect datagram to {upstream} dropped, peer is {}",
                            self.name(),
                            f.upstream
                        );
                        continue;
                    }
                    Some(_) => {}
                }
            }
            send_limit.ready().await;
            match relay.send_to(payload, &upstream).await {
                Ok(()) => {
                    send_limit.consume(payload.len());
                    self.packets.fetch_add(1, Ordering::Relaxed);
                    self.up_bytes
                        .fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
                Err(e) if associate => {
                    log::debug!("socks {}: udp send to {upstream} failed: {e}", self.name());
                }
                Err(e) => return UdpEnd::Upstream(e),
            }
            since_yield += n;
            if since_yield >= self.cfg.udp_relay_yield_size {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    async fn remote_to_client(&self, sock: &UdpSocket, relay: &dyn UdpRelay) -> UdpEnd {
        let packet_size = self.cfg.udp_relay_packet_size;
        let mut buf = vec![0u8; UDP_HEADER_MAX_LEN + packet_size + 1];
        let el = relay.speed_limit();
        let mut recv_limit =
            DatagramLimiter::new(el.download_bytes, el.download_packets, el.shift_millis);
        let sl = self.udp_limit;
        let mut send_limit =
            DatagramLimiter::new(sl.download_bytes, sl.download_packets, sl.shift_millis);
        let mut since_yield = 0usize;
        loop {
            recv_limit.ready().await;
            let (n, from) = match relay.recv_from(&mut buf[UDP_HEADER_MAX_LEN..]).await {
                Ok((n, from)) => (n, canonical(from)),
                Err(e) if transient(&e) => continue,
                Err(e) => return UdpEnd::RemoteIo(e),
            };
            recv_limit.consume(n);
            if n > packet_size {
                log::debug!(
                    "socks {}: udp reply over {packet_size} bytes dropped",
                    self.name()
                );
                continue;
            }
            let Some(client) = self.client_addr.get().copied() else {
                continue;
            };
            let source;
            let src: &SocksAddr = if self.cfg.udp_associate {
                source = SocksAddr::Ip(from);
                &source
            } else {
                match self.fixed.get() {
                    Some(f) if f.accepts(from) => &f.target,
                    _ => {
                        log::debug!("socks {}: udp reply from {from} dropped", self.name());
                        continue;
                    }
                }
            };
            let Ok(start) = encode_udp_header_before(src, &mut buf, UDP_HEADER_MAX_LEN) else {
                continue;
            };
            send_limit.ready().await;
            let datagram = &buf[start..UDP_HEADER_MAX_LEN + n];
            match sock.send_to(datagram, client).await {
                Ok(_) => {
                    send_limit.consume(datagram.len());
                    self.packets.fetch_add(1, Ordering::Relaxed);
                    self.down_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    log::debug!(
                        "socks {}: udp send to client {client} failed: {e}",
                        self.name()
                    );
                }
            }
            since_yield += n;
            if since_yield >= self.cfg.udp_relay_yield_size {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    async fn run<C>(&self, ctl: &mut C, sock: &UdpSocket, relay: &dyn UdpRelay) -> UdpEnd
    where
        C: AsyncRead + Unpin,
    {
        let c2r = self.client_to_remote(sock, relay);
        let r2c = self.remote_to_client(sock, relay);
        let initial = tokio::time::sleep(self.cfg.udp_client_initial_timeout);
        tokio::pin!(c2r, r2c, initial);
        let interval = self.cfg.task_idle_check_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut ctl_buf = [0u8; 256];
        let mut last = 0u64;
        let mut idle = 0u32;
        loop {
            tokio::select! {
                r = ctl.read(&mut ctl_buf) => match r {
                    Ok(0) | Err(_) => return UdpEnd::ControlClosed,
                    Ok(_) => {} // nothing is expected on the control connection: ignore it
                },
                end = &mut c2r => return end,
                end = &mut r2c => return end,
                _ = &mut initial, if self.client_addr.get().is_none() => {
                    return UdpEnd::NoClientDatagram;
                }
                _ = ticker.tick() => {
                    let now = self.packets.load(Ordering::Relaxed);
                    if now == last {
                        idle += 1;
                        if idle >= self.cfg.task_idle_max_count {
                            return UdpEnd::Idle;
                        }
                    } else {
                        idle = 0;
                        last = now;
                    }
                }
            }
        }
    }
}

async fn reply<S>(
    cfg: &SocksProxyConfig,
    stream: &mut S,
    code: Socks5Reply,
    bound: &SocksAddr,
) -> bool
where
    S: AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(cfg.negotiation_timeout, code.write(stream, bound)).await,
        Ok(Ok(()))
    )
}

/// Serves a SOCKS5 UDP ASSOCIATE whose request has been read.
pub(crate) async fn serve_udp<S>(
    cfg: &SocksProxyConfig,
    mut ctl: S,
    client: ClientInfo,
    hint: SocksAddr,
    user: Option<TaskUser>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let unspecified = SocksAddr::unspecified();
    let local_ip = client.local_addr.ip().to_canonical();
    let sock = match bind_client_socket(local_ip, cfg.udp_socket_buffer) {
        Ok(s) => s,
        Err(e) => {
            log::warn!(
                "socks {}: cannot bind udp on {local_ip}: {e}",
                cfg.common.name
            );
            reply(cfg, &mut ctl, Socks5Reply::GeneralFailure, &unspecified).await;
            return;
        }
    };
    let bound = match sock.local_addr() {
        Ok(a) => a,
        Err(_) => {
            reply(cfg, &mut ctl, Socks5Reply::GeneralFailure, &unspecified).await;
            return;
        }
    };
    let user_ctx = user.as_ref().map(|u| &u.ctx);
    let req = UdpRelayRequest {
        client_addr: client.peer_addr,
        resolve_strategy: user_ctx.and_then(|u| u.policy.resolve_strategy()),
    };
    let escaper = cfg.common.escaper.get();
    let relay = match tokio::time::timeout(CONNECT_GUARD, escaper.open_udp(&req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            log::debug!("socks {}: escaper udp setup failed: {e}", cfg.common.name);
            reply(cfg, &mut ctl, reply_for(&e), &unspecified).await;
            return;
        }
        Err(_) => {
            reply(cfg, &mut ctl, Socks5Reply::TtlExpired, &unspecified).await;
            return;
        }
    };
    let echo = SocksAddr::Ip(SocketAddr::new(cfg.udp_echo_ip(bound.ip()), bound.port()));
    if !reply(cfg, &mut ctl, Socks5Reply::Succeeded, &echo).await {
        return;
    }
    let session = Session::new(cfg, &client, &hint, user_ctx);
    let end = session.run(&mut ctl, &sock, relay.as_ref()).await;
    crate::common::stats::fold_udp(
        &cfg.common.stats,
        user_ctx,
        session.up_bytes.load(Ordering::Relaxed),
        session.down_bytes.load(Ordering::Relaxed),
    );
    log::debug!(
        "socks {}: udp {} for {} ({:?}) ended: {end}, up {} down {}",
        cfg.common.name,
        if cfg.udp_associate {
            "associate"
        } else {
            "connect"
        },
        client.peer_addr,
        session.client_addr.get(),
        session.up_bytes.load(Ordering::Relaxed),
        session.down_bytes.load(Ordering::Relaxed),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_buffer_is_applied() {
        let buf = SocketBufferConfig {
            recv: Some(256 * 1024),
            send: Some(128 * 1024),
        };
        let sock = bind_client_socket([127, 0, 0, 1].into(), buf).unwrap();
        let s = socket2::SockRef::from(&sock);
        // Linux doubles the value it is given (capped by rmem_max / wmem_max)
        assert!(s.recv_buffer_size().unwrap() >= 2 * 4096);
        assert_ne!(s.recv_buffer_size().unwrap(), s.send_buffer_size().unwrap());
        assert_eq!(
            sock.local_addr().unwrap().ip(),
            IpAddr::from([127, 0, 0, 1])
        );
    }
}
