//! Errors of the SOCKS codecs.
//!
//! Every decoder returns [`SocksError`]. A server branches on it to pick the reply it still owes the
//! client: [`SocksError::reply_code`] for SOCKS5, [`SocksError::socks4_reply_code`] for SOCKS4. Errors
//! without a reply code (EOF, a wrong version byte, an I/O failure) mean the connection is simply
//! closed.

use crate::v4::Socks4Reply;
use crate::v5::Socks5Reply;

/// Why a SOCKS message could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    /// The peer closed the stream (or the datagram ended) before the message was complete.
    #[error("truncated SOCKS message: the input ended before the message was complete")]
    Truncated,
    /// Reading from or writing to the stream failed.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// The version byte is not the one this message requires.
    #[error("unsupported SOCKS version byte {0:#04x}")]
    BadVersion(u8),
    /// The command code is unknown or not supported here.
    #[error("unsupported SOCKS command {0:#04x}")]
    UnsupportedCommand(u8),
    /// The address type byte is unknown.
    #[error("unsupported SOCKS address type {0:#04x}")]
    UnsupportedAddrType(u8),
    /// The message is structurally invalid.
    #[error("malformed SOCKS message: {0}")]
    Malformed(&'static str),
    /// A SOCKS5 UDP datagram with a non-zero FRAG field; such datagrams are dropped.
    #[error("fragmented SOCKS5 UDP datagram (FRAG {0:#04x}) is not supported")]
    Fragmented(u8),
    /// A domain name longer than 255 bytes cannot be encoded.
    #[error("domain name of {0} bytes is longer than the 255 bytes SOCKS allows")]
    DomainTooLong(usize),
    /// The output buffer is too small for the encoded message.
    #[error("output buffer of {have} bytes is too small, {need} bytes needed")]
    BufferTooSmall {
        /// Bytes the encoded message needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
}

impl SocksError {
    /// The SOCKS5 reply the server should still send before closing, if any.
    pub fn reply_code(&self) -> Option<Socks5Reply> {
        match self {
            SocksError::UnsupportedCommand(_) => Some(Socks5Reply::CommandNotSupported),
            SocksError::UnsupportedAddrType(_) => Some(Socks5Reply::AddressTypeNotSupported),
            SocksError::Malformed(_) | SocksError::DomainTooLong(_) => {
                Some(Socks5Reply::GeneralFailure)
            }
            SocksError::Truncated
            | SocksError::Io(_)
            | SocksError::BadVersion(_)
            | SocksError::Fragmented(_)
            | SocksError::BufferTooSmall { .. } => None,
        }
    }

    /// The SOCKS4 reply the server should still send before closing, if any.
    pub fn socks4_reply_code(&self) -> Option<Socks4Reply> {
        match self {
            SocksError::UnsupportedCommand(_)
            | SocksError::UnsupportedAddrType(_)
            | SocksError::Malformed(_)
            | SocksError::DomainTooLong(_) => Some(Socks4Reply::Rejected),
            SocksError::Truncated
            | SocksError::Io(_)
            | SocksError::BadVersion(_)
            | SocksError::Fragmented(_)
            | SocksError::BufferTooSmall { .. } => None,
        }
    }

    /// True when the input ended early (EOF on a stream, a short datagram).
    pub fn is_truncated(&self) -> bool {
        matches!(self, SocksError::Truncated)
    }
}

impl From<std::io::Error> for SocksError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SocksError::Truncated
        } else {
            SocksError::Io(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eof_maps_to_truncated() {
        let e = SocksError::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(e.is_truncated());
        assert!(e.reply_code().is_none());
        let e = SocksError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(e, SocksError::Io(_)));
    }

    #[test]
    fn reply_codes() {
        assert_eq!(
            SocksError::UnsupportedCommand(9).reply_code(),
            Some(Socks5Reply::CommandNotSupported)
        );
        assert_eq!(
            SocksError::UnsupportedAddrType(9).reply_code(),
            Some(Socks5Reply::AddressTypeNotSupported)
        );
        assert_eq!(
            SocksError::Malformed("x").reply_code(),
            Some(Socks5Reply::GeneralFailure)
        );
        assert_eq!(SocksError::BadVersion(4).reply_code(), None);
        assert_eq!(
            SocksError::UnsupportedCommand(2).socks4_reply_code(),
            Some(Socks4Reply::Rejected)
        );
        assert_eq!(SocksError::Truncated.socks4_reply_code(), None);
    }
}
