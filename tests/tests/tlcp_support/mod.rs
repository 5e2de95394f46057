//! Helpers of tlcp.rs, on Tongsuo (the `openssl` API of variant-ssl with `tongsuo`):
//!
//! - [`Sm2Pki`]: SM2 CAs with signing and encryption pairs (SM3-signed, `tlcp.test` and
//!   127.0.0.1 in the leaves' SANs), made at test time in a temp dir.
//! - [`tlcp_client_ctx`] / [`tlcp_connect`]: a TLCP client, optionally with a client pair and a
//!   PROXY v2 header ([`proxy_v2`]) before the handshake; [`http_get`] for proxy requests on it.
//! - [`TlcpEcho`]: a TLCP server echoing every byte, recording each connection's protocol and
//!   byte count ([`Seen`]).
//! - [`plain_roundtrip`]: plain TCP write, half-close, read to the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslOptions, SslStream,
    SslVerifyMode,
};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use px_e2e::net;

pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails at once, saying how to run this file, when no Tongsuo daemon is given.
pub(crate) fn require_tongsuo_daemon() {
    assert!(
        std::env::var_os("PX_G3PROXY_BIN").is_some_and(|v| !v.is_empty()),
        "tlcp.rs needs a g3proxy built with `--features vendored-tongsuo` in PX_G3PROXY_BIN: \
         run scripts/test.sh, or `cargo build -p g3proxy --features vendored-tongsuo` then \
         PX_G3PROXY_BIN=target/debug/g3proxy cargo test -p px-e2e --features tlcp --test tlcp"
    );
}

// ---- SM2 certificates --------------------------------------------------------------------

fn sm2_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::SM2).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

#[derive(Clone, Copy)]
enum Kind {
    Ca,
    Sign,
    Enc,
}

/// An SM3-signed certificate; leaves carry `tlcp.test` and 127.0.0.1 in their SANs.
fn sm2_cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    kind: Kind,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(63, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    let (bc, usage) = match kind {
        Kind::Ca => (
            BasicConstraints::new().critical().ca().build(),
            KeyUsage::new().key_cert_sign().crl_sign().build(),
        ),
        Kind::Sign => (
            BasicConstraints::new().build(),
            KeyUsage::new().digital_signature().build(),
        ),
        Kind::Enc => (
            BasicConstraints::new().build(),
            KeyUsage::new()
                .key_encipherment()
                .data_encipherment()
                .key_agreement()
                .build(),
        ),
    };
    b.append_extension(bc.unwrap()).unwrap();
    b.append_extension(usage.unwrap()).unwrap();
    if !matches!(kind, Kind::Ca) {
        let san = SubjectAlternativeName::new()
            .dns("tlcp.test")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sm3())
        .unwrap();
    b.build()
}

/// SM2 files in a temp dir: per name, `NAME-ca.crt` and `NAME-{sign,enc}.{crt,key}`.
pub(crate) struct Sm2Pki {
    dir: tempfile::TempDir,
}

