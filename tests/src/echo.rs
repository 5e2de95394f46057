//! TCP and UDP echo servers on loopback (tokio), stopped on drop.
//!
//! - [`TcpEcho`]: writes back every byte it reads, half-closes when the client does.
//! - [`UdpEcho`]: sends every datagram back to its sender.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{JoinHandle, JoinSet};

/// TCP echo server.
pub struct TcpEcho {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpEcho {
    pub fn start() -> TcpEcho {
        Self::start_on(Ipv4Addr::LOCALHOST)
    }

    pub fn start_on(ip: impl Into<IpAddr>) -> TcpEcho {
        let ip: IpAddr = ip.into();
        let l = std::net::TcpListener::bind((ip, 0)).expect("bind tcp echo");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        let task = crate::runtime().spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
                return;
            };
            let mut set = JoinSet::new();
            loop {
                while set.try_join_next().is_some() {}
                let Ok((mut s, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                set.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    s.shutdown().await.ok();
                });
            }
        });
        TcpEcho { addr, conns, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// UDP echo server.
pub struct UdpEcho {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    peers: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl UdpEcho {
    pub fn start() -> UdpEcho {
        Self::start_on(Ipv4Addr::LOCALHOST)
    }

    pub fn start_on(ip: impl Into<IpAddr>) -> UdpEcho {
        let ip: IpAddr = ip.into();
        let s = std::net::UdpSocket::bind((ip, 0)).expect("bind udp echo");
        s.set_nonblocking(true).expect("nonblocking");
        let addr = s.local_addr().expect("addr");
        let count = Arc::new(AtomicUsize::new(0));
        let peers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, p) = (count.clone(), peers.clone());
        let task = crate::runtime().spawn(async move {
            let Ok(sock) = tokio::net::UdpSocket::from_std(s) else {
                return;
            };
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                {
                    let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
                    if !g.contains(&from) {
                        g.push(from);
                    }
                }
                let _ = sock.send_to(&buf[..n], from).await;
            }
        });
        UdpEcho {
            addr,
            count,
            peers,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Datagrams received so far.
    pub fn datagrams(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Distinct source addresses seen so far.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn tcp_echo_echoes() {
        let e = TcpEcho::start();
        let mut s = std::net::TcpStream::connect(e.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        assert_eq!(e.connections(), 1);
    }

    #[test]
    fn udp_echo_echoes() {
        let e = UdpEcho::start();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(b"dgram", e.addr()).unwrap();
        let mut b = [0u8; 64];
        let (n, from) = s.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"dgram");
        assert_eq!(from, e.addr());
        assert_eq!(e.datagrams(), 1);
        assert_eq!(e.peers(), vec![s.local_addr().unwrap()]);
    }
}
