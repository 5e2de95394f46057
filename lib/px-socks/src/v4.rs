//! SOCKS4 and SOCKS4a (server side, with client-side encoders for tests and escapers).
//!
//! Request: `VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL`, and for SOCKS4a (DSTIP `0.0.0.x`, x ≠ 0) a
//! `DOMAIN NUL` after the user id. Only CD 0x01 (CONNECT) is supported; BIND (0x02) and any other code
//! read as [`SocksError::UnsupportedCommand`] once the whole request has been consumed. The user id
//! and the domain are each bounded to 255 bytes.
//!
//! Reply: `VN=0 CD DSTPORT(2) DSTIP(4)` with CD 0x5A granted or 0x5B rejected.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::addr::{ATYP_IPV6, domain_from_bytes};
use crate::{SocksAddr, SocksError};

/// Version byte of SOCKS4 requests.
pub const SOCKS4_VERSION: u8 = 0x04;
/// Command code of CONNECT.
pub const SOCKS4_CMD_CONNECT: u8 = 0x01;
/// Command code of BIND (not supported).
pub const SOCKS4_CMD_BIND: u8 = 0x02;
/// Longest user id accepted, in bytes (without the NUL).
pub const MAX_USER_ID_LEN: usize = 255;

/// A SOCKS4 or SOCKS4a CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks4Request {
    /// The target: an IPv4 address, or a domain for SOCKS4a.
    pub target: SocksAddr,
    /// The user id, at most 255 bytes, without the NUL.
    pub user_id: Vec<u8>,
}

impl Socks4Request {
    /// Read a whole request, version byte included.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let v = r.read_u8().await?;
        if v != SOCKS4_VERSION {
            return Err(SocksError::BadVersion(v));
        }
        Self::read_after_version(r).await
    }

    /// Read a request whose version byte has already been consumed (see [`crate::read_version`]).
    pub async fn read_after_version<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let mut head = [0u8; 7];
        r.read_exact(&mut head).await?;
        let cmd = head[0];
        let port = u16::from_be_bytes([head[1], head[2]]);
        let ip = Ipv4Addr::new(head[3], head[4], head[5], head[6]);
        let user_id = read_until_nul(r, MAX_USER_ID_LEN, "user id longer than 255 bytes").await?;
        let target = if is_socks4a_ip(ip) {
            let d =
                read_until_nul(r, crate::MAX_DOMAIN_LEN, "domain longer than 255 bytes").await?;
            SocksAddr::Domain(domain_from_bytes(&d)?, port)
        } else {
            SocksAddr::Ip(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        };
        if cmd != SOCKS4_CMD_CONNECT {
            return Err(SocksError::UnsupportedCommand(cmd));
        }
        Ok(Socks4Request { target, user_id })
    }

    /// Append the encoded request (SOCKS4a when the target is a domain) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), SocksError> {
        if self.user_id.len() > MAX_USER_ID_LEN {
            return Err(SocksError::Malformed("user id longer than 255 bytes"));
        }
        if self.user_id.contains(&0) {
            return Err(SocksError::Malformed("user id contains NUL"));
        }
        out.extend_from_slice(&[SOCKS4_VERSION, SOCKS4_CMD_CONNECT]);
        out.extend_from_slice(&self.target.port().to_be_bytes());
        match &self.target {
            SocksAddr::Ip(SocketAddr::V4(a)) => {
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&self.user_id);
                out.push(0);
            }
            SocksAddr::Ip(SocketAddr::V6(_)) => {
                return Err(SocksError::UnsupportedAddrType(ATYP_IPV6));
            }
            SocksAddr::Domain(d, _) => {
                if d.len() > crate::MAX_DOMAIN_LEN {
                    return Err(SocksError::DomainTooLong(d.len()));
                }
                if d.is_empty() || d.as_bytes().contains(&0) {
                    return Err(SocksError::Malformed("domain is empty or contains NUL"));
                }
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(&self.user_id);
                out.push(0);
                out.extend_from_slice(d.as_bytes());
                out.push(0);
            }
        }
        Ok(())
    }
}

/// True for `0.0.0.x` with x ≠ 0, the SOCKS4a marker for "a domain follows".
fn is_socks4a_ip(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] != 0
}

/// Read bytes up to a NUL (consumed, not returned), failing once more than `max` bytes came.
async fn read_until_nul<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    too_long: &'static str,
) -> Result<Vec<u8>, SocksError> {
    let mut v = Vec::new();
    loop {
        let b = r.read_u8().await?;
        if b == 0 {
            return Ok(v);
        }
        if v.len() == max {
            return Err(SocksError::Malformed(too_long));
        }
        v.push(b);
    }
}

/// The SOCKS4 reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Socks4Reply {
    /// 0x5A: request granted.
    Granted = 0x5A,
    /// 0x5B: request rejected or failed.
    Rejected = 0x5B,
    /// 0x5C: rejected because the identd of the client is unreachable.
    IdentdUnreachable = 0x5C,
    /// 0x5D: rejected because identd reported a different user id.
    IdentdMismatch = 0x5D,
}