impl Sm2Pki {
    pub(crate) fn new(names: &[&str]) -> Sm2Pki {
        let dir = tempfile::Builder::new()
            .prefix("px-sm2-")
            .tempdir()
            .unwrap();
        for name in names {
            let ca_key = sm2_key();
            let ca = sm2_cert(&format!("{name} SM2 CA"), &ca_key, None, Kind::Ca);
            std::fs::write(
                dir.path().join(format!("{name}-ca.crt")),
                ca.to_pem().unwrap(),
            )
            .unwrap();
            for (role, kind) in [("sign", Kind::Sign), ("enc", Kind::Enc)] {
                let key = sm2_key();
                let c = sm2_cert(&format!("{name} {role}"), &key, Some((&ca, &ca_key)), kind);
                let p = dir.path().join(format!("{name}-{role}"));
                std::fs::write(p.with_extension("crt"), c.to_pem().unwrap()).unwrap();
                std::fs::write(
                    p.with_extension("key"),
                    key.private_key_to_pem_pkcs8().unwrap(),
                )
                .unwrap();
            }
        }
        Sm2Pki { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// The YAML map of the `NAME` pair (a `tlcp_cert_pairs` / `tlcp_cert_pair` value), indented.
    pub(crate) fn pair_yaml(&self, name: &str, indent: &str) -> String {
        format!(
            "{indent}sign_certificate: {}\n{indent}sign_private_key: {}\n\
             {indent}enc_certificate: {}\n{indent}enc_private_key: {}\n",
            self.path(&format!("{name}-sign.crt")),
            self.path(&format!("{name}-sign.key")),
            self.path(&format!("{name}-enc.crt")),
            self.path(&format!("{name}-enc.key")),
        )
    }
}

fn load_pair(b: &mut SslContextBuilder, dir: &Path, name: &str) {
    let f = |role: &str, ext: &str| dir.join(format!("{name}-{role}.{ext}"));
    b.set_sign_certificate_file(f("sign", "crt"), SslFiletype::PEM)
        .unwrap();
    b.set_sign_private_key_file(f("sign", "key"), SslFiletype::PEM)
        .unwrap();
    b.set_enc_certificate_file(f("enc", "crt"), SslFiletype::PEM)
        .unwrap();
    b.set_enc_private_key_file(f("enc", "key"), SslFiletype::PEM)
        .unwrap();
}

fn trust(b: &mut SslContextBuilder, dir: &Path, ca: &str) {
    let pem = std::fs::read(dir.join(format!("{ca}-ca.crt"))).unwrap();
    b.cert_store_mut()
        .add_cert(X509::from_pem(&pem).unwrap())
        .unwrap();
}

// ---- a TLCP client -------------------------------------------------------------------------

/// A TLCP client context trusting `ca`, presenting the `pair` certificates when given.
pub(crate) fn tlcp_client_ctx(pki: &Sm2Pki, ca: &str, pair: Option<&str>) -> SslContext {
    let mut b = SslContextBuilder::new(SslMethod::ntls_client()).unwrap();
    b.enable_ntls();
    b.set_options(SslOptions::DONT_INSERT_EMPTY_FRAGMENTS);
    b.set_verify(SslVerifyMode::PEER);
    trust(&mut b, pki.dir(), ca);
    if let Some(p) = pair {
        load_pair(&mut b, pki.dir(), p);
        b.set_cipher_list("ECDHE-SM2-SM4-GCM-SM3:ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3")
            .unwrap();
    }
    b.build()
}

/// TCP to `127.0.0.1:port`, `prefix` written first (a PROXY header), then a TLCP handshake
/// verifying `tlcp.test`.
pub(crate) fn tlcp_connect(
    ctx: &SslContext,
    port: u16,
    prefix: &[u8],
) -> Result<SslStream<TcpStream>, String> {
    let mut tcp = TcpStream::connect(net::local(port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.write_all(prefix).map_err(|e| e.to_string())?;
    let mut ssl = Ssl::new(ctx).unwrap();
    ssl.param_mut().set_host("tlcp.test").unwrap();
    ssl.set_hostname("tlcp.test").unwrap();
    ssl.connect(tcp).map_err(|e| e.to_string())
}

/// A PROXY protocol v2 header for TCP over IPv4 from `src` to 127.0.0.1:`dst_port`.
pub(crate) fn proxy_v2(src: Ipv4Addr, src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&Ipv4Addr::LOCALHOST.octets());
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&dst_port.to_be_bytes());
    h
}

/// One HTTP/1.1 proxy request for `url` on `s`: the status and the body (by Content-Length).
pub(crate) fn http_get(s: &mut SslStream<TcpStream>, url: &str) -> (u16, Vec<u8>) {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    s.write_all(format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response head {head:?}"));
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf.split_off(head_end);
    while body.len() < len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} of {len} body bytes", body.len());
        body.extend_from_slice(&chunk[..n]);
    }
    (status, body)
}

// ---- a TLCP echo server --------------------------------------------------------------------

/// What the echo server saw on one connection.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The negotiated protocol (`NTLSv1.1`), or why the handshake failed.
    pub(crate) version: String,
    /// Bytes echoed.
    pub(crate) bytes: usize,
}

/// A TLCP server on 127.0.0.1 that echoes every byte back until the peer closes.
pub(crate) struct TlcpEcho {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl TlcpEcho {
    /// Serves the `pair` certificates; with `client_ca`, requires a client pair from that CA.
    pub(crate) fn start(pki: &Sm2Pki, pair: &str, client_ca: Option<&str>) -> TlcpEcho {
        let mut b = SslContextBuilder::new(SslMethod::ntls_server()).unwrap();
        b.enable_ntls();
        b.set_options(SslOptions::DONT_INSERT_EMPTY_FRAGMENTS);
        load_pair(&mut b, pki.dir(), pair);
        if let Some(ca) = client_ca {
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            trust(&mut b, pki.dir(), ca);
        }
        let ctx = b.build();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                let (ctx, seen) = (ctx.clone(), Arc::clone(&seen2));
                std::thread::spawn(move || {
                    let s = Self::serve(&ctx, tcp);
                    seen.lock().unwrap().push(s);
                });
            }
        });
        TlcpEcho { port, seen, stop }
    }

    fn serve(ctx: &SslContext, tcp: TcpStream) -> Seen {
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut s = match Ssl::new(ctx).unwrap().accept(tcp) {
            Ok(s) => s,
            Err(e) => {
                return Seen {
                    version: format!("handshake failed: {e}"),
                    bytes: 0,
                };
            }
        };
        let mut buf = [0u8; 16 * 1024];
        let mut bytes = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    bytes += n;
                }
            }
        }
        let _ = s.shutdown();
        Seen {
            version: s.ssl().version_str().to_string(),
            bytes,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// What the finished connections saw.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until a finished connection matches `pred`; fails with all it saw.
    pub(crate) fn wait_seen(&self, pred: impl Fn(&Seen) -> bool) {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        while !self.seen().iter().any(&pred) {
            assert!(
                std::time::Instant::now() < deadline,
                "the TLCP echo saw {:?}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TlcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&net::local(self.port), Duration::from_millis(200));
    }
}

/// Writes `data`, half-closes, reads everything back through a plain TCP port.
pub(crate) fn plain_roundtrip(port: u16, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(net::local(port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}
