//! TLCP handshakes over in-memory pipes: the `tlcp_cert_pairs` server against Tongsuo's NTLS
//! client and against [`TlcpClient`] (a `tls_client` with `protocol: tlcp`), with SM2 signing
//! and encryption certificates made by Tongsuo at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslContextBuilder, SslMethod, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use px_core::Host;
use px_yaml::{ConfigError, Val, load_str};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{NativeTlsServer, NativeTlsStream, TlcpClient};
use crate::{TlsClient, UpstreamTlsClient};

fn sm2_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::SM2).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// Which certificate to make.
enum Kind {
    Ca,
    Sign,
    Enc,
}

/// An SM3-signed certificate for `key`; `issuer` None: self-signed. Leaves carry
/// `tlcp.test` and 127.0.0.1 in their SANs.
fn cert(
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

/// Writes `<name>-ca.crt`, and `<name>-sign.{crt,key}` + `<name>-enc.{crt,key}` issued by it.
fn sm2_pki(dir: &Path, name: &str) {
    let ca_key = sm2_key();
    let ca = cert(&format!("{name} SM2 CA"), &ca_key, None, Kind::Ca);
    std::fs::write(dir.join(format!("{name}-ca.crt")), ca.to_pem().unwrap()).unwrap();
    for (role, kind) in [("sign", Kind::Sign), ("enc", Kind::Enc)] {
        let key = sm2_key();
        let c = cert(&format!("{name} {role}"), &key, Some((&ca, &ca_key)), kind);
        std::fs::write(dir.join(format!("{name}-{role}.crt")), c.to_pem().unwrap()).unwrap();
        std::fs::write(
            dir.join(format!("{name}-{role}.key")),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
    }
}

fn val_of<T>(dir: &Path, yaml: &str, f: impl Fn(&Val<'_>) -> T) -> T {
    let node = load_str(yaml, &dir.join("g3proxy.yaml")).unwrap();
    f(&Val::root(&node, "tls"))
}

fn server(dir: &Path, extra: &str) -> NativeTlsServer {
    val_of(
        dir,
        &format!(
            "tlcp_cert_pairs:\n  sign_certificate: srv-sign.crt\n  sign_private_key: srv-sign.key\n  \
             enc_certificate: srv-enc.crt\n  enc_private_key: srv-enc.key\n{extra}"
        ),
        NativeTlsServer::parse,
    )
    .unwrap()
}

fn client(dir: &Path, yaml: &str) -> Result<TlcpClient, ConfigError> {
    val_of(dir, yaml, TlcpClient::parse)
}

/// The server echoes 4 bytes and closes; the result is (client echo, server's version string).
async fn exchange(
    s: &NativeTlsServer,
    c: &TlcpClient,
    name: &Host,
) -> (Result<Vec<u8>, String>, Result<String, String>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let srv = async {
        let mut t = s.accept(b).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        t.write_all(&buf).await.map_err(|e| e.to_string())?;
        t.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(t.ssl().version_str().to_string())
    };
    let cli = async {
        let mut t = c.connect(name, a).await.map_err(|e| e.to_string())?;
        t.write_all(b"tlcp").await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        t.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(buf)
    };
    let (sr, cr) = tokio::join!(srv, cli);
    (cr, sr)
}

fn domain(d: &str) -> Host {
    Host::Domain(d.to_string())
}

#[tokio::test]
async fn tongsuo_ntls_client_against_tlcp_cert_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sm2_pki(d, "srv");
    let s = server(d, "");
    let ca = X509::from_pem(&std::fs::read(d.join("srv-ca.crt")).unwrap()).unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let srv = async {
        let mut t = s.accept(b).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        t.write_all(&buf).await.map_err(|e| e.to_string())?;
        t.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(t.ssl().version_str().to_string())
    };
    let cli = async {
        let mut cb = SslContextBuilder::new(SslMethod::ntls_client()).unwrap();
        cb.enable_ntls();
        cb.set_options(openssl::ssl::SslOptions::DONT_INSERT_EMPTY_FRAGMENTS);
        cb.set_verify(SslVerifyMode::PEER);
        cb.cert_store_mut().add_cert(ca.clone()).unwrap();
        let ssl = Ssl::new(&cb.build()).unwrap();
        let mut t = NativeTlsStream::new(ssl, a).map_err(|e| e.to_string())?;
        t.connect().await.map_err(|e| e.to_string())?;
        t.write_all(b"tlcp").await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        t.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(buf)
    };
    let (sr, cr) = tokio::join!(srv, cli);
    assert_eq!(cr.unwrap(), b"tlcp");
    assert_eq!(sr.unwrap(), "NTLSv1.1");
}

#[tokio::test]
async fn tlcp_client_verifies_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sm2_pki(d, "srv");
    sm2_pki(d, "other");
    let s = server(d, "");
    let c = client(d, "protocol: tlcp\nca_certificate: srv-ca.crt\n").unwrap();
    let (cr, sr) = exchange(&s, &c, &domain("tlcp.test")).await;
    assert_eq!(cr.unwrap(), b"tlcp");
    assert_eq!(sr.unwrap(), "NTLSv1.1");
    // an IP address is checked against the IP SANs
    let (cr, _) = exchange(&s, &c, &Host::Ip([127, 0, 0, 1].into())).await;
    assert_eq!(cr.unwrap(), b"tlcp");
    // a name the certificate does not carry
    let (cr, _) = exchange(&s, &c, &domain("elsewhere.test")).await;
    let e = cr.unwrap_err();
    assert!(e.contains("server certificate: hostname mismatch"), "{e}");
    let (cr, _) = exchange(&s, &c, &Host::Ip([127, 0, 0, 2].into())).await;
    assert!(cr.is_err());
    // a CA that did not issue it
    let c = client(d, "protocol: TLCP\nca_certificate: other-ca.crt\n").unwrap();
    let (cr, _) = exchange(&s, &c, &domain("tlcp.test")).await;
    let e = cr.unwrap_err();
    assert!(e.contains("unable to get local issuer certificate"), "{e}");
}

#[tokio::test]
async fn tlcp_client_certificate_pair() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sm2_pki(d, "srv");
    sm2_pki(d, "cli");
    sm2_pki(d, "other");
    let s = server(d, "enable_client_auth: true\nca_certificate: cli-ca.crt\n");
    let base = "protocol: tlcp\nca_certificate: srv-ca.crt\nhandshake_timeout: 3s\n";
    let pair = |who: &str| {
        format!(
            "tlcp_cert_pair:\n  sign_certificate: {who}-sign.crt\n  sign_private_key: {who}-sign.key\n  \
             enc_certificate: {who}-enc.crt\n  enc_private_key: {who}-enc.key\n"
        )
    };
    // without a client pair the server refuses
    let c = client(d, base).unwrap();
    let (cr, sr) = exchange(&s, &c, &domain("tlcp.test")).await;
    assert!(cr.is_err(), "{cr:?}");
    assert!(
        sr.unwrap_err()
            .contains("peer did not return a certificate")
    );
    // a pair from a CA the server does not trust
    let c = client(d, &format!("{base}{}", pair("other"))).unwrap();
    let (cr, sr) = exchange(&s, &c, &domain("tlcp.test")).await;
    assert!(cr.is_err(), "{cr:?}");
    assert!(sr.unwrap_err().contains("certificate verify failed"));
    // the right pair (ECDHE-SM2 offered first)
    let c = client(d, &format!("{base}{}", pair("cli"))).unwrap();
    let (cr, sr) = exchange(&s, &c, &domain("tlcp.test")).await;
    assert_eq!(cr.unwrap(), b"tlcp");
    assert_eq!(sr.unwrap(), "NTLSv1.1");
    // a fixed cipher list
    let c = client(
        d,
        &format!("{base}{}ciphers: [ECC-SM2-SM4-CBC-SM3]\n", pair("cli")),
    )
    .unwrap();
    let (cr, _) = exchange(&s, &c, &domain("tlcp.test")).await;
    assert_eq!(cr.unwrap(), b"tlcp");
}

