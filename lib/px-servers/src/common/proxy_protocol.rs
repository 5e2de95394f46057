//! The PROXY protocol (HAProxy's, v1 text and v2 binary), read in front of a client stream.
//!
//! Port servers with `proxy_protocol: v1 | v2` (also `1` / `2`) read the header within
//! `proxy_protocol_read_timeout` (default 5s); a connection without a header of that version is
//! dropped. The header is read exactly, never past its end, so the stream handed on is still the
//! plain socket. Its source address becomes the client address the next server uses for ACLs
//! and logs (`ClientInfo::peer_addr`); `LOCAL` (v2) and `UNKNOWN` (v1) headers, and address
//! families other than TCP over IPv4/IPv6, keep the socket's own addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use px_yaml::{ConfigError, Val, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included.
const V1_MAX: usize = 107;
/// g3proxy's default `proxy_protocol_read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The text form.
    V1,
    /// The binary form.
    V2,
}

impl ProxyProtocolVersion {
    /// Parses `1`, `2`, `v1`, `v2`.
    pub fn parse(v: &Val<'_>) -> Result<ProxyProtocolVersion, ConfigError> {
        let text = match &v.node().value {
            Value::Int(i) => i.to_string(),
            _ => v.as_text()?,
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "v1" => Ok(ProxyProtocolVersion::V1),
            "2" | "v2" => Ok(ProxyProtocolVersion::V2),
            other => Err(v.err(format!(
                "invalid PROXY protocol version `{other}` (1, 2, v1 or v2)"
            ))),
        }
    }
}

/// The addresses a header carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyAddrs {
    /// The original client address.
    pub source: Option<SocketAddr>,
    /// The address the original client connected to.
    pub destination: Option<SocketAddr>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one header of `version` from `stream` within `timeout`.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    version: ProxyProtocolVersion,
    timeout: Duration,
) -> io::Result<ProxyAddrs> {
    let read = async {
        match version {
            ProxyProtocolVersion::V1 => read_v1(stream).await,
            ProxyProtocolVersion::V2 => read_v2(stream).await,
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "PROXY protocol header not received in time",
        )),
    }
}

async fn read_v1<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<ProxyAddrs> {
    // "PROXY UNKNOWN\r\n" is the shortest line: read that much at once, then byte by byte, so
    // nothing past the line is consumed
    let mut line = vec![0u8; 15];
    stream.read_exact(&mut line).await?;
    if !line.starts_with(b"PROXY ") {
        return Err(bad("no PROXY protocol v1 header"));
    }
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(bad("PROXY protocol v1 line too long"));
        }
        let b = stream.read_u8().await?;
        line.push(b);
    }
    parse_v1(&line)
}

/// Parses a whole v1 line (CRLF included).
pub fn parse_v1(line: &[u8]) -> io::Result<ProxyAddrs> {
    let text = std::str::from_utf8(line).map_err(|_| bad("PROXY v1 header is not text"))?;
    let text = text
        .strip_suffix("\r\n")
        .ok_or_else(|| bad("PROXY v1 header without CRLF"))?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(bad("no PROXY protocol v1 header"));
    }
    let proto = parts.next().unwrap_or("");
    if proto == "UNKNOWN" {
        return Ok(ProxyAddrs::default());
    }
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(bad("PROXY v1 header needs 4 address fields"));
    };
    let ip = |s: &str| -> io::Result<IpAddr> {
        let ip: IpAddr = s.parse().map_err(|_| bad(format!("bad address {s:?}")))?;
        match (proto, ip) {
            ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
            _ => Err(bad(format!("address {s} does not fit {proto}"))),
        }
    };
    let port = |s: &str| -> io::Result<u16> {
        if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) {
            return Err(bad(format!("bad port {s:?}")));
        }
        s.parse().map_err(|_| bad(format!("bad port {s:?}")))
    };
    if proto != "TCP4" && proto != "TCP6" {
        return Err(bad(format!("unknown PROXY v1 protocol {proto:?}")));
    }
    Ok(ProxyAddrs {
        source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
    })
}

