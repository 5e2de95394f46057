//! Message body framing (RFC 9112 §6).
//!
//! [`request_framing`] and [`response_framing`] decide how long a body is before a proxy copies it
//! with [`crate::copy_body`]. Requests are held to the strict rules a proxy needs against request
//! smuggling: an invalid or conflicting `Content-Length`, a `Transfer-Encoding` whose final coding is
//! not `chunked`, both fields at once, or `Transfer-Encoding` in HTTP/1.0 are errors (answer 400).
//! Responses follow the full algorithm: HEAD, 1xx, 204 and 304 have no body, a 2xx to CONNECT and a
//! 101 turn the connection into a tunnel, `chunked` wins over `Content-Length` (the forwarded head then
//! drops `Content-Length`), and otherwise the body runs until the server closes.

use crate::headers::Headers;
use crate::method::{Method, Version};
use crate::request::RequestHead;
use crate::response::ResponseHead;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// Chunked transfer coding, ending with the last chunk and trailers.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
    /// The connection stops being HTTP: relay both ways (CONNECT 2xx, 101).
    Tunnel,
}

/// A body whose framing cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A `Content-Length` value is not a decimal number that fits 64 bits.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Several `Content-Length` values disagree.
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// Both `Transfer-Encoding` and `Content-Length` are present in a request.
    #[error("both Transfer-Encoding and Content-Length")]
    LengthAndEncoding,
    /// The final transfer coding is not `chunked`, or `chunked` is applied twice.
    #[error("Transfer-Encoding does not end with a single chunked")]
    BadTransferEncoding,
    /// An HTTP/1.0 request carries `Transfer-Encoding`.
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    EncodingInHttp10,
}

/// The framing of a request body.
pub fn request_framing(head: &RequestHead) -> Result<BodyFraming, FramingError> {
    if head.method == Method::Connect {
        return Ok(BodyFraming::Empty);
    }
    let length = content_length(&head.headers)?;
    if head.headers.contains("transfer-encoding") {
        if length.is_some() {
            return Err(FramingError::LengthAndEncoding);
        }
        if head.version == Version::Http10 {
            return Err(FramingError::EncodingInHttp10);
        }
        return match chunked_is_final(&head.headers)? {
            true => Ok(BodyFraming::Chunked),
            false => Err(FramingError::BadTransferEncoding),
        };
    }
    Ok(length.map_or(BodyFraming::Empty, BodyFraming::ContentLength))
}

/// The framing of a response body, given the method of the request it answers.
pub fn response_framing(method: &Method, head: &ResponseHead) -> Result<BodyFraming, FramingError> {
    let status = head.status;
    if status == 101 || (*method == Method::Connect && (200..300).contains(&status)) {
        return Ok(BodyFraming::Tunnel);
    }
    if *method == Method::Head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::Empty);
    }
    if head.headers.contains("transfer-encoding") {
        if head.version == Version::Http10 {
            return Ok(BodyFraming::UntilClose);
        }
        return match chunked_is_final(&head.headers)? {
            true => Ok(BodyFraming::Chunked),
            false => Ok(BodyFraming::UntilClose),
        };
    }
    Ok(content_length(&head.headers)?.map_or(BodyFraming::UntilClose, BodyFraming::ContentLength))
}

