//! The target or bound address carried by SOCKS messages.
//!
//! [`SocksAddr`] is either an IP socket address or a domain name with a port. In SOCKS5 messages and
//! UDP headers it is encoded as `ATYP ADDR PORT`: ATYP 0x01 is IPv4 (4 bytes), 0x03 a domain (a length
//! byte then 1..=255 bytes), 0x04 IPv6 (16 bytes); the port is big-endian.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::SocksError;

/// Longest domain name a SOCKS message can carry, in bytes.
pub const MAX_DOMAIN_LEN: usize = 255;
/// Longest encoded `ATYP ADDR PORT`: ATYP, length byte, 255-byte domain, port.
pub const MAX_ADDR_LEN: usize = 1 + 1 + MAX_DOMAIN_LEN + 2;

/// ATYP value of an IPv4 address.
pub const ATYP_IPV4: u8 = 0x01;
/// ATYP value of a domain name.
pub const ATYP_DOMAIN: u8 = 0x03;
/// ATYP value of an IPv6 address.
pub const ATYP_IPV6: u8 = 0x04;

/// A SOCKS target or bound address: an IP socket address or a domain name and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocksAddr {
    /// An IPv4 or IPv6 socket address.
    Ip(SocketAddr),
    /// A domain name (1..=255 bytes of UTF-8) and a port.
    Domain(String, u16),
}

impl SocksAddr {
    /// A domain target, checked to be 1..=255 bytes long.
    pub fn domain(name: impl Into<String>, port: u16) -> Result<Self, SocksError> {
        let name = name.into();
        if name.is_empty() {
            return Err(SocksError::Malformed("empty domain name"));
        }
        if name.len() > MAX_DOMAIN_LEN {
            return Err(SocksError::DomainTooLong(name.len()));
        }
        Ok(SocksAddr::Domain(name, port))
    }

