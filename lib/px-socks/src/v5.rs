//! SOCKS5 (RFC 1928) TCP handshake messages.
//!
//! - Greeting `VER=5 NMETHODS METHODS…` ([`Socks5Greeting`]), answered by `VER=5 METHOD`
//!   ([`AuthMethod::selection_reply`]): 0x00 no auth, 0x02 username/password (then
//!   [`crate::UserPassRequest`]), 0xFF nothing acceptable.
//! - Request `VER=5 CMD RSV ATYP DST.ADDR DST.PORT` ([`Socks5Request`]) with CONNECT, BIND and
//!   UDP ASSOCIATE; an unknown ATYP is [`SocksError::UnsupportedAddrType`] (reply 0x08), an unknown
//!   command [`SocksError::UnsupportedCommand`] (reply 0x07).
//! - Reply `VER=5 REP RSV ATYP BND.ADDR BND.PORT` ([`Socks5Reply`], codes 0x00..=0x08).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{SocksAddr, SocksError};

/// Version byte of SOCKS5 messages.
pub const SOCKS5_VERSION: u8 = 0x05;

/// An authentication method code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// 0x00: no authentication required.
    NoAuth,
    /// 0x01: GSSAPI (not implemented by this crate).
    Gssapi,
    /// 0x02: username/password, RFC 1929.
    UserPass,
    /// 0xFF: no acceptable methods (only in the server's selection).
    NoAcceptable,
    /// Any other code.
    Other(u8),
}

impl AuthMethod {
    /// The method for a code byte.
    pub fn from_u8(b: u8) -> Self {
        match b {
            0x00 => AuthMethod::NoAuth,
            0x01 => AuthMethod::Gssapi,
            0x02 => AuthMethod::UserPass,
            0xFF => AuthMethod::NoAcceptable,
            o => AuthMethod::Other(o),
        }
    }

    /// The code byte.
    pub fn as_u8(self) -> u8 {
        match self {
            AuthMethod::NoAuth => 0x00,
            AuthMethod::Gssapi => 0x01,
            AuthMethod::UserPass => 0x02,
            AuthMethod::NoAcceptable => 0xFF,
            AuthMethod::Other(o) => o,
        }
    }

    /// The server's method selection message `VER=5 METHOD`.
    pub fn selection_reply(self) -> [u8; 2] {
        [SOCKS5_VERSION, self.as_u8()]
    }

    /// Decode a method selection message (client side).
    pub fn decode_selection(b: [u8; 2]) -> Result<Self, SocksError> {
        if b[0] != SOCKS5_VERSION {
            return Err(SocksError::BadVersion(b[0]));
        }
        Ok(Self::from_u8(b[1]))
    }

    /// Write the method selection message and flush it.
    pub async fn write_selection<W: AsyncWrite + Unpin>(self, w: &mut W) -> Result<(), SocksError> {
        w.write_all(&self.selection_reply()).await?;
        w.flush().await?;
        Ok(())
    }
}

/// The client's greeting: the methods it offers (0..=255 of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks5Greeting {
    /// Offered method codes, in the client's order.
    pub methods: Vec<u8>,
}

impl Socks5Greeting {
    /// Read a whole greeting, version byte included.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let v = r.read_u8().await?;
        if v != SOCKS5_VERSION {
            return Err(SocksError::BadVersion(v));
        }
        Self::read_after_version(r).await
    }

    /// Read a greeting whose version byte has already been consumed (see [`crate::read_version`]).
    pub async fn read_after_version<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let n = usize::from(r.read_u8().await?);
        let mut methods = vec![0u8; n];
        r.read_exact(&mut methods).await?;
        Ok(Socks5Greeting { methods })
    }

    /// True when the client offers `m`.
    pub fn offers(&self, m: AuthMethod) -> bool {
        self.methods.contains(&m.as_u8())
    }

    /// Append the encoded greeting to `out` (client side).
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), SocksError> {
        let n = u8::try_from(self.methods.len())
            .map_err(|_| SocksError::Malformed("more than 255 methods"))?;
        out.extend_from_slice(&[SOCKS5_VERSION, n]);
        out.extend_from_slice(&self.methods);
        Ok(())
    }
}

/// A SOCKS5 request command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Socks5Command {
    /// 0x01: CONNECT.
    Connect = 0x01,
    /// 0x02: BIND.
    Bind = 0x02,
    /// 0x03: UDP ASSOCIATE.
    UdpAssociate = 0x03,
}

impl Socks5Command {
    /// The command for a code byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Socks5Command::Connect),
            0x02 => Some(Socks5Command::Bind),
            0x03 => Some(Socks5Command::UdpAssociate),
            _ => None,
        }
    }
}

/// A SOCKS5 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks5Request {
    /// The command.
    pub command: Socks5Command,
    /// DST.ADDR and DST.PORT (for UDP ASSOCIATE, the client's hint of where it will send from).
    pub target: SocksAddr,
}

