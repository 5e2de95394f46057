//! Reading what names the target without terminating anything: the TLS ClientHello's
//! `server_name` extension, or the first HTTP/1 request's `Host` header.
//!
//! The ClientHello may come in several TCP segments and even several TLS records (a handshake
//! message fragmented across records); bytes are read until the whole handshake message is
//! there, up to `tls_max_client_hello_size`. Everything read is kept, to be sent to the upstream
//! first.

/// What the first bytes turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// A complete ClientHello, with its SNI host name if it had one.
    Tls(Option<String>),
    /// A complete HTTP/1 request head, with its `Host` value if it had one.
    Http(Option<String>),
}

/// Why the bytes are not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SniffError {
    /// Neither a TLS handshake nor an HTTP request.
    Unknown,
    /// A TLS record or ClientHello that does not parse.
    BadTls(&'static str),
    /// An HTTP head that does not parse.
    BadHttp(&'static str),
    /// Larger than allowed.
    TooLarge,
}

impl std::fmt::Display for SniffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SniffError::Unknown => f.write_str("neither TLS nor HTTP"),
            SniffError::BadTls(m) => write!(f, "bad TLS ClientHello: {m}"),
            SniffError::BadHttp(m) => write!(f, "bad HTTP request: {m}"),
            SniffError::TooLarge => f.write_str("initial request too large"),
        }
    }
}

/// The result of looking at the bytes so far.
pub(crate) type Progress = Result<Option<Sniffed>, SniffError>;

/// The largest HTTP request head looked at.
pub(crate) const MAX_HTTP_HEAD: usize = 64 * 1024;

