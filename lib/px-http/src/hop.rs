//! Hop-by-hop fields (RFC 9110 §7.6.1) and the keep-alive decision.
//!
//! A proxy must not forward the fields that describe one connection: `Connection` and every field it
//! names, `Proxy-Connection`, `Keep-Alive`, `Proxy-Authorization` (read it for authentication first, see
//! [`crate::RequestHead::proxy_authorization`]), `Proxy-Authenticate`, `TE`, `Trailer` and `Upgrade`
//! (unless the proxy relays the upgrade). `Host`, `Content-Length` and `Transfer-Encoding` are never
//! dropped because `Connection` names them: doing so would change the framing the peer sees, a
//! request-smuggling vector.
//!
//! [`keep_alive`] applies the defaults of RFC 9112 §9.3: HTTP/1.1 persists unless `close` is listed,
//! HTTP/1.0 closes unless `keep-alive` is listed. `Proxy-Connection` counts as `Connection` here, as
//! old clients still send it to proxies.

use bytes::Bytes;

use crate::headers::Headers;
use crate::method::Version;

/// Fields that are always hop-by-hop, lower-case.
const ALWAYS: [&str; 7] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
];

/// Fields that `Connection` may not remove, lower-case.
const PROTECTED: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// Whether the sender of a message with these `version` and `headers` wants the connection kept open.
pub fn keep_alive(version: Version, headers: &Headers) -> bool {
    let listed = |token: &str| {
        headers.has_token("connection", token) || headers.has_token("proxy-connection", token)
    };
    if listed("close") {
        return false;
    }
    match version {
        Version::Http11 => true,
        Version::Http10 => listed("keep-alive"),
    }
}

/// Decides which fields of one head are hop-by-hop.
#[derive(Clone, Debug)]
pub struct HopByHop {
    named: Vec<Bytes>,
    keep_upgrade: bool,
}

impl HopByHop {
    /// Builds the filter from the head's `Connection` fields; `keep_upgrade` forwards `Upgrade`.
    pub fn new(headers: &Headers, keep_upgrade: bool) -> Self {
        let mut named = Vec::new();
        for value in headers.get_all("connection") {
            for token in value.split(|b| *b == b',') {
                let token = crate::headers::trim_ows(token);
                if !token.is_empty() {
                    named.push(value.slice_ref(token));
                }
            }
        }
        Self {
            named,
            keep_upgrade,
        }
    }

    /// Whether the field called `name` must not be forwarded.
    pub fn is_hop_by_hop(&self, name: &[u8]) -> bool {
        if ALWAYS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            return true;
        }
        if name.eq_ignore_ascii_case(b"upgrade") {
            return !self.keep_upgrade;
        }
        if PROTECTED
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            return false;
        }
        self.named.iter().any(|t| t.eq_ignore_ascii_case(name))
    }

    /// Whether an `Upgrade` field is forwarded.
    pub fn keeps_upgrade(&self) -> bool {
        self.keep_upgrade
    }
}

/// Removes every hop-by-hop field from `headers` in place.
pub fn remove_hop_by_hop(headers: &mut Headers, keep_upgrade: bool) {
    let filter = HopByHop::new(headers, keep_upgrade);
    headers.retain(|h| !filter.is_hop_by_hop(&h.name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> Headers {
        let mut out = Headers::new();
        for (n, v) in pairs {
            out.append(*n, *v);
        }
        out
    }

    #[test]
    fn keep_alive_defaults() {
        assert!(keep_alive(Version::Http11, &h(&[])));
        assert!(!keep_alive(Version::Http11, &h(&[("Connection", "Close")])));
        assert!(!keep_alive(
            Version::Http11,
            &h(&[("Proxy-Connection", "close")])
        ));
        assert!(!keep_alive(Version::Http10, &h(&[])));
        assert!(keep_alive(
            Version::Http10,
            &h(&[("Connection", "Keep-Alive")])
        ));
        assert!(keep_alive(
            Version::Http10,
            &h(&[("Proxy-Connection", "keep-alive")])
        ));
        assert!(!keep_alive(
            Version::Http10,
            &h(&[("Connection", "keep-alive, close")])
        ));
    }

    #[test]
    fn removes_listed_and_fixed_fields() {
        let mut hs = h(&[
            ("Host", "a"),
            (
                "Connection",
                "X-Secret, content-length, HOST, Transfer-Encoding",
            ),
            ("x-secret", "1"),
            ("Content-Length", "3"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eA=="),
            ("Proxy-Authenticate", "Basic"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-T"),
            ("Upgrade", "websocket"),
            ("Accept", "*/*"),
        ]);
        let mut kept = hs.clone();
        remove_hop_by_hop(&mut hs, false);
        let names: Vec<&[u8]> = hs.iter().map(|x| &x.name[..]).collect();
        assert_eq!(names, vec![&b"Host"[..], b"Content-Length", b"Accept"]);
        remove_hop_by_hop(&mut kept, true);
        assert!(kept.contains("upgrade"));
        assert!(!kept.contains("connection"));
    }
}
