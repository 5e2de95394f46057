//! Writing heads for forwarding, and the short responses a proxy makes up.
//!
//! [`write_request_head`] re-serialises a client's request for the next hop: origin-form for an
//! origin server (`GET /path HTTP/1.1` with `Host` taken from the absolute URI, which replaces any
//! `Host` the client sent, RFC 9112 §3.2.2) or absolute-form for a next proxy. Hop-by-hop fields are
//! dropped (see [`crate::hop`]) and one `Connection` field of the proxy's choosing is added.
//! [`write_response_head`] does the same for a response; when `Transfer-Encoding` is present any
//! `Content-Length` is dropped as RFC 9112 §6.3 requires of an intermediary. Field names keep the
//! sender's case. [`simple_response`] builds a complete short text response.

use crate::headers::Headers;
use crate::hop::HopByHop;
use crate::request::RequestHead;
use crate::response::ResponseHead;
use crate::target::RequestTarget;

/// The `Connection` field a proxy adds to a forwarded head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionDirective {
    /// `Connection: keep-alive`.
    KeepAlive,
    /// `Connection: close`.
    Close,
    /// No `Connection` field (HTTP/1.1 then defaults to keep-alive).
    Omit,
}

/// How to re-serialise a head for the next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Write the request target in absolute-form (when talking to a next proxy).
    pub absolute_form: bool,
    /// The `Connection` field to add.
    pub connection: ConnectionDirective,
    /// Forward `Upgrade` (and list `upgrade` in `Connection`).
    pub keep_upgrade: bool,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            absolute_form: false,
            connection: ConnectionDirective::KeepAlive,
            keep_upgrade: false,
        }
    }
}

/// Appends the forwarded form of `head` to `out`.
pub fn write_request_head(head: &RequestHead, opts: &ForwardOptions, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let mut host: Option<&[u8]> = None;
    match &head.target {
        RequestTarget::Absolute(u) => {
            if opts.absolute_form {
                out.extend_from_slice(u.scheme.as_str().as_bytes());
                out.extend_from_slice(b"://");
                out.extend_from_slice(u.host_text.as_bytes());
            }
            out.extend_from_slice(u.path_and_query.as_bytes());
            host = Some(u.host_text.as_bytes());
        }
        RequestTarget::Origin(p) => {
            if let Some(h) = head.headers.get("host").filter(|_| opts.absolute_form) {
                out.extend_from_slice(b"http://");
                out.extend_from_slice(h);
            }
            out.extend_from_slice(p.as_bytes());
        }
        RequestTarget::Authority(a) => out.extend_from_slice(a.to_string().as_bytes()),
        RequestTarget::Asterisk => out.push(b'*'),
    }
    out.push(b' ');
    out.extend_from_slice(head.version.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(h) = host {
        write_field(out, b"Host", h);
    }
    write_fields(&head.headers, opts, host.is_some(), out);
}

/// Appends the forwarded form of `head` to `out`.
pub fn write_response_head(head: &ResponseHead, opts: &ForwardOptions, out: &mut Vec<u8>) {
    out.extend_from_slice(head.version.as_str().as_bytes());
    out.extend_from_slice(format!(" {:03} ", head.status).as_bytes());
    out.extend_from_slice(&head.reason);
    out.extend_from_slice(b"\r\n");
    write_fields(&head.headers, opts, false, out);
}

/// Writes the end-to-end fields, the chosen `Connection` field and the final empty line.
fn write_fields(headers: &Headers, opts: &ForwardOptions, skip_host: bool, out: &mut Vec<u8>) {
    let filter = HopByHop::new(headers, opts.keep_upgrade);
    let drop_length = headers.contains("transfer-encoding");
    let mut upgrade = false;
    for h in headers {
        if filter.is_hop_by_hop(&h.name)
            || (skip_host && h.is("host"))
            || (drop_length && h.is("content-length"))
        {
            continue;
        }
        upgrade |= h.is("upgrade");
        write_field(out, &h.name, &h.value);
    }
    let connection: &[u8] = match (opts.connection, upgrade) {
        (ConnectionDirective::KeepAlive, false) => b"keep-alive",
        (ConnectionDirective::KeepAlive, true) => b"keep-alive, upgrade",
        (ConnectionDirective::Close, false) => b"close",
        (ConnectionDirective::Close, true) => b"close, upgrade",
        (ConnectionDirective::Omit, false) => b"",
        (ConnectionDirective::Omit, true) => b"upgrade",
    };
    if !connection.is_empty() {
        write_field(out, b"Connection", connection);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`.
fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A complete `HTTP/1.1` response with a short `text/plain` body and `Connection: close` (or
/// `keep-alive` when `keep_alive`).
pub fn simple_response(status: u16, reason: &str, body: &str, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut body_line = String::with_capacity(body.len() + 1);
    body_line.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        body_line.push('\n');
    }
    format!(
        "HTTP/1.1 {status:03} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\n\r\n{body_line}",
        body_line.len()
    )
    .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn req(s: &str) -> RequestHead {
        RequestHead::parse(&Bytes::copy_from_slice(s.as_bytes()), 32).unwrap()
    }

    fn fwd(head: &RequestHead, opts: ForwardOptions) -> String {
        let mut out = Vec::new();
        write_request_head(head, &opts, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn origin_form_with_host_from_uri() {
        let r = req(
            "GET http://Ex.com:8080/p?q HTTP/1.1\r\nhost: wrong\r\nAccept: */*\r\nConnection: X-A, keep-alive\r\n\
             X-A: 1\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\r\n",
        );
        assert_eq!(
            fwd(&r, ForwardOptions::default()),
            "GET /p?q HTTP/1.1\r\nHost: Ex.com:8080\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"
        );
        let abs = ForwardOptions {
            absolute_form: true,
            connection: ConnectionDirective::Close,
            keep_upgrade: false,
        };
        assert_eq!(
            fwd(&r, abs),
            "GET http://Ex.com:8080/p?q HTTP/1.1\r\nHost: Ex.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn origin_form_keeps_host_and_upgrade_on_request() {
        let r = req(
            "GET /x HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        let opts = ForwardOptions {
            keep_upgrade: true,
            connection: ConnectionDirective::Omit,
            ..ForwardOptions::default()
        };
        assert_eq!(
            fwd(&r, opts),
            "GET /x HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        );
        let r = req("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
        assert!(
            fwd(&r, ForwardOptions::default())
                .starts_with("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n")
        );
    }

    #[test]
    fn response_drops_length_under_chunked() {
        let r = ResponseHead::parse(
            &Bytes::from_static(
                b"HTTP/1.1 200 Fine\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=3\r\n\
                  Proxy-Authenticate: Basic\r\nTrailer: X\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n",
            ),
            16,
        )
        .unwrap();
        let mut out = Vec::new();
        write_response_head(&r, &ForwardOptions::default(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\
             Connection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn simple() {
        let r = String::from_utf8(simple_response(
            502,
            "Bad Gateway",
            "upstream refused",
            false,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(r.contains("Content-Length: 17\r\nConnection: close\r\n\r\nupstream refused\n"));
    }
}