async fn read_v2<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<ProxyAddrs> {
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await?;
    if head[..12] != V2_SIG {
        return Err(bad("no PROXY protocol v2 header"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    parse_v2(&head, &body)
}

/// Parses a v2 header: the 16 fixed bytes and the `len` bytes after them.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> io::Result<ProxyAddrs> {
    if head[..12] != V2_SIG {
        return Err(bad("no PROXY protocol v2 header"));
    }
    if head[12] >> 4 != 2 {
        return Err(bad("PROXY v2 header of another version"));
    }
    match head[12] & 0x0f {
        0 => return Ok(ProxyAddrs::default()), // LOCAL: health checks and the like
        1 => {}
        c => return Err(bad(format!("unknown PROXY v2 command {c}"))),
    }
    let family = head[13] >> 4;
    let transport = head[13] & 0x0f;
    if transport != 1 {
        // not a stream: keep the socket's addresses
        return Ok(ProxyAddrs::default());
    }
    match family {
        1 => {
            if body.len() < 12 {
                return Err(bad("PROXY v2 IPv4 block too short"));
            }
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            let sp = u16::from_be_bytes([body[8], body[9]]);
            let dp = u16::from_be_bytes([body[10], body[11]]);
            Ok(ProxyAddrs {
                source: Some(SocketAddr::new(src.into(), sp)),
                destination: Some(SocketAddr::new(dst.into(), dp)),
            })
        }
        2 => {
            if body.len() < 36 {
                return Err(bad("PROXY v2 IPv6 block too short"));
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let mut b = [0u8; 16];
            b.copy_from_slice(&body[16..32]);
            let sp = u16::from_be_bytes([body[32], body[33]]);
            let dp = u16::from_be_bytes([body[34], body[35]]);
            Ok(ProxyAddrs {
                source: Some(SocketAddr::new(Ipv6Addr::from(a).into(), sp)),
                destination: Some(SocketAddr::new(Ipv6Addr::from(b).into(), dp)),
            })
        }
        _ => Ok(ProxyAddrs::default()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn v1_lines() {
        let a = parse_v1(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n").unwrap();
        assert_eq!(a.source, sa("192.0.2.1:56324"));
        assert_eq!(a.destination, sa("198.51.100.2:443"));
        let a = parse_v1(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n").unwrap();
        assert_eq!(a.source, sa("[2001:db8::1]:1"));
        assert_eq!(
            parse_v1(b"PROXY UNKNOWN\r\n").unwrap(),
            ProxyAddrs::default()
        );
        assert_eq!(
            parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").unwrap(),
            ProxyAddrs::default()
        );
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 70000\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert!(parse_v1(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIG.to_vec();
        out.push(0x20 | cmd);
        out.push(fam);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn v2_reads_exactly_its_header() {
        let mut body = vec![192, 0, 2, 1, 10, 0, 0, 1];
        body.extend_from_slice(&1234u16.to_be_bytes());
        body.extend_from_slice(&80u16.to_be_bytes());
        body.extend_from_slice(&[0x03, 0x00, 0x04, 1, 2, 3, 4]); // a CRC32c TLV, ignored
        let mut wire = v2(1, 0x11, &body);
        wire.extend_from_slice(b"GET /");
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&wire).await.unwrap();
        let addrs = read_header(&mut b, ProxyProtocolVersion::V2, DEFAULT_READ_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(addrs.source, sa("192.0.2.1:1234"));
        assert_eq!(addrs.destination, sa("10.0.0.1:80"));
        let mut rest = [0u8; 5];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET /");
    }

    #[tokio::test]
    async fn v1_reads_exactly_its_line() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"PROXY TCP4 192.0.2.9 10.0.0.1 999 80\r\nSSH-2.0")
            .await
            .unwrap();
        let addrs = read_header(&mut b, ProxyProtocolVersion::V1, DEFAULT_READ_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(addrs.source, sa("192.0.2.9:999"));
        let mut rest = [0u8; 7];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"SSH-2.0");
    }

    #[test]
    fn v2_forms() {
        let mut head = [0u8; 16];
        let local = v2(0, 0, &[]);
        head.copy_from_slice(&local[..16]);
        assert_eq!(parse_v2(&head, &[]).unwrap(), ProxyAddrs::default());
        let mut body = vec![0u8; 36];
        body[15] = 1;
        body[31] = 2;
        body[33] = 7;
        let w = v2(1, 0x21, &body);
        head.copy_from_slice(&w[..16]);
        let a = parse_v2(&head, &body).unwrap();
        assert_eq!(a.source, sa("[::1]:7"));
        assert_eq!(a.destination.map(|d| d.ip()), Some("::2".parse().unwrap()));
        let w = v2(1, 0x11, &[1, 2, 3]);
        head.copy_from_slice(&w[..16]);
        assert!(parse_v2(&head, &[1, 2, 3]).is_err(), "short block");
        let w = v2(5, 0x11, &[]);
        head.copy_from_slice(&w[..16]);
        assert!(parse_v2(&head, &[]).is_err(), "unknown command");
    }

    #[tokio::test]
    async fn wrong_version_and_timeout() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"PROXY TCP4 192.0.2.9 10.0.0.1 999 80\r\n")
            .await
            .unwrap();
        assert!(
            read_header(&mut b, ProxyProtocolVersion::V2, DEFAULT_READ_TIMEOUT)
                .await
                .is_err()
        );
        let (_a, mut b) = tokio::io::duplex(1024);
        let e = read_header(&mut b, ProxyProtocolVersion::V1, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
