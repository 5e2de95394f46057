//! The TLS data path over real loopback TCP: `px_tls::ktls::accept` / `connect` (and
//! `TlsClient::connect_upstream`) with TLS 1.2 and 1.3, data sent right after the handshake, and
//! the path each connection took. On a kernel without kTLS (these machines: no `CONFIG_TLS`) a
//! `ktls` build must fall back to rustls per connection and count it as fallback; on a kernel with
//! kTLS the same tests run on the kernel path. The `PX_TLS_KTLS_NO_PROBE` child also drives the
//! per-connection fallback (the handshake made for kTLS, then `TCP_ULP` refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use px_core::{Host, UpstreamConn, UpstreamStream};
use px_tls::ktls::{self, TlsPath, TlsTcpStream};
use px_tls::{TlsClient, TlsServer};
use px_yaml::{Val, load_str};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA and a leaf for `localhost` in `dir`: ca.crt, server.crt, server.key.
fn pki(dir: &Path) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ktls test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

fn configs(dir: &Path, version: &str) -> (TlsServer, TlsClient) {
    let server_yaml =
        format!("certificate: server.crt\nprivate_key: server.key\nmax_tls_version: {version}\n");
    let client_yaml = format!("ca_certificate: ca.crt\nmax_tls_version: {version}\n");
    let node = load_str(&server_yaml, &dir.join("g3proxy.yaml")).unwrap();
    let server = TlsServer::parse(&Val::root(&node, "tls_server")).unwrap();
    let node = load_str(&client_yaml, &dir.join("g3proxy.yaml")).unwrap();
    let client = TlsClient::parse(&Val::root(&node, "tls_client"))
        .unwrap()
        .unwrap();
    (server, client)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(5) as u8)
        .collect()
}

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), a.unwrap().0)
}

/// The server echoes everything back; the client writes `data` right after its
/// handshake and reads it back. Returns both streams' paths and reasons.
async fn echo(
    server: &TlsServer,
    client: &TlsClient,
    data: &[u8],
) -> [(TlsPath, Option<String>); 2] {
    let (c, s) = pair().await;
    let srv = async {
        let mut t = ktls::accept(server, s).await.unwrap();
        let info = (t.path(), t.fallback_reason().map(str::to_string));
        let (mut r, mut w) = tokio::io::split(&mut t);
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
        info
    };
    let cli = async {
        let name = ServerName::try_from("localhost").unwrap();
        let t: TlsTcpStream = ktls::connect(client, name, c).await.unwrap();
        let info = (t.path(), t.fallback_reason().map(str::to_string));
        let (mut r, mut w) = tokio::io::split(t);
        let send = async {
            w.write_all(data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let recv = async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(send, recv);
        assert!(got == data, "echoed bytes differ");
        info
    };
    let (s_info, c_info) = tokio::join!(srv, cli);
    [s_info, c_info]
}

/// What a connection's path must be in this build, on this kernel.
fn check_path(info: &(TlsPath, Option<String>)) {
    let (path, reason) = info;
    if !cfg!(feature = "ktls") {
        // the plain rustls handshake, nothing counted or explained
        assert_eq!((*path, reason.as_deref()), (TlsPath::Rustls, None));
    } else if !ktls::available() {
        // the probe said no (these machines: setsockopt TCP_ULP "tls" fails with ENOENT)
        assert_eq!(*path, TlsPath::Rustls, "{info:?}");
        let reason = reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("TCP_ULP") || reason.contains("PX_TLS_NO_KTLS"),
            "{info:?}"
        );
    } else if *path == TlsPath::Rustls {
        // tried for this connection and refused by the socket: fallback
        assert!(
            reason.as_deref().unwrap_or_default().contains("TCP_ULP"),
            "{info:?}"
        );
    } else {
        assert_eq!(reason.as_deref(), None, "{info:?}");
    }
}

async fn both_versions_echo() -> ktls::KtlsTotals {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let before = ktls::totals();
    for version in ["tls1.2", "tls1.3"] {
        let (server, client) = configs(dir.path(), version);
        for info in echo(&server, &client, &pattern(1 << 20)).await {
            check_path(&info);
        }
        // a tiny exchange, sent at once after the handshake
        for info in echo(&server, &client, b"x").await {
            check_path(&info);
        }
    }
    let after = ktls::totals();
    if cfg!(feature = "ktls") {
        let (k, f) = (after.ktls - before.ktls, after.fallback - before.fallback);
        assert!(k + f >= 8, "{before:?} -> {after:?}");
        if !ktls::available() {
            assert!(
                f >= 8,
                "every connection counts as fallback: {before:?} -> {after:?}"
            );
        }
        assert_eq!(after.failed, before.failed);
    } else {
        assert_eq!(after, ktls::KtlsTotals::default());
    }
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_tls13_over_tcp_take_the_expected_path() {
    both_versions_echo().await;
}

#[tokio::test]
async fn connect_upstream_wraps_a_tcp_upstream() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let (server, client) = configs(dir.path(), "tls1.3");
    let (c, s) = pair().await;
    let srv = tokio::spawn(async move {
        let mut t = ktls::accept(&server, s).await.unwrap();
        let mut buf = [0u8; 5];
        t.read_exact(&mut buf).await.unwrap();
        t.write_all(&buf).await.unwrap();
        t.shutdown().await.unwrap();
    });
    let addr = c.peer_addr().unwrap();
    let conn = UpstreamConn {
        local_addr: c.local_addr().unwrap(),
        peer_addr: addr,
        stream: UpstreamStream::Tcp(c),
        speed_limit: Default::default(),
    };
    let host = Host::Domain("localhost".to_string());
    let mut conn = client.connect_upstream(conn, &host).await.unwrap();
    let UpstreamStream::Other(s) = &mut conn.stream else {
        panic!("TLS is not a plain TCP stream");
    };
    s.write_all(b"hello").await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello");
    srv.await.unwrap();
}

/// Run by `per_connection_fallback_without_the_probe` in a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_without_probe() {
    if std::env::var_os("PX_TLS_KTLS_NO_PROBE").is_none() {
        return;
    }
    let after = both_versions_echo().await;
    println!("CHILD-KTLS-OK {after:?}");
}

#[cfg(feature = "ktls")]
#[test]
fn per_connection_fallback_without_the_probe() {
    // every connection does its handshake for kTLS (through the record-boundary
    // reader); where the kernel refuses TCP_ULP it stays on rustls, unharmed
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_without_probe", "--nocapture"])
        .env("PX_TLS_KTLS_NO_PROBE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-KTLS-OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
