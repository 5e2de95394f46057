//! The kTLS hand-over (feature `ktls`): probe, handshake, then the kernel.
//!
//! 1. Once per process, [`available`] probes the kernel: `TCP_ULP` "tls" on
//!    a loopback socket (ENOENT without `CONFIG_TLS`), and whether it takes
//!    ChaCha20-Poly1305 keys (AES-GCM comes with the TLS module). Where it
//!    fails, connections do their handshake and data phase on rustls as
//!    without the feature, and count as fallback.
//! 2. Otherwise the handshake reads through ktls's `CorkStream`, which hands
//!    rustls whole records only, so nothing past the handshake is left
//!    half-read in rustls's buffers.
//! 3. Per connection, before any secret leaves rustls: the negotiated cipher
//!    suite must be one the kernel takes (AES-GCM, or ChaCha20-Poly1305 where
//!    probed), and `TCP_ULP` must attach to this socket (a socket with the ULP
//!    but no keys yet carries bytes unchanged). Either failing keeps the
//!    connection on rustls: fallback, nothing lost.
//! 4. Then the plaintext rustls already decrypted is drained (read until the
//!    next record boundary), the traffic secrets and sequence numbers are
//!    extracted, and `TLS_TX` / `TLS_RX` are set. A failure here ends the
//!    connection (its keys left rustls): counted as failed.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use ktls::{CorkStream, CryptoInfo, KtlsStream};
use rustls::crypto::cipher::{AeadKey, Iv};
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, Connection, ConnectionTrafficSecrets, SupportedCipherSuite};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use super::stream::{Inner, TlsTcpStream};
use super::sys::{self, Direction};
use super::{Outcome, count};
use crate::{TlsClient, TlsServer};

/// What the process-wide probe found.
#[derive(Debug)]
enum Mode {
    /// kTLS can be tried per connection; ChaCha20-Poly1305 too when true.
    Try { chacha: bool },
    /// Every connection stays on rustls, for this reason.
    Off(String),
}

fn mode() -> &'static Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    MODE.get_or_init(|| {
        let mode = if std::env::var_os("PX_TLS_NO_KTLS").is_some() {
            Mode::Off("disabled by PX_TLS_NO_KTLS".to_string())
        } else if std::env::var_os("PX_TLS_KTLS_NO_PROBE").is_some() {
            // tries every connection (tests of the per-connection fallback)
            Mode::Try { chacha: true }
        } else {
            match probe() {
                Ok(chacha) => Mode::Try { chacha },
                Err(reason) => Mode::Off(reason),
            }
        };
        match &mode {
            Mode::Try { chacha } => log::info!(
                "kTLS available: TLS data phases go to the kernel (ChaCha20-Poly1305: {})",
                if *chacha { "yes" } else { "no, rustls" }
            ),
            Mode::Off(reason) => {
                log::info!("kTLS unavailable ({reason}): TLS connections stay on rustls")
            }
        }
        mode
    })
}

/// True when the kernel takes kTLS (probed once per process).
pub(super) fn available() -> bool {
    matches!(mode(), Mode::Try { .. })
}

/// A connected loopback TCP pair (std, blocking), for the probe.
fn loopback_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let c = std::net::TcpStream::connect(l.local_addr()?)?;
    let (a, _) = l.accept()?;
    Ok((c, a))
}

/// Ok(ChaCha20-Poly1305 supported) when the kernel has kTLS.
fn probe() -> Result<bool, String> {
    let (c, _a) = loopback_pair().map_err(|e| format!("no loopback socket to probe: {e}"))?;
    sys::set_ulp(c.as_raw_fd()).map_err(|e| format!("setsockopt(TCP_ULP, \"tls\"): {e}"))?;
    let chacha = (|| {
        let (c, _a) = loopback_pair().ok()?;
        sys::set_ulp(c.as_raw_fd()).ok()?;
        let secrets = ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: AeadKey::from([0u8; 32]),
            iv: Iv::new([0u8; 12]),
        };
        let suite = rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256;
        let info = CryptoInfo::from_rustls(suite, (0, secrets)).ok()?;
        sys::set_crypto(c.as_raw_fd(), Direction::Tx, &info).ok()
    })()
    .is_some();
    Ok(chacha)
}

/// Whether the kernel takes this suite's record protection.
fn suite_supported(suite: Option<SupportedCipherSuite>, chacha: bool) -> Result<(), String> {
    let Some(suite) = suite else {
        return Err("no negotiated cipher suite".to_string());
    };
    match suite.suite() {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Ok(()),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            if chacha =>
        {
            Ok(())
        }
        other => Err(format!("the kernel does not take {other:?}")),
    }
}

