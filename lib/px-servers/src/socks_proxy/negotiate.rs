//! The SOCKS handshake up to the client's request, on one port for SOCKS4, 4a and 5.
//!
//! The first byte picks the version. Without a user group, SOCKS5 clients must offer "no
//! authentication" (0x00); a greeting without it gets method 0xFF and the connection closes. With
//! one, `auth.rs` selects the method and checks the credentials. A request that cannot be served
//! (BIND, an unknown command or address type, a malformed SOCKS4 request) gets its reply code here
//! (0x07, 0x08, 0x01, or SOCKS4 0x5B). The caller bounds the whole exchange with
//! `negotiation_timeout`; a client that stays silent or stops mid-message is dropped without a
//! reply.

use std::net::{Ipv4Addr, SocketAddrV4};

use px_core::UserCtx;
use px_socks::{
    Socks4Request, Socks5Command, Socks5Greeting, Socks5Reply, Socks5Request, SocksAddr,
    SocksError, SocksVersion, read_version,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::auth::SocksAuth;

/// A request the server will serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// SOCKS4 or 4a CONNECT.
    V4Connect(Socks4Request),
    /// SOCKS5 CONNECT to a target.
    V5Connect(SocksAddr),
    /// SOCKS5 UDP ASSOCIATE with the client's address hint.
    V5UdpAssociate(SocksAddr),
}

/// The SOCKS4 bound address used when there is none to report.
pub(crate) const SOCKS4_UNSPECIFIED: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

/// Reads the handshake; on a request it cannot serve, sends the reply code and fails. With
/// `auth` (a user group), authenticates the client (see `auth.rs`) and returns its user.
pub(crate) async fn negotiate<S>(
    s: &mut S,
    auth: Option<&SocksAuth<'_>>,
) -> Result<(Request, Option<UserCtx>), SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match read_version(s).await? {
        SocksVersion::V4 => match Socks4Request::read_after_version(s).await {
            Ok(r) => {
                let user = super::auth::socks4(s, &r, auth).await?;
                Ok((Request::V4Connect(r), user))
            }
            Err(e) => {
                if let Some(code) = e.socks4_reply_code() {
                    let _ = code.write(s, SOCKS4_UNSPECIFIED).await;
                }
                Err(e)
            }
        },
        SocksVersion::V5 => {
            let greeting = Socks5Greeting::read_after_version(s).await?;
            let user = super::auth::socks5(s, &greeting, auth).await?;
            let req = match Socks5Request::read(s).await {
                Ok(r) => r,
                Err(e) => {
                    if let Some(code) = e.reply_code() {
                        let _ = code.write(s, &SocksAddr::unspecified()).await;
                    }
                    return Err(e);
                }
            };
            match req.command {
                Socks5Command::Connect => Ok((Request::V5Connect(req.target), user)),
                Socks5Command::UdpAssociate => Ok((Request::V5UdpAssociate(req.target), user)),
                Socks5Command::Bind => {
                    let _ = Socks5Reply::CommandNotSupported
                        .write(s, &SocksAddr::unspecified())
                        .await;
                    Err(SocksError::UnsupportedCommand(Socks5Command::Bind as u8))
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    async fn run(input: &[u8]) -> (Result<Request, SocksError>, Vec<u8>) {
        let (mut server, mut client) = duplex(4096);
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let r = negotiate(&mut server, None).await.map(|(r, _)| r);
        drop(server);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        (r, out)
    }

    #[tokio::test]
    async fn socks5_connect() {
        let (r, out) = run(&[5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80]).await;
        assert_eq!(
            r.unwrap(),
            Request::V5Connect(SocksAddr::Ip("10.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(out, [5, 0]);
    }

    #[tokio::test]
    async fn socks5_udp_associate() {
        let (r, _) = run(&[5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0x30, 0x39]).await;
        assert!(matches!(r.unwrap(), Request::V5UdpAssociate(a) if a.is_unspecified_ip()));
    }

    #[tokio::test]
    async fn socks5_no_acceptable_method() {
        let (r, out) = run(&[5, 1, 2]).await;
        assert!(r.is_err());
        assert_eq!(out, [5, 0xFF]);
    }

    #[tokio::test]
    async fn socks5_bind_and_unknown_command() {
        let (r, out) = run(&[5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80]).await;
        assert!(r.is_err());
        assert_eq!(out, [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
        let (r, out) = run(&[5, 1, 0, 5, 9, 0, 1, 1, 2, 3, 4, 0, 80]).await;
        assert!(matches!(r, Err(SocksError::UnsupportedCommand(9))));
        assert_eq!(out[3], 7);
    }

    #[tokio::test]
    async fn socks5_bad_atyp() {
        let (r, out) = run(&[5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80]).await;
        assert!(matches!(r, Err(SocksError::UnsupportedAddrType(9))));
        assert_eq!(out, [5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn truncated_greeting_gets_no_reply() {
        let (r, out) = run(&[5, 2, 0]).await;
        assert!(r.unwrap_err().is_truncated());
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn socks4_and_4a() {
        let (r, out) = run(&[4, 1, 0, 80, 127, 0, 0, 1, 0]).await;
        assert!(matches!(r.unwrap(), Request::V4Connect(_)));
        assert!(out.is_empty());
        let mut b = vec![4, 1, 0, 80, 0, 0, 0, 1, b'u', 0];
        b.extend_from_slice(b"example.net\0");
        let (r, _) = run(&b).await;
        let Request::V4Connect(req) = r.unwrap() else {
            panic!("not socks4")
        };
        assert_eq!(req.target, SocksAddr::Domain("example.net".into(), 80));
        let (r, out) = run(&[4, 2, 0, 80, 127, 0, 0, 1, 0]).await;
        assert!(r.is_err());
        assert_eq!(out, [0, 0x5B, 0, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn other_protocol_is_dropped() {
        let (r, out) = run(b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(matches!(r, Err(SocksError::BadVersion(b'G'))));
        assert!(out.is_empty());
    }
}