/// Looks at `buf`: `Ok(None)` when more bytes are needed.
pub(crate) fn sniff(buf: &[u8], max_hello: usize) -> Progress {
    match buf.first() {
        None => Ok(None),
        Some(0x16) => tls(buf, max_hello),
        Some(b) if b.is_ascii_uppercase() => http(buf),
        Some(_) => Err(SniffError::Unknown),
    }
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

/// Reassembles the handshake bytes from records; `Ok(None)` until the ClientHello is complete.
fn tls(buf: &[u8], max_hello: usize) -> Progress {
    let mut handshake = Vec::new();
    let mut pos = 0;
    loop {
        // the handshake message is complete once its header says so
        if handshake.len() >= 4 {
            if handshake[0] != 1 {
                return Err(SniffError::BadTls(
                    "first handshake message is not a ClientHello",
                ));
            }
            let len = (usize::from(handshake[1]) << 16)
                | (usize::from(handshake[2]) << 8)
                | usize::from(handshake[3]);
            if len > max_hello {
                return Err(SniffError::TooLarge);
            }
            if handshake.len() >= 4 + len {
                let body = &handshake[4..4 + len];
                return client_hello_sni(body).map(|sni| Some(Sniffed::Tls(sni)));
            }
        }
        let Some(header) = buf.get(pos..pos + 5) else {
            return Ok(None);
        };
        if header[0] != 0x16 {
            return Err(SniffError::BadTls(
                "non-handshake record before the ClientHello ends",
            ));
        }
        if header[1] != 3 {
            return Err(SniffError::BadTls("not a TLS record version"));
        }
        let rec_len = be16(header, 3).unwrap_or(0);
        if rec_len == 0 || rec_len > 16384 + 2048 {
            return Err(SniffError::BadTls("bad record length"));
        }
        let Some(payload) = buf.get(pos + 5..pos + 5 + rec_len) else {
            // a partial record: its bytes so far may already complete a small header
            return Ok(None);
        };
        handshake.extend_from_slice(payload);
        pos += 5 + rec_len;
    }
}

/// The SNI host name in a ClientHello body (after the 4-byte handshake header).
fn client_hello_sni(body: &[u8]) -> Result<Option<String>, SniffError> {
    let bad = SniffError::BadTls;
    // legacy_version(2) random(32)
    let mut p = 34;
    let sid = usize::from(*body.get(p).ok_or(bad("short ClientHello"))?);
    p += 1 + sid;
    let suites = be16(body, p).ok_or(bad("short ClientHello"))?;
    p += 2 + suites;
    let comp = usize::from(*body.get(p).ok_or(bad("short ClientHello"))?);
    p += 1 + comp;
    if p == body.len() {
        return Ok(None); // no extensions at all
    }
    let ext_total = be16(body, p).ok_or(bad("short extensions"))?;
    p += 2;
    let end = p + ext_total;
    if end > body.len() {
        return Err(bad("extensions past the message"));
    }
    while p + 4 <= end {
        let ty = be16(body, p).ok_or(bad("short extension"))?;
        let len = be16(body, p + 2).ok_or(bad("short extension"))?;
        let data = body
            .get(p + 4..p + 4 + len)
            .ok_or(bad("extension past the message"))?;
        p += 4 + len;
        if ty != 0 {
            continue;
        }
        // server_name: list length, then (type, length, name) entries
        let list = be16(data, 0).ok_or(bad("short server_name"))?;
        let mut q = 2;
        let list_end = (2 + list).min(data.len());
        while q + 3 <= list_end {
            let name_type = data[q];
            let n = be16(data, q + 1).ok_or(bad("short server_name"))?;
            let name = data
                .get(q + 3..q + 3 + n)
                .ok_or(bad("server_name past the extension"))?;
            q += 3 + n;
            if name_type == 0 {
                let s = std::str::from_utf8(name).map_err(|_| bad("server_name is not text"))?;
                if s.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(s.to_ascii_lowercase()));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// An HTTP/1 head: `Ok(None)` until `\r\n\r\n`; then its `Host` value.
fn http(buf: &[u8]) -> Progress {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HTTP_HEAD {
            return Err(SniffError::TooLarge);
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| SniffError::BadHttp("not text"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(_target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SniffError::BadHttp("bad request line"));
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(SniffError::BadHttp("bad request line"));
    }
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("host")
        {
            let v = v.trim();
            return Ok(Some(Sniffed::Http((!v.is_empty()).then(|| v.to_string()))));
        }
    }
    Ok(Some(Sniffed::Http(None)))
}

/// A TLS alert record (fatal) with this description, to refuse a ClientHello.
pub(crate) fn alert(description: u8) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}

/// `handshake_failure`: no name to route by.
pub(crate) const ALERT_HANDSHAKE_FAILURE: u8 = 40;
/// `unrecognized_name`: a name this server does not serve.
pub(crate) const ALERT_UNRECOGNIZED_NAME: u8 = 112;
/// `internal_error`: the upstream could not be reached.
pub(crate) const ALERT_INTERNAL_ERROR: u8 = 80;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A ClientHello body with these extensions, wrapped in a handshake header.
    fn hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(32);
        body.extend_from_slice(&[9u8; 32]);
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[1, 0]);
        let mut e = Vec::new();
        for (ty, data) in exts {
            e.extend_from_slice(&ty.to_be_bytes());
            e.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
            e.extend_from_slice(data);
        }
        body.extend_from_slice(&u16::try_from(e.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&e);
        let mut hs = vec![1];
        hs.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        hs
    }

    fn sni_ext(name: &str) -> (u16, Vec<u8>) {
        let mut d = Vec::new();
        d.extend_from_slice(&u16::try_from(name.len() + 3).unwrap().to_be_bytes());
        d.push(0);
        d.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        (0, d)
    }

    /// Handshake bytes split into records of at most `size` bytes.
    fn records(hs: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in hs.chunks(size) {
            out.extend_from_slice(&[0x16, 3, 1]);
            out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn sni_in_one_record_and_byte_by_byte() {
        let hs = hello(&[(10, vec![0, 2, 0, 29]), sni_ext("Example.COM")]);
        let wire = records(&hs, 16384);
        assert_eq!(
            sniff(&wire, 65536),
            Ok(Some(Sniffed::Tls(Some("example.com".into()))))
        );
        // every prefix asks for more, never errs
        for n in 0..wire.len() {
            assert_eq!(sniff(&wire[..n], 65536), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn sni_across_records() {
        let hs = hello(&[sni_ext("split.test"), (16, vec![0, 3, 2, b'h', b'2'])]);
        for size in [1, 7, 50] {
            let wire = records(&hs, size);
            assert_eq!(
                sniff(&wire, 65536),
                Ok(Some(Sniffed::Tls(Some("split.test".into())))),
                "records of {size}"
            );
        }
    }

    #[test]
    fn no_sni_and_bad_hellos() {
        let wire = records(&hello(&[(10, vec![0, 2, 0, 29])]), 16384);
        assert_eq!(sniff(&wire, 65536), Ok(Some(Sniffed::Tls(None))));
        let wire = records(&hello(&[sni_ext("big.test")]), 16384);
        assert_eq!(sniff(&wire, 16), Err(SniffError::TooLarge));
        let mut alert = vec![0x16, 3, 1, 0, 4, 2, 0, 0, 0];
        assert!(matches!(sniff(&alert, 65536), Err(SniffError::BadTls(_))));
        alert[0] = 0x15;
        assert_eq!(sniff(&alert, 65536), Err(SniffError::Unknown));
        assert_eq!(sniff(b"\x00\x01", 65536), Err(SniffError::Unknown));
        // an extension block longer than the message
        let mut hs = hello(&[sni_ext("x.test")]);
        hs[79..81].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(
            sniff(&records(&hs, 16384), 65536),
            Err(SniffError::BadTls("extensions past the message"))
        );
    }

    #[test]
    fn http_host() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a.test", 0), Ok(None));
        assert_eq!(
            sniff(
                b"GET / HTTP/1.1\r\nUser-Agent: x\r\nhost:  a.test:8080 \r\n\r\n",
                0
            ),
            Ok(Some(Sniffed::Http(Some("a.test:8080".into()))))
        );
        assert_eq!(
            sniff(b"GET / HTTP/1.0\r\n\r\n", 0),
            Ok(Some(Sniffed::Http(None)))
        );
        assert!(sniff(b"GET /\r\n\r\n", 0).is_err());
        assert!(sniff(b"get / HTTP/1.1\r\n\r\n", 0).is_err());
        let big = vec![b'A'; MAX_HTTP_HEAD + 1];
        assert_eq!(sniff(&big, 0), Err(SniffError::TooLarge));
    }
}
