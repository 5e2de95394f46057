//! End-to-end encrypted DNS: `hickory` over TLS, HTTPS and QUIC, each through
//! a small test front (rustls, a test CA from rcgen) that passes the DNS
//! messages on to dnsmasq.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use hickory_resolver::net::http::{Version, response};
use hickory_resolver::net::quic::QuicServer;
use px_core::{AddrFamily, ResolveError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_rustls::TlsAcceptor;

/// A rustls server config for `dns.test` (certificate from a fresh test CA)
/// and the CA's PEM.
fn server_tls(alpn: &[u8], tls13_only: bool) -> (rustls::ServerConfig, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "px test ca");
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["dns.test".to_string()]).unwrap();
    let cert: CertificateDer<'static> = params.signed_by(&key, &issuer).unwrap().der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider);
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut config = builder
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    (config, ca_pem)
}

/// Sends one DNS message to dnsmasq over UDP and returns the reply.
async fn ask(upstream: SocketAddr, query: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(query, upstream).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    buf
}

/// DNS over TLS: TLS in front of dnsmasq's TCP port, bytes relayed as they are.
async fn dot_front(upstream: SocketAddr) -> (SocketAddr, String) {
    let (config, ca_pem) = server_tls(b"", false);
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    (addr, ca_pem)
}

/// DNS over HTTPS: HTTP/2 POSTs to `/dns-query`, each body asked over UDP.
async fn doh_front(upstream: SocketAddr) -> (SocketAddr, String) {
    let (config, ca_pem) = server_tls(b"h2", false);
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        assert_eq!(req.uri().path(), "/dns-query");
                        let mut body = req.into_body();
                        let mut query = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            query.extend_from_slice(&chunk);
                        }
                        let reply = ask(upstream, &query).await;
                        let head = response(Version::Http2, reply.len()).unwrap();
                        let mut send = respond.send_response(head, false).unwrap();
                        let _ = send.send_data(Bytes::from(reply), true);
                    });
                }
            });
        }
    });
    (addr, ca_pem)
}

/// DNS over QUIC: one query per stream, asked over UDP.
async fn doq_front(upstream: SocketAddr) -> (SocketAddr, String) {
    let (config, ca_pem) = server_tls(b"doq", true);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut server = QuicServer::with_socket_and_tls_config(socket, Arc::new(config)).unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok(Some((mut streams, _))) = server.next().await {
            tokio::spawn(async move {
                while let Some(Ok(mut stream)) = streams.next().await {
                    tokio::spawn(async move {
                        let Ok(query) = stream.receive_bytes().await else {
                            return;
                        };
                        let reply = ask(upstream, &query).await;
                        let _ = stream.send_bytes(Bytes::from(reply)).await;
                        let _ = stream.finish().await;
                    });
                }
            });
        }
    });
    (addr, ca_pem)
}

fn yaml(name: &str, protocol: &str, port: u16, tls_name: &str, ca_pem: &str) -> String {
    let ca: String = ca_pem.lines().map(|l| format!("\n      {l}")).collect();
    format!(
        "name: {name}\ntype: hickory\nserver: 127.0.0.1\nserver_port: {port}\neach_timeout: 3s\n\
         encryption:\n  protocol: {protocol}\n  tls_name: {tls_name}\n  tls_client:\n    \
         no_default_ca_certificate: true\n    ca_certificate: |{ca}\n"
    )
}

/// Resolves through the front; a wrong `tls_name` must fail verification.
async fn check(protocol: &str, front: SocketAddr, ca_pem: &str) {
    let r = build(
        &yaml("enc", protocol, front.port(), "dns.test", ca_pem),
        &Lookup::default(),
    );
    assert_eq!(
        r.resolve_family(A_NAME, AddrFamily::Ipv4).await.unwrap(),
        vec![A_ADDR.parse::<IpAddr>().unwrap()],
        "{protocol}"
    );
    assert_eq!(
        r.resolve_family(AAAA_NAME, AddrFamily::Ipv6).await.unwrap(),
        vec![AAAA_ADDR.parse::<IpAddr>().unwrap()],
        "{protocol}"
    );
    assert_eq!(
        r.resolve_family(NX_NAME, AddrFamily::Ipv4).await,
        Err(ResolveError::NotFound(NX_NAME.to_string())),
        "{protocol}"
    );
    let wrong = build(
        &yaml("bad", protocol, front.port(), "other.test", ca_pem),
        &Lookup::default(),
    );
    let res = wrong.resolve_family(A_NAME, AddrFamily::Ipv4).await;
    assert!(
        matches!(
            res,
            Err(ResolveError::ServerFailure(_) | ResolveError::Timeout)
        ),
        "{protocol}: {res:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hickory_over_tls() {
    let dns = Dnsmasq::start();
    let (front, ca) = dot_front(dns.addr).await;
    check("dns-over-tls", front, &ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hickory_over_https() {
    let dns = Dnsmasq::start();
    let (front, ca) = doh_front(dns.addr).await;
    check("dns-over-https", front, &ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hickory_over_quic() {
    let dns = Dnsmasq::start();
    let (front, ca) = doq_front(dns.addr).await;
    check("dns-over-quic", front, &ca).await;
}
