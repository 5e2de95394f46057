//! Request heads: start line, target and header fields.
//!
//! [`RequestHead::read`] reads one head from a buffered stream within [`HeadLimits`] and parses it with
//! httparse; the body, if any, stays in the reader for [`crate::copy_body`]. The caller wraps the call
//! in a timeout. More than one `Host` field is rejected as malformed (RFC 9112 §3.2).

use bytes::Bytes;
use tokio::io::AsyncBufRead;

use crate::error::{HeadError, looks_like_version};
use crate::headers::{Headers, collect_headers};
use crate::method::{Method, Version};
use crate::reader::{HeadLimits, read_head_bytes};
use crate::target::{Authority, RequestTarget};

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request-target, parsed.
    pub target: RequestTarget,
    /// The protocol version.
    pub version: Version,
    /// Header fields in arrival order.
    pub headers: Headers,
}

impl RequestHead {
    /// Reads and parses one request head; the caller bounds the wait.
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
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
            Err(httparse::Error::Version) if version_is_plausible(buf) => {
                return Err(HeadError::UnsupportedVersion);
            }
            Err(e) => return Err(HeadError::from_httparse(e, max_headers)),
        }
        let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HeadError::Malformed("incomplete start line"));
        };
        let version = Version::from_minor(minor).ok_or(HeadError::UnsupportedVersion)?;
        let method = Method::from_token(method);
        let target = RequestTarget::parse(&method, path).map_err(HeadError::Malformed)?;
        let headers = collect_headers(buf, req.headers);
        if headers.get_all("host").nth(1).is_some() {
            return Err(HeadError::Malformed("more than one Host field"));
        }
        Ok(Self {
            method,
            target,
            version,
            headers,
        })
    }

    /// The host and port this request is for: from the target, or from `Host` for origin-form
    /// (port 80 by default). `None` when no valid authority is given.
    pub fn authority(&self) -> Option<Authority> {
        match &self.target {
            RequestTarget::Absolute(u) => Some(u.authority.clone()),
            RequestTarget::Authority(a) => Some(a.clone()),
            RequestTarget::Origin(_) | RequestTarget::Asterisk => {
                let host = std::str::from_utf8(self.headers.get("host")?).ok()?;
                Authority::parse(host, Some(80)).ok()
            }
        }
    }

    /// Whether the client waits for `100 Continue` before sending its body (HTTP/1.1 only, RFC 9110
    /// §10.1.1: a server ignores the expectation in an HTTP/1.0 request).
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11
            && self
                .headers
                .get_all("expect")
                .any(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }

    /// The `Proxy-Authorization` value, which is never forwarded but authenticates the client.
    pub fn proxy_authorization(&self) -> Option<&Bytes> {
        self.headers.get("proxy-authorization")
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        crate::hop::keep_alive(self.version, &self.headers)
    }
}

/// Whether the first non-empty line has three words, the last looking like an HTTP version.
fn version_is_plausible(buf: &[u8]) -> bool {
    let Some(line) = buf
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.is_empty())
    else {
        return false;
    };
    let mut words = line.split(|b| *b == b' ');
    matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(_), Some(_), Some(v), None) if looks_like_version(v)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::target::Host;
    use tokio::io::BufReader;

    fn parse(s: &str) -> Result<RequestHead, HeadError> {
        RequestHead::parse(&Bytes::copy_from_slice(s.as_bytes()), 16)
    }

    #[test]
    fn absolute_form_get() {
        let r = parse("GET http://Ex.com:81/a?b HTTP/1.1\r\nHost: ignored\r\nX-A:  v \r\n\r\n")
            .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.version, Version::Http11);
        assert_eq!(r.authority().unwrap().to_string(), "ex.com:81");
        assert_eq!(r.headers.get("x-a").map(|v| &v[..]), Some(&b"v"[..]));
        assert_eq!(
            r.headers.iter().nth(1).map(|h| &h.name[..]),
            Some(&b"X-A"[..])
        );
        assert!(r.keep_alive());
    }

    #[test]
    fn origin_form_uses_host() {
        let r = parse("GET /x HTTP/1.0\r\nHost: [::1]:8080\r\n\r\n").unwrap();
        let a = r.authority().unwrap();
        assert_eq!((a.host, a.port), (Host::Ip("::1".parse().unwrap()), 8080));
        assert!(!r.keep_alive());
        assert!(
            parse("GET /x HTTP/1.1\r\n\r\n")
                .unwrap()
                .authority()
                .is_none()
        );
        assert!(parse("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_err());
    }

    #[test]
    fn connect_and_expect() {
        let r =
            parse("CONNECT [2001:db8::2]:443 HTTP/1.1\r\nProxy-Authorization: Basic eA==\r\n\r\n")
                .unwrap();
        assert_eq!(r.authority().unwrap().port, 443);
        assert_eq!(
            r.proxy_authorization().map(|v| &v[..]),
            Some(&b"Basic eA=="[..])
        );
        let r = parse("PUT http://a/ HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").unwrap();
        assert!(r.expects_continue());
        let r = parse("PUT http://a/ HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!r.expects_continue());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse("GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        ));
        assert!(matches!(
            parse("GET / HTTP/1.2\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        ));
        assert!(matches!(
            parse("GET / FOO/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET /\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET http://a b HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET ftp:/x HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("CONNECT a HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\n folded\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let many: String = (0..17).map(|i| format!("H{i}: v\r\n")).collect();
        assert!(matches!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(HeadError::TooManyHeaders { limit: 16 })
        ));
    }

    #[tokio::test]
    async fn read_from_stream() {
        let data = b"POST http://a/ HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET";
        let mut r = BufReader::new(&data[..]);
        let head = RequestHead::read(&mut r, &HeadLimits::default())
            .await
            .unwrap();
        assert_eq!(head.method, Method::Post);
        let limits = HeadLimits {
            max_size: 10,
            max_headers: 4,
        };
        let mut r = BufReader::new(&data[..]);
        assert!(matches!(
            RequestHead::read(&mut r, &limits).await,
            Err(HeadError::TooLarge { limit: 10 })
        ));
    }
}
