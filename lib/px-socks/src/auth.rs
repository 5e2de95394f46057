//! SOCKS5 username/password sub-negotiation (RFC 1929).
//!
//! After the server selects method 0x02 the client sends
//! `VER=0x01 ULEN UNAME(1..=255) PLEN PASSWD(1..=255)`; the server answers `VER=0x01 STATUS` where
//! STATUS 0x00 is success and anything else failure (the server then closes). Empty names and
//! passwords are accepted on read, as some clients send them.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::SocksError;

/// Version byte of the RFC 1929 sub-negotiation.
pub const USER_PASS_VERSION: u8 = 0x01;
/// Longest username or password, in bytes.
pub const MAX_CREDENTIAL_LEN: usize = 255;

/// A username/password request.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPassRequest {
    /// The username bytes (at most 255).
    pub username: Vec<u8>,
    /// The password bytes (at most 255).
    pub password: Vec<u8>,
}

impl std::fmt::Debug for UserPassRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPassRequest")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("password", &"<redacted>")
            .finish()
    }
}

impl UserPassRequest {
    /// Read the request from a stream.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, SocksError> {
        let v = r.read_u8().await?;
        if v != USER_PASS_VERSION {
            return Err(SocksError::BadVersion(v));
        }
        let username = read_len_prefixed(r).await?;
        let password = read_len_prefixed(r).await?;
        Ok(UserPassRequest { username, password })
    }

    /// The username as UTF-8, if it is.
    pub fn username_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.username).ok()
    }

    /// The password as UTF-8, if it is.
    pub fn password_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.password).ok()
    }

    /// Append the encoded request to `out` (client side).
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), SocksError> {
        let (Ok(ulen), Ok(plen)) = (
            u8::try_from(self.username.len()),
            u8::try_from(self.password.len()),
        ) else {
            return Err(SocksError::Malformed(
                "username or password longer than 255 bytes",
            ));
        };
        out.push(USER_PASS_VERSION);
        out.push(ulen);
        out.extend_from_slice(&self.username);
        out.push(plen);
        out.extend_from_slice(&self.password);
        Ok(())
    }
}

async fn read_len_prefixed<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, SocksError> {
    let len = usize::from(r.read_u8().await?);
    let mut v = vec![0u8; len];
    r.read_exact(&mut v).await?;
    Ok(v)
}

/// The two-byte sub-negotiation reply: status 0x00 on success, 0x01 on failure.
pub fn encode_user_pass_reply(success: bool) -> [u8; 2] {
    [USER_PASS_VERSION, if success { 0x00 } else { 0x01 }]
}

/// Decode a sub-negotiation reply (client side): true on success.
pub fn decode_user_pass_reply(b: [u8; 2]) -> Result<bool, SocksError> {
    if b[0] != USER_PASS_VERSION {
        return Err(SocksError::BadVersion(b[0]));
    }
    Ok(b[1] == 0)
}

/// Write the sub-negotiation reply and flush it.
pub async fn write_user_pass_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    success: bool,
) -> Result<(), SocksError> {
    w.write_all(&encode_user_pass_reply(success)).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn parse(mut b: &[u8]) -> Result<UserPassRequest, SocksError> {
        UserPassRequest::read(&mut b).now_or_never().unwrap()
    }

    #[test]
    fn parse_and_encode() {
        let r = parse(&[1, 3, b'b', b'o', b'b', 2, b'p', b'w']).unwrap();
        assert_eq!(r.username_str(), Some("bob"));
        assert_eq!(r.password_str(), Some("pw"));
        let mut v = Vec::new();
        r.write_to(&mut v).unwrap();
        assert_eq!(parse(&v).unwrap(), r);
        assert!(!format!("{r:?}").contains("pw"));
    }

    #[test]
    fn empty_credentials_and_errors() {
        let r = parse(&[1, 0, 0]).unwrap();
        assert!(r.username.is_empty() && r.password.is_empty());
        assert!(matches!(parse(&[5, 0, 0]), Err(SocksError::BadVersion(5))));
        assert!(parse(&[1, 3, b'a']).unwrap_err().is_truncated());
        assert!(parse(&[1, 1, b'a']).unwrap_err().is_truncated());
        assert!(parse(&[1, 1, b'a', 2, b'x']).unwrap_err().is_truncated());
        let r = UserPassRequest {
            username: vec![b'a'; 256],
            password: vec![],
        };
        assert!(r.write_to(&mut Vec::new()).is_err());
        let r = parse(&[1, 1, 0xff, 0]).unwrap();
        assert_eq!(r.username_str(), None);
    }

    #[test]
    fn replies() {
        assert_eq!(encode_user_pass_reply(true), [1, 0]);
        assert_eq!(encode_user_pass_reply(false), [1, 1]);
        assert!(decode_user_pass_reply([1, 0]).unwrap());
        assert!(!decode_user_pass_reply([1, 1]).unwrap());
        assert!(decode_user_pass_reply([5, 0]).is_err());
        let mut out = Vec::new();
        write_user_pass_reply(&mut out, false)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(out, [1, 1]);
    }
}
