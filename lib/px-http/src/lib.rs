//! HTTP/1.x codec for a forward proxy, built on httparse.
//!
//! What a proxy does with one exchange, and where each step lives:
//!
//! - read a head within size and field-count limits ([`HeadLimits`], [`RequestHead::read`],
//!   [`ResponseHead::read`]); errors say whether to answer 400, 431, 505 or nothing ([`HeadError`]);
//! - understand the target: absolute-form, authority-form for CONNECT (`[v6]:port` too), origin-form
//!   with `Host` ([`RequestTarget`], [`Authority`]);
//! - decide how long the body is ([`request_framing`], [`response_framing`], [`BodyFraming`]);
//! - forward the head without hop-by-hop fields ([`write_request_head`], [`write_response_head`],
//!   [`hop`]) and learn whether each side keeps the connection ([`RequestHead::keep_alive`]);
//! - stream the body, chunked or not, through a reused buffer ([`copy_body`], [`CopyError`]);
//! - answer errors with a short text ([`simple_response`]).
//!
//! Nothing here waits on its own: every future completes when its peer acts, so the caller wraps
//! reads in timeouts. Every buffer is bounded: heads by [`HeadLimits`], chunk lines and trailers by
//! [`BodyLimits`].
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use px_http::{ForwardOptions, HeadLimits, RequestHead, request_framing, write_request_head};
//! let mut client = tokio::io::BufReader::new(&b"GET http://example.com/ HTTP/1.1\r\n\r\n"[..]);
//! let head = RequestHead::read(&mut client, &HeadLimits::default()).await?;
//! assert_eq!(request_framing(&head)?, px_http::BodyFraming::Empty);
//! let mut out = Vec::new();
//! write_request_head(&head, &ForwardOptions::default(), &mut out);
//! assert!(out.starts_with(b"GET / HTTP/1.1\r\nHost: example.com\r\n"));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod chunked;
mod copy;
mod error;
mod framing;
mod headers;
pub mod hop;
mod method;
mod reader;
mod request;
mod response;
mod serialize;
mod target;

pub use copy::{BodyLimits, CopyError, copy_body, copy_body_with};
pub use error::HeadError;
pub use framing::{BodyFraming, FramingError, content_length, request_framing, response_framing};
pub use headers::{Header, Headers, trim_ows};
pub use method::{Method, Version};
pub use reader::{HeadLimits, read_head_bytes};
pub use request::RequestHead;
pub use response::ResponseHead;
pub use serialize::{
    ConnectionDirective, ForwardOptions, simple_response, write_request_head, write_response_head,
};
pub use target::{AbsoluteUri, Authority, Host, RequestTarget, Scheme};
