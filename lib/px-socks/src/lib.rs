//! SOCKS4, SOCKS4a and SOCKS5 codecs: TCP handshake messages and SOCKS5 UDP datagram headers.
//!
//! Server side first (every decoder reads from an `AsyncRead` with bounded sizes), with client-side
//! encoders and reply decoders beside them. A server typically does:
//!
//! 1. [`read_version`] on the new connection: 0x04 → [`Socks4Request::read_after_version`],
//!    0x05 → [`Socks5Greeting::read_after_version`], then the method selection
//!    ([`AuthMethod::selection_reply`]), optionally [`UserPassRequest::read`], then
//!    [`Socks5Request::read`].
//! 2. On a decode error, send the reply named by [`SocksError::reply_code`] (SOCKS5) or
//!    [`SocksError::socks4_reply_code`] (SOCKS4), if any, and close.
//! 3. Answer with [`Socks5Reply`] / [`Socks4Reply`] carrying the bound address.
//!
//! UDP ASSOCIATE relays use [`decode_udp_header`] and [`encode_udp_header_before`].
//!
//! Wrap a raw socket in a `tokio::io::BufReader` before decoding: SOCKS4 user ids and domains are read
//! byte by byte up to their NUL. Bytes the client sent after the request stay in the reader's buffer.

mod addr;
mod auth;
mod error;
mod udp;
mod v4;
mod v5;

use tokio::io::{AsyncRead, AsyncReadExt};

pub use addr::{ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, MAX_ADDR_LEN, MAX_DOMAIN_LEN, SocksAddr};
pub use auth::{
    MAX_CREDENTIAL_LEN, USER_PASS_VERSION, UserPassRequest, decode_user_pass_reply,
    encode_user_pass_reply, write_user_pass_reply,
};
pub use error::SocksError;
pub use udp::{
    UDP_HEADER_MAX_LEN, decode_udp_header, encode_udp_header, encode_udp_header_before,
    udp_header_len,
};
pub use v4::{
    MAX_USER_ID_LEN, SOCKS4_CMD_BIND, SOCKS4_CMD_CONNECT, SOCKS4_VERSION, Socks4Reply,
    Socks4Request,
};
pub use v5::{
    AuthMethod, SOCKS5_VERSION, Socks5Command, Socks5Greeting, Socks5Reply, Socks5Request,
};

/// The SOCKS protocol version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocksVersion {
    /// SOCKS4 or SOCKS4a (first byte 0x04).
    V4,
    /// SOCKS5 (first byte 0x05).
    V5,
}

impl SocksVersion {
    /// The version for a first byte, if it is 0x04 or 0x05.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            SOCKS4_VERSION => Some(SocksVersion::V4),
            SOCKS5_VERSION => Some(SocksVersion::V5),
            _ => None,
        }
    }
}

/// Read (and consume) the first byte of a client connection and tell SOCKS4 from SOCKS5.
pub async fn read_version<R: AsyncRead + Unpin>(r: &mut R) -> Result<SocksVersion, SocksError> {
    let b = r.read_u8().await?;
    SocksVersion::from_u8(b).ok_or(SocksError::BadVersion(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn detects_versions() {
        let mut s: &[u8] = &[4, 1];
        assert_eq!(
            read_version(&mut s).now_or_never().unwrap().unwrap(),
            SocksVersion::V4
        );
        assert_eq!(s, &[1]);
        let mut s: &[u8] = &[5];
        assert_eq!(
            read_version(&mut s).now_or_never().unwrap().unwrap(),
            SocksVersion::V5
        );
        let mut s: &[u8] = b"GET";
        assert!(matches!(
            read_version(&mut s).now_or_never().unwrap(),
            Err(SocksError::BadVersion(b'G'))
        ));
        let mut s: &[u8] = &[];
        assert!(
            read_version(&mut s)
                .now_or_never()
                .unwrap()
                .unwrap_err()
                .is_truncated()
        );
    }

    #[test]
    fn full_socks5_handshake_over_one_buffer() {
        let mut input = Vec::new();
        Socks5Greeting {
            methods: vec![0, 2],
        }
        .write_to(&mut input)
        .unwrap();
        UserPassRequest {
            username: b"u".to_vec(),
            password: b"p".to_vec(),
        }
        .write_to(&mut input)
        .unwrap();
        Socks5Request {
            command: Socks5Command::Connect,
            target: SocksAddr::domain("x.org", 80).unwrap(),
        }
        .write_to(&mut input)
        .unwrap();
        input.extend_from_slice(b"early data");
        let mut s: &[u8] = &input;
        async {
            assert_eq!(read_version(&mut s).await.unwrap(), SocksVersion::V5);
            let g = Socks5Greeting::read_after_version(&mut s).await.unwrap();
            assert!(g.offers(AuthMethod::UserPass));
            let a = UserPassRequest::read(&mut s).await.unwrap();
            assert_eq!(a.username_str(), Some("u"));
            let r = Socks5Request::read(&mut s).await.unwrap();
            assert_eq!(r.target.to_string(), "x.org:80");
        }
        .now_or_never()
        .unwrap();
        assert_eq!(s, b"early data");
    }
}