impl Socks4Reply {
    /// The code for a byte, if it is one of the four defined.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0x5A => Some(Socks4Reply::Granted),
            0x5B => Some(Socks4Reply::Rejected),
            0x5C => Some(Socks4Reply::IdentdUnreachable),
            0x5D => Some(Socks4Reply::IdentdMismatch),
            _ => None,
        }
    }

    /// The 8-byte reply carrying `bound` (use `0.0.0.0:0` when there is nothing to report).
    pub fn encode(self, bound: SocketAddrV4) -> [u8; 8] {
        let p = bound.port().to_be_bytes();
        let o = bound.ip().octets();
        [0, self as u8, p[0], p[1], o[0], o[1], o[2], o[3]]
    }

    /// Decode an 8-byte reply (client side).
    pub fn decode(b: [u8; 8]) -> Result<(Self, SocketAddrV4), SocksError> {
        if b[0] != 0 {
            return Err(SocksError::BadVersion(b[0]));
        }
        let code = Self::from_u8(b[1]).ok_or(SocksError::Malformed("unknown SOCKS4 reply code"))?;
        let port = u16::from_be_bytes([b[2], b[3]]);
        let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
        Ok((code, SocketAddrV4::new(ip, port)))
    }

    /// Write the reply to a stream and flush it.
    pub async fn write<W: AsyncWrite + Unpin>(
        self,
        w: &mut W,
        bound: SocketAddrV4,
    ) -> Result<(), SocksError> {
        w.write_all(&self.encode(bound)).await?;
        w.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn parse(mut b: &[u8]) -> Result<Socks4Request, SocksError> {
        Socks4Request::read(&mut b).now_or_never().unwrap()
    }

    #[test]
    fn socks4_connect() {
        let r = parse(&[4, 1, 0, 80, 10, 0, 0, 1, b'b', b'o', b'b', 0]).unwrap();
        assert_eq!(r.target, SocksAddr::Ip("10.0.0.1:80".parse().unwrap()));
        assert_eq!(r.user_id, b"bob");
    }

    #[test]
    fn socks4a_connect() {
        let mut b = vec![4, 1, 1, 187, 0, 0, 0, 9, 0];
        b.extend_from_slice(b"example.org\0");
        let r = parse(&b).unwrap();
        assert_eq!(r.target, SocksAddr::Domain("example.org".into(), 443));
        assert!(r.user_id.is_empty());
        let mut enc = Vec::new();
        r.write_to(&mut enc).unwrap();
        assert_eq!(parse(&enc).unwrap(), r);
    }

    #[test]
    fn zero_ip_is_not_4a() {
        let r = parse(&[4, 1, 0, 80, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(r.target, SocksAddr::Ip("0.0.0.0:80".parse().unwrap()));
    }

    #[test]
    fn bind_is_unsupported_after_full_read() {
        let mut s: &[u8] = &[4, 2, 0, 80, 10, 0, 0, 1, 0, 0xEE];
        let e = Socks4Request::read(&mut s)
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, SocksError::UnsupportedCommand(2)));
        assert_eq!(e.socks4_reply_code(), Some(Socks4Reply::Rejected));
        assert_eq!(s, &[0xEE]);
    }

    #[test]
    fn bad_version_and_truncation() {
        assert!(matches!(
            parse(&[5, 1, 0, 80, 1, 1, 1, 1, 0]),
            Err(SocksError::BadVersion(5))
        ));
        assert!(parse(&[4, 1, 0, 80]).unwrap_err().is_truncated());
        assert!(
            parse(&[4, 1, 0, 80, 1, 1, 1, 1, b'a'])
                .unwrap_err()
                .is_truncated()
        );
        assert!(
            parse(&[4, 1, 0, 80, 0, 0, 0, 1, 0, b'a'])
                .unwrap_err()
                .is_truncated()
        );
    }

    #[test]
    fn user_id_bound() {
        let mut b = vec![4, 1, 0, 80, 1, 1, 1, 1];
        b.extend(std::iter::repeat_n(b'u', 255));
        b.push(0);
        assert_eq!(parse(&b).unwrap().user_id.len(), 255);
        let mut b = vec![4, 1, 0, 80, 1, 1, 1, 1];
        b.extend(std::iter::repeat_n(b'u', 256));
        b.push(0);
        assert!(matches!(parse(&b), Err(SocksError::Malformed(_))));
    }

    #[test]
    fn domain_bound() {
        let mut b = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
        b.extend(std::iter::repeat_n(b'd', 256));
        b.push(0);
        assert!(matches!(parse(&b), Err(SocksError::Malformed(_))));
        let b = [4, 1, 0, 80, 0, 0, 0, 1, 0, 0];
        assert!(matches!(parse(&b), Err(SocksError::Malformed(_))));
    }

    #[test]
    fn request_encode_errors() {
        let r = Socks4Request {
            target: SocksAddr::Ip("[::1]:1".parse().unwrap()),
            user_id: vec![],
        };
        assert!(matches!(
            r.write_to(&mut Vec::new()),
            Err(SocksError::UnsupportedAddrType(4))
        ));
        let r = Socks4Request {
            target: SocksAddr::Ip("1.1.1.1:1".parse().unwrap()),
            user_id: vec![1, 0],
        };
        assert!(r.write_to(&mut Vec::new()).is_err());
    }

    #[test]
    fn replies() {
        let bound = SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 0x1234);
        let g = Socks4Reply::Granted.encode(bound);
        assert_eq!(g, [0, 0x5A, 0x12, 0x34, 1, 2, 3, 4]);
        assert_eq!(
            Socks4Reply::decode(g).unwrap(),
            (Socks4Reply::Granted, bound)
        );
        let r = Socks4Reply::Rejected.encode(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(r, [0, 0x5B, 0, 0, 0, 0, 0, 0]);
        for c in [0x5A, 0x5B, 0x5C, 0x5D] {
            assert_eq!(Socks4Reply::from_u8(c).unwrap() as u8, c);
        }
        assert!(Socks4Reply::from_u8(0x5E).is_none());
        assert!(Socks4Reply::decode([4, 0x5A, 0, 0, 0, 0, 0, 0]).is_err());
        let mut out = Vec::new();
        Socks4Reply::Rejected
            .write(&mut out, bound)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(out[1], 0x5B);
    }
}
