//! Errors of head parsing.
//!
//! [`HeadError`] tells a proxy which answer fits: nothing at all when an idle keep-alive client just
//! went away ([`HeadError::Closed`]), 431 for a head over the limit, 400 for a malformed or truncated
//! head, 505 for a version other than HTTP/1.0 and 1.1. [`HeadError::status_code`] gives that choice
//! for a request head; for a response head the proxy answers 502 whatever the variant.

use std::io;

/// Why a request or response head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The peer closed the connection before sending any byte of a head (an idle keep-alive ends).
    #[error("connection closed before a head started")]
    Closed,
    /// The peer closed the connection in the middle of a head.
    #[error("connection closed after {received} bytes of an incomplete head")]
    Truncated {
        /// Bytes of the head received before the end of stream.
        received: usize,
    },
    /// The head did not end within the size limit.
    #[error("head larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The head has more header fields than allowed.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The head violates HTTP/1 syntax.
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    /// The start line names a version other than HTTP/1.0 or HTTP/1.1.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// Reading from the peer failed.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

impl HeadError {
    /// The status a server should answer a bad request head with, or `None` if nothing can be sent.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Closed | Self::Io(_) => None,
            Self::TooLarge { .. } | Self::TooManyHeaders { .. } => Some(431),
            Self::Truncated { .. } | Self::Malformed(_) => Some(400),
            Self::UnsupportedVersion => Some(505),
        }
    }

    /// Maps an httparse error into this type.
    pub(crate) fn from_httparse(e: httparse::Error, max_headers: usize) -> Self {
        match e {
            httparse::Error::Version => Self::Malformed("invalid HTTP version"),
            httparse::Error::TooManyHeaders => Self::TooManyHeaders { limit: max_headers },
            httparse::Error::HeaderName => Self::Malformed("invalid header name"),
            httparse::Error::HeaderValue => Self::Malformed("invalid header value"),
            httparse::Error::NewLine => Self::Malformed("invalid line ending"),
            httparse::Error::Status => Self::Malformed("invalid status code"),
            httparse::Error::Token => Self::Malformed("invalid token in start line"),
        }
    }
}

/// Whether `token` looks like an HTTP version (`HTTP/x.y` or `HTTP/x`), so that a version error is
/// "unsupported" (505) rather than "malformed" (400).
pub(crate) fn looks_like_version(token: &[u8]) -> bool {
    match token.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(HeadError::Closed.status_code(), None);
        assert_eq!(HeadError::TooLarge { limit: 1 }.status_code(), Some(431));
        assert_eq!(HeadError::Malformed("x").status_code(), Some(400));
        assert_eq!(HeadError::UnsupportedVersion.status_code(), Some(505));
        assert!(looks_like_version(b"HTTP/2.0"));
        assert!(looks_like_version(b"HTTP/2"));
        assert!(!looks_like_version(b"HTTP/1.10"));
        assert!(!looks_like_version(b"FOO"));
    }
}