impl Socks5Request {
    /// Read a request; the address is read in full before an unknown command is reported.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let mut head = [0u8; 4];
        r.read_exact(&mut head).await?;
        let [ver, cmd, _rsv, atyp] = head;
        if ver != SOCKS5_VERSION {
            return Err(SocksError::BadVersion(ver));
        }
        let target = SocksAddr::read_after_atyp(r, atyp).await?;
        let command = Socks5Command::from_u8(cmd).ok_or(SocksError::UnsupportedCommand(cmd))?;
        Ok(Socks5Request { command, target })
    }

    /// Append the encoded request to `out` (client side).
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), SocksError> {
        let start = out.len();
        out.extend_from_slice(&[SOCKS5_VERSION, self.command as u8, 0]);
        self.target
            .write_to(out)
            .inspect_err(|_| out.truncate(start))
    }
}

/// The SOCKS5 reply codes of RFC 1928.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Socks5Reply {
    /// 0x00: succeeded.
    Succeeded = 0x00,
    /// 0x01: general SOCKS server failure.
    GeneralFailure = 0x01,
    /// 0x02: connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// 0x03: network unreachable.
    NetworkUnreachable = 0x03,
    /// 0x04: host unreachable.
    HostUnreachable = 0x04,
    /// 0x05: connection refused.
    ConnectionRefused = 0x05,
    /// 0x06: TTL expired (used for connect timeouts).
    TtlExpired = 0x06,
    /// 0x07: command not supported.
    CommandNotSupported = 0x07,
    /// 0x08: address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl Socks5Reply {
    /// The reply for a code byte, if it is one of the nine defined.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x00 => Socks5Reply::Succeeded,
            0x01 => Socks5Reply::GeneralFailure,
            0x02 => Socks5Reply::NotAllowed,
            0x03 => Socks5Reply::NetworkUnreachable,
            0x04 => Socks5Reply::HostUnreachable,
            0x05 => Socks5Reply::ConnectionRefused,
            0x06 => Socks5Reply::TtlExpired,
            0x07 => Socks5Reply::CommandNotSupported,
            0x08 => Socks5Reply::AddressTypeNotSupported,
            _ => return None,
        })
    }

    /// Append the reply `VER REP RSV ATYP BND.ADDR BND.PORT` to `out`.
    pub fn write_to(self, bound: &SocksAddr, out: &mut Vec<u8>) -> Result<(), SocksError> {
        let start = out.len();
        out.extend_from_slice(&[SOCKS5_VERSION, self as u8, 0]);
        bound.write_to(out).inspect_err(|_| out.truncate(start))
    }

    /// Write the reply to a stream and flush it.
    pub async fn write<W: AsyncWrite + Unpin>(
        self,
        w: &mut W,
        bound: &SocksAddr,
    ) -> Result<(), SocksError> {
        let mut buf = Vec::with_capacity(3 + bound.encoded_len());
        self.write_to(bound, &mut buf)?;
        w.write_all(&buf).await?;
        w.flush().await?;
        Ok(())
    }

    /// Read a reply and its bound address (client side).
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Self, SocksAddr), SocksError> {
        let mut head = [0u8; 4];
        r.read_exact(&mut head).await?;
        let [ver, rep, _rsv, atyp] = head;
        if ver != SOCKS5_VERSION {
            return Err(SocksError::BadVersion(ver));
        }
        let bound = SocksAddr::read_after_atyp(r, atyp).await?;
        let rep = Self::from_u8(rep).ok_or(SocksError::Malformed("unknown SOCKS5 reply code"))?;
        Ok((rep, bound))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn req(mut b: &[u8]) -> Result<Socks5Request, SocksError> {
        Socks5Request::read(&mut b).now_or_never().unwrap()
    }

    #[test]
    fn greeting() {
        let mut s: &[u8] = &[5, 2, 0, 2];
        let g = Socks5Greeting::read(&mut s)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(g.offers(AuthMethod::NoAuth) && g.offers(AuthMethod::UserPass));
        assert!(!g.offers(AuthMethod::Gssapi));
        let mut v = Vec::new();
        g.write_to(&mut v).unwrap();
        assert_eq!(v, [5, 2, 0, 2]);
        let mut s: &[u8] = &[5, 0];
        let g = Socks5Greeting::read(&mut s)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(g.methods.is_empty());
        let mut s: &[u8] = &[4, 1, 0];
        let e = Socks5Greeting::read(&mut s).now_or_never().unwrap();
        assert!(matches!(e, Err(SocksError::BadVersion(4))));
        let mut s: &[u8] = &[5, 3, 0];
        let e = Socks5Greeting::read(&mut s).now_or_never().unwrap();
        assert!(e.unwrap_err().is_truncated());
        let mut s: &[u8] = &[5];
        let e = Socks5Greeting::read(&mut s).now_or_never().unwrap();
        assert!(e.unwrap_err().is_truncated());
        let g = Socks5Greeting {
            methods: vec![0; 256],
        };
        assert!(g.write_to(&mut Vec::new()).is_err());
    }

    #[test]
    fn method_selection() {
        assert_eq!(AuthMethod::NoAuth.selection_reply(), [5, 0]);
        assert_eq!(AuthMethod::UserPass.selection_reply(), [5, 2]);
        assert_eq!(AuthMethod::NoAcceptable.selection_reply(), [5, 0xFF]);
        for b in 0..=255u8 {
            assert_eq!(AuthMethod::from_u8(b).as_u8(), b);
        }
        assert_eq!(
            AuthMethod::decode_selection([5, 2]).unwrap(),
            AuthMethod::UserPass
        );
        assert!(AuthMethod::decode_selection([4, 2]).is_err());
        let mut out = Vec::new();
        AuthMethod::NoAcceptable
            .write_selection(&mut out)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(out, [5, 0xFF]);
    }

    #[test]
    fn requests() {
        let r = req(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]).unwrap();
        assert_eq!(r.command, Socks5Command::Connect);
        assert_eq!(r.target, SocksAddr::Ip("127.0.0.1:80".parse().unwrap()));
        let r = req(&[5, 3, 0, 1, 0, 0, 0, 0, 0x30, 0x39]).unwrap();
        assert_eq!(r.command, Socks5Command::UdpAssociate);
        assert!(r.target.is_unspecified_ip());
        assert_eq!(r.target.port(), 12345);
        let mut b = vec![5, 2, 0, 3, 7];
        b.extend_from_slice(b"a.b.com\x01\xbb");
        let r = req(&b).unwrap();
        assert_eq!(r.command, Socks5Command::Bind);
        assert_eq!(r.target, SocksAddr::Domain("a.b.com".into(), 443));
        let mut b = vec![5, 1, 0, 4];
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b.extend_from_slice(&[0; 11]);
        b.extend_from_slice(&[1, 0, 22]);
        let r = req(&b).unwrap();
        assert_eq!(r.target, SocksAddr::Ip("[2001:db8::1]:22".parse().unwrap()));
        let mut v = Vec::new();
        r.write_to(&mut v).unwrap();
        assert_eq!(v, b);
    }

    #[test]
    fn request_errors() {
        let e = req(&[5, 9, 0, 1, 1, 1, 1, 1, 0, 80]).unwrap_err();
        assert!(matches!(e, SocksError::UnsupportedCommand(9)));
        assert_eq!(e.reply_code(), Some(Socks5Reply::CommandNotSupported));
        let e = req(&[5, 1, 0, 2, 1, 1, 1, 1, 0, 80]).unwrap_err();
        assert!(matches!(e, SocksError::UnsupportedAddrType(2)));
        assert_eq!(e.reply_code(), Some(Socks5Reply::AddressTypeNotSupported));
        assert!(matches!(
            req(&[4, 1, 0, 1, 1, 1, 1, 1, 0, 80]),
            Err(SocksError::BadVersion(4))
        ));
        assert!(req(&[5, 1, 0]).unwrap_err().is_truncated());
        assert!(req(&[5, 1, 0, 1, 1, 1]).unwrap_err().is_truncated());
        assert!(
            req(&[5, 1, 0, 3, 4, b'a', b'b'])
                .unwrap_err()
                .is_truncated()
        );
        let e = req(&[5, 1, 0, 3, 0, 0, 80]).unwrap_err();
        assert_eq!(e.reply_code(), Some(Socks5Reply::GeneralFailure));
    }

    #[test]
    fn replies() {
        for code in 0..=8u8 {
            let r = Socks5Reply::from_u8(code).unwrap();
            assert_eq!(r as u8, code);
            let mut v = Vec::new();
            r.write_to(&SocksAddr::unspecified(), &mut v).unwrap();
            assert_eq!(v, [5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
        }
        assert!(Socks5Reply::from_u8(9).is_none());
        let bound = SocksAddr::Ip("[::1]:1080".parse().unwrap());
        let mut out = Vec::new();
        Socks5Reply::Succeeded
            .write(&mut out, &bound)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(out.len(), 22);
        let mut s: &[u8] = &out;
        let (rep, b) = Socks5Reply::read(&mut s).now_or_never().unwrap().unwrap();
        assert_eq!((rep, b), (Socks5Reply::Succeeded, bound));
        let mut s: &[u8] = &[5, 9, 0, 1, 0, 0, 0, 0, 0, 0];
        assert!(Socks5Reply::read(&mut s).now_or_never().unwrap().is_err());
        let mut v = vec![1];
        let long = SocksAddr::Domain("x".repeat(256), 1);
        assert!(Socks5Reply::Succeeded.write_to(&long, &mut v).is_err());
        assert_eq!(v, [1]);
    }
}