fn on_rustls(inner: Inner, peer: Option<SocketAddr>, reason: String) -> TlsTcpStream {
    count(Outcome::Fallback, peer, &reason);
    TlsTcpStream {
        inner,
        fallback: Some(reason),
    }
}

/// The server handshake on `tcp`, then kTLS or rustls.
pub(super) async fn accept(server: &TlsServer, tcp: TcpStream) -> io::Result<TlsTcpStream> {
    let peer = tcp.peer_addr().ok();
    match mode() {
        Mode::Off(reason) => {
            let tls = server.accept(tcp).await?;
            Ok(on_rustls(
                Inner::Rustls(TlsStream::Server(tls)),
                peer,
                reason.clone(),
            ))
        }
        Mode::Try { chacha } => {
            let tls = server.accept(CorkStream::new(tcp)).await?;
            hand_over(TlsStream::Server(tls), peer, *chacha).await
        }
    }
}

/// The client handshake on `tcp` (verifying the server as `name`), then kTLS or rustls.
pub(super) async fn connect(
    client: &TlsClient,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> io::Result<TlsTcpStream> {
    let peer = tcp.peer_addr().ok();
    match mode() {
        Mode::Off(reason) => {
            let tls = client.connect(name, tcp).await?;
            Ok(on_rustls(
                Inner::Rustls(TlsStream::Client(tls)),
                peer,
                reason.clone(),
            ))
        }
        Mode::Try { chacha } => {
            let tls = client.connect(name, CorkStream::new(tcp)).await?;
            hand_over(TlsStream::Client(tls), peer, *chacha).await
        }
    }
}

/// Steps 3 and 4 of the module doc.
async fn hand_over(
    tls: TlsStream<CorkStream<TcpStream>>,
    peer: Option<SocketAddr>,
    chacha: bool,
) -> io::Result<TlsTcpStream> {
    if let Err(reason) = suite_supported(tls.get_ref().1.negotiated_cipher_suite(), chacha) {
        return Ok(on_rustls(Inner::Corked(tls), peer, reason));
    }
    let fd = tls.get_ref().0.io.as_raw_fd();
    if let Err(e) = sys::set_ulp(fd) {
        let reason = format!("setsockopt(TCP_ULP, \"tls\"): {e}");
        return Ok(on_rustls(Inner::Corked(tls), peer, reason));
    }
    match commit(tls).await {
        Ok(k) => {
            count(Outcome::Kernel, peer, "");
            Ok(TlsTcpStream {
                inner: Inner::Kernel(k),
                fallback: None,
            })
        }
        Err(e) => {
            count(Outcome::Failed, peer, &e.to_string());
            Err(e)
        }
    }
}

/// Drains rustls, moves the keys into the kernel, and returns the socket.
async fn commit(mut tls: TlsStream<CorkStream<TcpStream>>) -> io::Result<KtlsStream<TcpStream>> {
    let drained = drain(&mut tls).await?;
    let (io, conn) = match tls {
        TlsStream::Client(c) => {
            let (io, c) = c.into_inner();
            (io, Connection::Client(c))
        }
        TlsStream::Server(s) => {
            let (io, s) = s.into_inner();
            (io, Connection::Server(s))
        }
    };
    let suite = conn
        .negotiated_cipher_suite()
        .ok_or_else(|| io::Error::other("kTLS: no negotiated cipher suite"))?;
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| io::Error::other(format!("kTLS: cannot extract the secrets: {e}")))?;
    let tcp = io.io;
    let tx = CryptoInfo::from_rustls(suite, secrets.tx)
        .map_err(|e| io::Error::other(format!("kTLS: {e}")))?;
    sys::set_crypto(tcp.as_raw_fd(), Direction::Tx, &tx)
        .map_err(|e| io::Error::new(e.kind(), format!("kTLS: setsockopt(TLS_TX): {e}")))?;
    let rx = CryptoInfo::from_rustls(suite, secrets.rx)
        .map_err(|e| io::Error::other(format!("kTLS: {e}")))?;
    sys::set_crypto(tcp.as_raw_fd(), Direction::Rx, &rx)
        .map_err(|e| io::Error::new(e.kind(), format!("kTLS: setsockopt(TLS_RX): {e}")))?;
    Ok(KtlsStream::new(tcp, drained))
}

/// Reads what rustls already has (plaintext, and the rest of a record it
/// started), up to the next record boundary, where the corked reader ends.
async fn drain(tls: &mut TlsStream<CorkStream<TcpStream>>) -> io::Result<Option<Vec<u8>>> {
    tls.get_mut().0.corked = true;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // the corked reader's end looks like an EOF without close_notify
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok((!out.is_empty()).then_some(out))
}