    /// The all-zero IPv4 address with port 0, used as the bound address of failure replies.
    pub fn unspecified() -> Self {
        SocksAddr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            SocksAddr::Ip(a) => a.port(),
            SocksAddr::Domain(_, p) => *p,
        }
    }

    /// The host part as text: the IP (without brackets) or the domain.
    pub fn host_string(&self) -> String {
        match self {
            SocksAddr::Ip(a) => a.ip().to_string(),
            SocksAddr::Domain(d, _) => d.clone(),
        }
    }

    /// True for an IP address that is all zeros (any port), as clients send for "address unknown".
    pub fn is_unspecified_ip(&self) -> bool {
        matches!(self, SocksAddr::Ip(a) if a.ip().is_unspecified())
    }

    /// The same address with IPv4-mapped IPv6 addresses turned into plain IPv4.
    pub fn canonical(self) -> Self {
        match self {
            SocksAddr::Ip(a) => SocksAddr::Ip(SocketAddr::new(a.ip().to_canonical(), a.port())),
            d => d,
        }
    }

    /// Length of the encoded `ATYP ADDR PORT`.
    pub fn encoded_len(&self) -> usize {
        match self {
            SocksAddr::Ip(SocketAddr::V4(_)) => 1 + 4 + 2,
            SocksAddr::Ip(SocketAddr::V6(_)) => 1 + 16 + 2,
            SocksAddr::Domain(d, _) => 1 + 1 + d.len() + 2,
        }
    }

    /// Encode `ATYP ADDR PORT` at the start of `out`, returning the number of bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, SocksError> {
        if let SocksAddr::Domain(d, _) = self {
            if d.len() > MAX_DOMAIN_LEN {
                return Err(SocksError::DomainTooLong(d.len()));
            }
            if d.is_empty() {
                return Err(SocksError::Malformed("empty domain name"));
            }
        }
        let need = self.encoded_len();
        let Some(out) = out.get_mut(..need) else {
            return Err(SocksError::BufferTooSmall {
                need,
                have: out.len(),
            });
        };
        let port_at = need - 2;
        match self {
            SocksAddr::Ip(SocketAddr::V4(a)) => {
                out[0] = ATYP_IPV4;
                out[1..5].copy_from_slice(&a.ip().octets());
            }
            SocksAddr::Ip(SocketAddr::V6(a)) => {
                out[0] = ATYP_IPV6;
                out[1..17].copy_from_slice(&a.ip().octets());
            }
            SocksAddr::Domain(d, _) => {
                out[0] = ATYP_DOMAIN;
                // Length checked above: 1..=255 fits in a byte.
                out[1] = d.len() as u8;
                out[2..port_at].copy_from_slice(d.as_bytes());
            }
        }
        out[port_at..].copy_from_slice(&self.port().to_be_bytes());
        Ok(need)
    }

    /// Append the encoded `ATYP ADDR PORT` to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), SocksError> {
        let start = out.len();
        out.resize(start + self.encoded_len(), 0);
        match self.encode(&mut out[start..]) {
            Ok(_) => Ok(()),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Decode `ATYP ADDR PORT` from the start of `buf`, returning the address and bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), SocksError> {
        let (&atyp, rest) = buf.split_first().ok_or(SocksError::Truncated)?;
        let (addr_len, skip) = match atyp {
            ATYP_IPV4 => (4, 0),
            ATYP_IPV6 => (16, 0),
            ATYP_DOMAIN => (usize::from(*rest.first().ok_or(SocksError::Truncated)?), 1),
            other => return Err(SocksError::UnsupportedAddrType(other)),
        };
        let total = 1 + skip + addr_len + 2;
        let body = buf.get(1 + skip..total).ok_or(SocksError::Truncated)?;
        let (addr, port) = body.split_at(addr_len);
        let port = u16::from_be_bytes([port[0], port[1]]);
        Ok((Self::from_parts(atyp, addr, port)?, total))
    }

    /// Read `ATYP ADDR PORT` from a stream.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let atyp = r.read_u8().await?;
        Self::read_after_atyp(r, atyp).await
    }

    /// Read `ADDR PORT` from a stream once the ATYP byte is known.
    pub(crate) async fn read_after_atyp<R: AsyncRead + Unpin>(
        r: &mut R,
        atyp: u8,
    ) -> Result<Self, SocksError> {
        let mut buf = [0u8; MAX_DOMAIN_LEN + 2];
        let addr_len = match atyp {
            ATYP_IPV4 => 4,
            ATYP_IPV6 => 16,
            ATYP_DOMAIN => usize::from(r.read_u8().await?),
            other => return Err(SocksError::UnsupportedAddrType(other)),
        };
        let body = &mut buf[..addr_len + 2];
        r.read_exact(body).await?;
        let (addr, port) = body.split_at(addr_len);
        let port = u16::from_be_bytes([port[0], port[1]]);
        Self::from_parts(atyp, addr, port)
    }

    fn from_parts(atyp: u8, addr: &[u8], port: u16) -> Result<Self, SocksError> {
        match atyp {
            ATYP_IPV4 => {
                let o: [u8; 4] = addr.try_into().map_err(|_| SocksError::Truncated)?;
                Ok(SocksAddr::Ip(SocketAddr::new(
                    Ipv4Addr::from(o).into(),
                    port,
                )))
            }
            ATYP_IPV6 => {
                let o: [u8; 16] = addr.try_into().map_err(|_| SocksError::Truncated)?;
                Ok(SocksAddr::Ip(SocketAddr::new(
                    Ipv6Addr::from(o).into(),
                    port,
                )))
            }
            _ => Ok(SocksAddr::Domain(domain_from_bytes(addr)?, port)),
        }
    }
}

/// Validate a domain received on the wire: 1..=255 bytes of UTF-8.
pub(crate) fn domain_from_bytes(b: &[u8]) -> Result<String, SocksError> {
    if b.is_empty() {
        return Err(SocksError::Malformed("empty domain name"));
    }
    if b.len() > MAX_DOMAIN_LEN {
        return Err(SocksError::DomainTooLong(b.len()));
    }
    String::from_utf8(b.to_vec()).map_err(|_| SocksError::Malformed("domain name is not UTF-8"))
}

impl From<SocketAddr> for SocksAddr {
    fn from(a: SocketAddr) -> Self {
        SocksAddr::Ip(a)
    }
}

impl From<(IpAddr, u16)> for SocksAddr {
    fn from((ip, port): (IpAddr, u16)) -> Self {
        SocksAddr::Ip(SocketAddr::new(ip, port))
    }
}

