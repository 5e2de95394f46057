//! Response heads: status line and header fields, interim 1xx responses included.
//!
//! [`ResponseHead::read`] reads one head; a `100 Continue` (or any other interim 1xx but 101) comes
//! back like any other and [`ResponseHead::is_interim`] tells the caller to forward it and read again.
//! Whitespace between a field name and its colon is tolerated and dropped on re-serialisation, as
//! RFC 9112 §5.1 asks of a proxy; obsolete line folding is rejected.

use bytes::Bytes;
use tokio::io::AsyncBufRead;

use crate::error::{HeadError, looks_like_version};
use crate::headers::{Headers, collect_headers};
use crate::method::Version;
use crate::reader::{HeadLimits, read_head_bytes};

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The protocol version.
    pub version: Version,
    /// The three-digit status code.
    pub status: u16,
    /// The reason phrase as received (possibly empty).
    pub reason: Bytes,
    /// Header fields in arrival order.
    pub headers: Headers,
}

impl ResponseHead {
    /// A head with no fields, for responses a proxy makes up itself.
    pub fn new(version: Version, status: u16, reason: &'static str) -> Self {
        Self {
            version,
            status,
            reason: Bytes::from_static(reason.as_bytes()),
            headers: Headers::new(),
        }
    }

    /// Reads and parses one response head; the caller bounds the wait.
    pub async fn read<R>(reader: &mut R, limits: &HeadLimits) -> Result<Self, HeadError>
    where
        R: AsyncBufRead + Unpin + ?Sized,
    {
        let buf = read_head_bytes(reader, limits.max_size).await?.freeze();
        Self::parse(&buf, limits.max_headers)
    }

    /// Parses a complete head (through its empty line) held in `buf`.
    pub fn parse(buf: &Bytes, max_headers: usize) -> Result<Self, HeadError> {
        let mut slots = vec![httparse::EMPTY_HEADER; crate::headers::slots_for(buf, max_headers)];
        let mut rsp = httparse::Response::new(&mut slots);
        let result = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .parse_response(&mut rsp, buf);
        match result {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
            Err(httparse::Error::Version) if first_word_is_version(buf) => {
                return Err(HeadError::UnsupportedVersion);
            }
            Err(e) => return Err(HeadError::from_httparse(e, max_headers)),
        }
        let (Some(minor), Some(status), Some(reason)) = (rsp.version, rsp.code, rsp.reason) else {
            return Err(HeadError::Malformed("incomplete status line"));
        };
        let version = Version::from_minor(minor).ok_or(HeadError::UnsupportedVersion)?;
        if !(100..=999).contains(&status) {
            return Err(HeadError::Malformed("invalid status code"));
        }
        Ok(Self {
            version,
            status,
            reason: buf.slice_ref(reason.as_bytes()),
            headers: collect_headers(buf, rsp.headers),
        })
    }

    /// Whether this is an interim response (1xx other than 101) that a final response will follow.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// Whether the sender wants the connection kept open after this response.
    pub fn keep_alive(&self) -> bool {
        crate::hop::keep_alive(self.version, &self.headers)
    }
}

/// Whether the first word of the first non-empty line looks like an HTTP version.
fn first_word_is_version(buf: &[u8]) -> bool {
    buf.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.is_empty())
        .and_then(|l| l.split(|b| *b == b' ').next())
        .is_some_and(looks_like_version)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, BufReader};

    fn parse(s: &str) -> Result<ResponseHead, HeadError> {
        ResponseHead::parse(&Bytes::copy_from_slice(s.as_bytes()), 8)
    }

    #[test]
    fn basic() {
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer : x\r\n\r\n").unwrap();
        assert_eq!(
            (r.status, &r.reason[..], r.version),
            (200, &b"OK"[..], Version::Http11)
        );
        assert_eq!(r.headers.get("server").map(|v| &v[..]), Some(&b"x"[..]));
        assert!(r.keep_alive());
        let r = parse("HTTP/1.0 204\r\n\r\n").unwrap();
        assert_eq!(
            (r.status, r.reason.is_empty(), r.keep_alive()),
            (204, true, false)
        );
    }

    #[test]
    fn interim() {
        assert!(parse("HTTP/1.1 100 Continue\r\n\r\n").unwrap().is_interim());
        assert!(
            parse("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
                .unwrap()
                .is_interim()
        );
        assert!(
            !parse("HTTP/1.1 101 Switching Protocols\r\n\r\n")
                .unwrap()
                .is_interim()
        );
        assert!(!parse("HTTP/1.1 200 OK\r\n\r\n").unwrap().is_interim());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse("HTTP/2 200 OK\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        ));
        assert!(matches!(
            parse("HTTP/1.1 20 OK\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("ICY 200 OK\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("HTTP/1.1 099 X\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn continue_then_final() {
        let data =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nX";
        let mut r = BufReader::new(&data[..]);
        let lim = HeadLimits::default();
        assert_eq!(ResponseHead::read(&mut r, &lim).await.unwrap().status, 100);
        assert_eq!(ResponseHead::read(&mut r, &lim).await.unwrap().status, 201);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"X");
    }
}
