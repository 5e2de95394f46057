//! The `direct_fixed` UDP relay for one client association.
//!
//! `send_to` resolves a domain target (the escaper's resolver, the task's
//! strategy), checks the address against the egress network filter (a
//! forbidden target fails that datagram only), and sends from the socket of
//! the target's family, bound on first use to a bind IP of that family (or
//! the unspecified address). `recv_from` receives from whichever sockets
//! exist, waiting for the first one to be created. No queue is kept here: the
//! kernel's socket buffer is the only buffer.

use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use async_trait::async_trait;
use px_core::value::UdpSpeedLimit;
use px_core::{ConnectError, Host, ResolveError, ResolveStrategy, UdpRelay, UpstreamAddr};
use px_socket::{Bind, BindIp};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, OnceCell};

use super::DirectFixedConfig;

/// A UDP relay that sends to any permitted target and receives from all.
pub struct DirectUdpRelay {
    cfg: Arc<DirectFixedConfig>,
    strategy: ResolveStrategy,
    bind: Bind,
    v4: OnceCell<UdpSocket>,
    v6: OnceCell<UdpSocket>,
    created: Notify,
    v6_first: AtomicBool,
}

impl DirectUdpRelay {
    /// A relay with no socket yet; its sockets bind to `bind` (chosen per
    /// association by the escaper: `direct_fixed` from `bind_ip`,
    /// `direct_float` from the published addresses).
    pub fn new(cfg: Arc<DirectFixedConfig>, strategy: ResolveStrategy, bind: Bind) -> Self {
        DirectUdpRelay {
            cfg,
            strategy,
            bind,
            v4: OnceCell::new(),
            v6: OnceCell::new(),
            created: Notify::new(),
            v6_first: AtomicBool::new(false),
        }
    }

    /// The local address of the socket of a family, once it exists.
    pub fn local_addr(&self, ipv6: bool) -> Option<SocketAddr> {
        let cell = if ipv6 { &self.v6 } else { &self.v4 };
        cell.get().and_then(|s| s.local_addr().ok())
    }

    /// The target's address after resolution and filtering.
    async fn target_ip(&self, target: &UpstreamAddr) -> Result<IpAddr, ConnectError> {
        let usable = |ip: &IpAddr| {
            if ip.is_ipv4() {
                self.cfg.ipv4_usable()
            } else {
                self.cfg.ipv6_usable()
            }
        };
        let permitted = |ip: &IpAddr| self.cfg.egress_filter.check(*ip).permits();
        match &target.host {
            Host::Ip(ip) => {
                let ip = ip.to_canonical();
                if !permitted(&ip) {
                    return Err(ConnectError::ForbiddenIp(ip));
                }
                if !usable(&ip) {
                    return Err(ConnectError::NetworkUnreachable);
                }
                Ok(ip)
            }
            Host::Domain(d) => {
                let resolver = self.cfg.resolver.get();
                let ips = resolver.resolve(d, self.strategy.query).await?;
                let mut forbidden = None;
                for ip in ips.iter().map(|ip| ip.to_canonical()) {
                    if !permitted(&ip) {
                        forbidden.get_or_insert(ip);
                    } else if usable(&ip) {
                        return Ok(ip);
                    }
                }
                Err(match forbidden {
                    Some(ip) => ConnectError::ForbiddenIp(ip),
                    None if ips.is_empty() => ResolveError::NotFound(d.clone()).into(),
                    None => ConnectError::NetworkUnreachable,
                })
            }
        }
    }

    /// The socket for a family, bound on first use.
    async fn socket(&self, ipv6: bool) -> Result<&UdpSocket, ConnectError> {
        let cell = if ipv6 { &self.v6 } else { &self.v4 };
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        let (bind, unspecified) = if ipv6 {
            (self.bind.v6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        } else {
            (self.bind.v4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        };
        let ip = match bind {
            BindIp::Ip(ip) => ip,
            BindIp::Any => unspecified,
            BindIp::Unavailable => return Err(ConnectError::NetworkUnreachable),
        };
        let misc = self.cfg.udp_misc;
        let sock = cell
            .get_or_try_init(|| async move {
                let std_sock = px_socket::bind_udp_socket(SocketAddr::new(ip, 0), &misc)?;
                UdpSocket::from_std(std_sock)
            })
            .await
            .map_err(ConnectError::Io)?;
        self.created.notify_waiters();
        Ok(sock)
    }
}

#[async_trait]
impl UdpRelay for DirectUdpRelay {
    async fn send_to(&self, payload: &[u8], target: &UpstreamAddr) -> Result<(), ConnectError> {
        let ip = self.target_ip(target).await?;
        let sock = self.socket(ip.is_ipv6()).await?;
        sock.send_to(payload, SocketAddr::new(ip, target.port))
            .await
            .map_err(ConnectError::from_io)?;
        Ok(())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let notified = self.created.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let socks = [self.v4.get(), self.v6.get()];
            if socks.iter().all(Option::is_none) {
                notified.await;
                continue;
            }
            // alternate which family is polled first, so neither starves the other
            let v6_first = self.v6_first.fetch_xor(true, Ordering::Relaxed);
            let order = if v6_first {
                [socks[1], socks[0]]
            } else {
                socks
            };
            let got = poll_fn(|cx| {
                for s in order.iter().flatten() {
                    let mut rb = ReadBuf::new(&mut *buf);
                    if let Poll::Ready(r) = s.poll_recv_from(cx, &mut rb) {
                        let n = rb.filled().len();
                        return Poll::Ready(Some(r.map(|addr| (n, addr))));
                    }
                }
                // a socket of the other family was just created: poll it too
                match notified.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if let Some(r) = got {
                return r.map(|(n, addr)| (n, canonical(addr)));
            }
        }
    }

    fn speed_limit(&self) -> UdpSpeedLimit {
        self.cfg.udp_speed_limit
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