impl fmt::Display for SocksAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksAddr::Ip(a) => a.fmt(f),
            SocksAddr::Domain(d, p) => write!(f, "{d}:{p}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn encode_ipv4() {
        let a = SocksAddr::from("1.2.3.4:80".parse::<SocketAddr>().unwrap());
        let mut v = Vec::new();
        a.write_to(&mut v).unwrap();
        assert_eq!(v, [1, 1, 2, 3, 4, 0, 80]);
        assert_eq!(SocksAddr::decode(&v).unwrap(), (a, 7));
    }

    #[test]
    fn encode_ipv6() {
        let a = SocksAddr::from("[::1]:443".parse::<SocketAddr>().unwrap());
        let mut v = Vec::new();
        a.write_to(&mut v).unwrap();
        let mut want = vec![4u8];
        want.extend_from_slice(&[0; 15]);
        want.extend_from_slice(&[1, 1, 0xbb]);
        assert_eq!(v, want);
        assert_eq!(SocksAddr::decode(&v).unwrap(), (a, 19));
    }

    #[test]
    fn encode_domain() {
        let a = SocksAddr::domain("example.com", 8080).unwrap();
        let mut v = vec![0xAA];
        a.write_to(&mut v).unwrap();
        assert_eq!(&v[..3], &[0xAA, 3, 11]);
        assert_eq!(&v[3..14], b"example.com");
        assert_eq!(&v[14..], &[0x1f, 0x90]);
        assert_eq!(SocksAddr::decode(&v[1..]).unwrap(), (a.clone(), 15));
        assert_eq!(a.to_string(), "example.com:8080");
        assert_eq!(a.host_string(), "example.com");
    }

    #[test]
    fn domain_bounds() {
        assert!(matches!(
            SocksAddr::domain("", 1),
            Err(SocksError::Malformed(_))
        ));
        assert!(SocksAddr::domain("a".repeat(255), 1).is_ok());
        assert!(matches!(
            SocksAddr::domain("a".repeat(256), 1),
            Err(SocksError::DomainTooLong(256))
        ));
        let long = SocksAddr::Domain("a".repeat(300), 1);
        let mut v = vec![7];
        assert!(long.write_to(&mut v).is_err());
        assert_eq!(v, [7], "failed write leaves the buffer as it was");
        assert!(
            SocksAddr::Domain(String::new(), 1)
                .write_to(&mut v)
                .is_err()
        );
    }

    #[test]
    fn decode_errors() {
        assert!(SocksAddr::decode(&[]).unwrap_err().is_truncated());
        assert!(SocksAddr::decode(&[1, 1, 2, 3]).unwrap_err().is_truncated());
        assert!(SocksAddr::decode(&[3]).unwrap_err().is_truncated());
        assert!(
            SocksAddr::decode(&[3, 2, b'a', b'b', 0])
                .unwrap_err()
                .is_truncated()
        );
        assert!(matches!(
            SocksAddr::decode(&[3, 0, 0, 80]),
            Err(SocksError::Malformed(_))
        ));
        assert!(matches!(
            SocksAddr::decode(&[3, 1, 0xff, 0, 80]),
            Err(SocksError::Malformed(_))
        ));
        assert!(matches!(
            SocksAddr::decode(&[2, 1, 2, 3, 4, 0, 80]),
            Err(SocksError::UnsupportedAddrType(2))
        ));
    }

    #[test]
    fn encode_into_small_buffer() {
        let a = SocksAddr::domain("abc", 1).unwrap();
        let mut b = [0u8; 6];
        assert!(matches!(
            a.encode(&mut b),
            Err(SocksError::BufferTooSmall { need: 7, have: 6 })
        ));
    }

    #[test]
    fn read_from_stream() {
        let mut s: &[u8] = &[3, 3, b'a', b'b', b'c', 0, 21, 0xEE];
        let a = SocksAddr::read(&mut s).now_or_never().unwrap().unwrap();
        assert_eq!(a, SocksAddr::Domain("abc".into(), 21));
        assert_eq!(s, &[0xEE]);
        let mut s: &[u8] = &[1, 9, 9];
        let e = SocksAddr::read(&mut s).now_or_never().unwrap().unwrap_err();
        assert!(e.is_truncated());
    }

    #[test]
    fn canonical_and_unspecified() {
        let a = SocksAddr::from("[::ffff:10.0.0.1]:5".parse::<SocketAddr>().unwrap());
        assert_eq!(
            a.canonical(),
            SocksAddr::from("10.0.0.1:5".parse::<SocketAddr>().unwrap())
        );
        assert!(SocksAddr::unspecified().is_unspecified_ip());
        assert!(SocksAddr::from("[::]:7".parse::<SocketAddr>().unwrap()).is_unspecified_ip());
        assert!(!SocksAddr::domain("x", 0).unwrap().is_unspecified_ip());
    }
}
