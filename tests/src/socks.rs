//! Raw SOCKS4/4a/5 client steps over a [`RawConn`], for exact reply codes and bad input
//! (curl and PySocks cover the well-behaved clients).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::net::RawConn;

/// A SOCKS5 destination.
#[derive(Debug, Clone)]
pub enum Dst {
    V4(Ipv4Addr, u16),
    V6(Ipv6Addr, u16),
    Name(String, u16),
}

impl Dst {
    pub fn local(port: u16) -> Dst {
        Dst::V4(Ipv4Addr::LOCALHOST, port)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Dst::V4(ip, port) => {
                out.push(0x01);
                out.extend_from_slice(&ip.octets());
                out.extend_from_slice(&port.to_be_bytes());
            }
            Dst::V6(ip, port) => {
                out.push(0x04);
                out.extend_from_slice(&ip.octets());
                out.extend_from_slice(&port.to_be_bytes());
            }
            Dst::Name(n, port) => {
                out.push(0x03);
                out.push(n.len() as u8);
                out.extend_from_slice(n.as_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
        }
    }
}

/// A SOCKS5 reply.
#[derive(Debug, Clone)]
pub struct Reply5 {
    pub rep: u8,
    pub bind: Option<SocketAddr>,
}

/// Send the no-auth greeting and check the server picks method 0x00.
pub fn greet5(c: &mut RawConn) {
    c.send(&[0x05, 0x01, 0x00]);
    let r = c.read_exact_n(2);
    assert_eq!(r, [0x05, 0x00], "SOCKS5 method selection");
}

/// Read a SOCKS5 reply (VER REP RSV ATYP ADDR PORT).
pub fn read_reply5(c: &mut RawConn) -> Reply5 {
    let h = c.read_exact_n(4);
    assert_eq!(h[0], 0x05, "SOCKS5 reply version, got {h:?}");
    let rep = h[1];
    let bind = match h[3] {
        0x01 => {
            let a = c.read_exact_n(6);
            Some(SocketAddr::from((
                Ipv4Addr::new(a[0], a[1], a[2], a[3]),
                u16::from_be_bytes([a[4], a[5]]),
            )))
        }
        0x04 => {
            let a = c.read_exact_n(18);
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            Some(SocketAddr::from((
                Ipv6Addr::from(o),
                u16::from_be_bytes([a[16], a[17]]),
            )))
        }
        0x03 => {
            let n = c.read_exact_n(1)[0] as usize;
            c.read_exact_n(n + 2);
            None
        }
        other => panic!("SOCKS5 reply with address type {other:#x}"),
    };
    Reply5 { rep, bind }
}

/// Send a SOCKS5 request with command `cmd` (1 CONNECT, 2 BIND, 3 UDP ASSOCIATE).
pub fn request5(c: &mut RawConn, cmd: u8, dst: &Dst) {
    let mut m = vec![0x05, cmd, 0x00];
    dst.encode(&mut m);
    c.send(&m);
}

/// Greet, CONNECT to `dst`, return the reply (on 0x00 the connection is the tunnel).
pub fn connect5(proxy_port: u16, dst: &Dst) -> (RawConn, Reply5) {
    let mut c = RawConn::connect(proxy_port);
    greet5(&mut c);
    request5(&mut c, 0x01, dst);
    let r = read_reply5(&mut c);
    (c, r)
}

/// SOCKS4 (ip) or SOCKS4a (`host` set: ip 0.0.0.1 and the name) CONNECT; returns the
/// reply code (90 granted, 91 rejected).
pub fn connect4(proxy_port: u16, ip: Ipv4Addr, port: u16, host: Option<&str>) -> (RawConn, u8) {
    let mut c = RawConn::connect(proxy_port);
    let mut m = vec![0x04, 0x01];
    m.extend_from_slice(&port.to_be_bytes());
    match host {
        Some(_) => m.extend_from_slice(&[0, 0, 0, 1]),
        None => m.extend_from_slice(&ip.octets()),
    }
    m.extend_from_slice(b"px\0");
    if let Some(h) = host {
        m.extend_from_slice(h.as_bytes());
        m.push(0);
    }
    c.send(&m);
    let r = c.read_exact_n(8);
    assert_eq!(r[0], 0x00, "SOCKS4 reply version byte");
    (c, r[1])
}

/// Wrap `payload` in a SOCKS5 UDP header for `dst`.
pub fn udp_wrap(dst: &Dst, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0x00, 0x00, 0x00];
    dst.encode(&mut m);
    m.extend_from_slice(payload);
    m
}

/// Split a SOCKS5 UDP datagram into its source address and payload.
pub fn udp_unwrap(d: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
    if d.len() < 10 || d[2] != 0 {
        return None;
    }
    match d[3] {
        0x01 => {
            let ip = Ipv4Addr::new(d[4], d[5], d[6], d[7]);
            let port = u16::from_be_bytes([d[8], d[9]]);
            Some((SocketAddr::from((ip, port)), d[10..].to_vec()))
        }
        0x04 if d.len() >= 22 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&d[4..20]);
            let port = u16::from_be_bytes([d[20], d[21]]);
            Some((
                SocketAddr::from((Ipv6Addr::from(o), port)),
                d[22..].to_vec(),
            ))
        }
        _ => None,
    }
}

/// A UDP ASSOCIATE: the control connection (keep it open) and the relay address.
pub struct UdpAssociation {
    pub control: RawConn,
    pub relay: SocketAddr,
    pub sock: UdpSocket,
}

impl UdpAssociation {
    /// Open an association from a fresh UDP socket on 127.0.0.1, announcing that
    /// socket's address as DST in the request (PySocks sends 0.0.0.0 with the port).
    pub fn open(proxy_port: u16) -> Result<UdpAssociation, u8> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp client");
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let local = sock.local_addr().expect("addr");
        let mut control = RawConn::connect(proxy_port);
        greet5(&mut control);
        request5(
            &mut control,
            0x03,
            &Dst::V4(Ipv4Addr::UNSPECIFIED, local.port()),
        );
        let r = read_reply5(&mut control);
        if r.rep != 0 {
            return Err(r.rep);
        }
        let mut relay = r.bind.expect("UDP ASSOCIATE reply with an IP address");
        if relay.ip().is_unspecified() {
            relay.set_ip(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        Ok(UdpAssociation {
            control,
            relay,
            sock,
        })
    }

    /// Send `payload` for `dst` through the relay.
    pub fn send(&self, dst: &Dst, payload: &[u8]) {
        self.sock
            .send_to(&udp_wrap(dst, payload), self.relay)
            .expect("send to relay");
    }

    /// Receive one datagram from the relay: the source it names and the payload.
    pub fn recv(&self) -> Option<(SocketAddr, Vec<u8>)> {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = self.sock.recv_from(&mut buf).ok()?;
            if from == self.relay {
                return udp_unwrap(&buf[..n]);
            }
        }
    }
}