#[test]
fn tlcp_client_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sm2_pki(d, "srv");
    let err = |yaml: &str| client(d, yaml).unwrap_err();
    let e = err("protocol: tlcp\ncertificate: srv-sign.crt\nprivate_key: srv-sign.key\n");
    assert!(e.message.contains("tlcp_cert_pair"), "{e}");
    assert_eq!(e.key_path, "tls.certificate");
    let e = err("protocol: tlcp\nmin_tls_version: tls1.2\n");
    assert!(e.message.contains("fixes the protocol"), "{e}");
    let e = err("protocol: tlcp\nno_default_ca_certificate: true\n");
    assert!(e.message.contains("ca_certificate"), "{e}");
    let e = err("protocol: tlcp\nca_certificate: missing.crt\n");
    assert!(e.message.contains("missing.crt"), "{e}");
    let e = err("protocol: tlcp\nca_certificate: srv-ca.crt\nciphers: NOPE-CIPHER\n");
    assert!(e.message.contains("no usable cipher"), "{e}");
    let e = err(
        "protocol: tlcp\ntlcp_cert_pair:\n  sign_certificate: srv-sign.crt\n  sign_private_key: srv-enc.key\n  \
         enc_certificate: srv-enc.crt\n  enc_private_key: srv-enc.key\n",
    );
    assert!(e.key_path.starts_with("tls.tlcp_cert_pair"), "{e}");
    let e = err("protocol: tlcp\ninsecure: true\n");
    assert!(e.message.contains("not implemented"), "{e}");
    let e = err("protocol: tlcp\nbogus: 1\n");
    assert!(e.message.contains("unknown key"), "{e}");
    // defaults: the system CAs
    client(
        d,
        "protocol: tlcp\nno_session_cache: true\ndisable_sni: true\nalpn_protocols: [h2]\n",
    )
    .unwrap();
}

#[test]
fn upstream_client_picks_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sm2_pki(d, "srv");
    let up = |yaml: &str| val_of(d, yaml, UpstreamTlsClient::parse);
    let c = up("protocol: tlcp\nca_certificate: srv-ca.crt\n")
        .unwrap()
        .unwrap();
    assert_eq!(c.protocol(), "TLCP");
    let c = up("protocol: tls1.3\n").unwrap().unwrap();
    assert_eq!(c.protocol(), "TLS");
    assert_eq!(up("{}\n").unwrap().unwrap().protocol(), "TLS");
    assert!(up("false\n").unwrap().is_none());
    let e = up(
        "tlcp_cert_pair:\n  sign_certificate: srv-sign.crt\n  sign_private_key: srv-sign.key\n  \
         enc_certificate: srv-enc.crt\n  enc_private_key: srv-enc.key\n",
    )
    .unwrap_err();
    assert!(e.message.contains("protocol: tlcp"), "{e}");
    // a rustls-only tls_client (http_proxy's) says where TLCP is supported
    let e = val_of(d, "protocol: tlcp\n", TlsClient::parse).unwrap_err();
    assert!(e.message.contains("tcp_stream"), "{e}");
}