/// The single value of all `Content-Length` fields (`5, 5` is 5), if there is one.
pub fn content_length(headers: &Headers) -> Result<Option<u64>, FramingError> {
    let mut found = None;
    for value in headers.get_all("content-length") {
        for item in value.split(|b| *b == b',') {
            let item = crate::headers::trim_ows(item);
            let n = parse_decimal(item).ok_or(FramingError::InvalidContentLength)?;
            match found {
                Some(prev) if prev != n => return Err(FramingError::ConflictingContentLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Whether `chunked` is the last transfer coding; an error if it also appears earlier.
fn chunked_is_final(headers: &Headers) -> Result<bool, FramingError> {
    let mut last_is_chunked = false;
    let mut seen = false;
    for token in headers.tokens("transfer-encoding") {
        let name = token.split(|b| *b == b';').next().unwrap_or(token);
        let is_chunked = crate::headers::trim_ows(name).eq_ignore_ascii_case(b"chunked");
        if is_chunked && seen {
            return Err(FramingError::BadTransferEncoding);
        }
        seen |= is_chunked;
        last_is_chunked = is_chunked;
    }
    if seen && !last_is_chunked {
        return Err(FramingError::BadTransferEncoding);
    }
    Ok(last_is_chunked)
}

/// Parses 1*DIGIT into a u64, rejecting signs, spaces, empty input and overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn req(s: &str) -> RequestHead {
        RequestHead::parse(&Bytes::copy_from_slice(s.as_bytes()), 16).unwrap()
    }

    fn rsp(s: &str) -> ResponseHead {
        ResponseHead::parse(&Bytes::copy_from_slice(s.as_bytes()), 16).unwrap()
    }

    #[test]
    fn requests() {
        let f = |s: &str| request_framing(&req(&format!("POST http://a/ HTTP/1.1\r\n{s}\r\n")));
        assert_eq!(f(""), Ok(BodyFraming::Empty));
        assert_eq!(
            f("Content-Length: 12\r\n"),
            Ok(BodyFraming::ContentLength(12))
        );
        assert_eq!(
            f("Content-Length: 3, 3\r\nContent-Length: 3\r\n"),
            Ok(BodyFraming::ContentLength(3))
        );
        assert_eq!(
            f("Content-Length: 3, 4\r\n"),
            Err(FramingError::ConflictingContentLength)
        );
        assert_eq!(
            f("Content-Length: +3\r\n"),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            f("Content-Length: \r\n"),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            f("Content-Length: 99999999999999999999\r\n"),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            f("Transfer-Encoding: chunked\r\n"),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            f("Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n"),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            f("Transfer-Encoding: chunked, gzip\r\n"),
            Err(FramingError::BadTransferEncoding)
        );
        assert_eq!(
            f("Transfer-Encoding: chunked, chunked\r\n"),
            Err(FramingError::BadTransferEncoding)
        );
        assert_eq!(
            f("Transfer-Encoding: gzip\r\n"),
            Err(FramingError::BadTransferEncoding)
        );
        assert_eq!(
            f("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
            Err(FramingError::LengthAndEncoding)
        );
        let r = req("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(request_framing(&r), Err(FramingError::EncodingInHttp10));
        let r = req("CONNECT a:1 HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(request_framing(&r), Ok(BodyFraming::Empty));
    }

    #[test]
    fn responses() {
        let f = |m: Method, s: &str| response_framing(&m, &rsp(s));
        let cl = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
        assert_eq!(f(Method::Get, cl), Ok(BodyFraming::ContentLength(7)));
        assert_eq!(f(Method::Head, cl), Ok(BodyFraming::Empty));
        assert_eq!(
            f(Method::Get, "HTTP/1.1 204 No\r\nContent-Length: 7\r\n\r\n"),
            Ok(BodyFraming::Empty)
        );
        assert_eq!(
            f(Method::Get, "HTTP/1.1 304 NM\r\n\r\n"),
            Ok(BodyFraming::Empty)
        );
        assert_eq!(
            f(Method::Get, "HTTP/1.1 100 C\r\n\r\n"),
            Ok(BodyFraming::Empty)
        );
        assert_eq!(
            f(Method::Get, "HTTP/1.1 101 S\r\n\r\n"),
            Ok(BodyFraming::Tunnel)
        );
        assert_eq!(
            f(Method::Connect, "HTTP/1.1 200 OK\r\n\r\n"),
            Ok(BodyFraming::Tunnel)
        );
        assert_eq!(
            f(
                Method::Connect,
                "HTTP/1.1 407 A\r\nContent-Length: 1\r\n\r\n"
            ),
            Ok(BodyFraming::ContentLength(1))
        );
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(f(Method::Get, both), Ok(BodyFraming::Chunked));
        let gz = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(f(Method::Get, gz), Ok(BodyFraming::UntilClose));
        let old = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(f(Method::Get, old), Ok(BodyFraming::UntilClose));
        assert_eq!(
            f(Method::Get, "HTTP/1.0 200 OK\r\n\r\n"),
            Ok(BodyFraming::UntilClose)
        );
        let bad = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(f(Method::Get, bad), Err(FramingError::InvalidContentLength));
    }
}
