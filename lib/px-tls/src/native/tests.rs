//! OpenSSL server handshakes against the rustls client of px-tls, over in-memory pipes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use px_yaml::{Val, load_str};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::NativeTlsServer;
use crate::TlsClient;

fn write_pair(dir: &Path, file: &str, names: &[&str], issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
}

fn ca(dir: &Path, name: &str) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
    rcgen::Issuer::new(params, key)
}

fn val_of<T>(dir: &Path, yaml: &str, f: impl Fn(&Val<'_>) -> T) -> T {
    let node = load_str(yaml, &dir.join("g3proxy.yaml")).unwrap();
    f(&Val::root(&node, "tls"))
}

/// Handshake, echo "ping", and report the certificate DER the client saw.
async fn run(s: &NativeTlsServer, c: &TlsClient, name: &str) -> Result<Vec<u8>, String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let srv = async {
        let mut t = s.accept(b).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        t.write_all(&buf).await.map_err(|e| e.to_string())?;
        t.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let cli = async {
        let sn = ServerName::try_from(name.to_string()).unwrap();
        let mut t = c.connect(sn, a).await.map_err(|e| e.to_string())?;
        t.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        t.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        if buf != b"ping" {
            return Err(format!("echo {buf:?}"));
        }
        let cert = t.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        Ok::<_, String>(cert)
    };
    let (sr, cr) = tokio::join!(srv, cli);
    sr?;
    cr
}

#[tokio::test]
async fn openssl_server_with_sni_and_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let srv_ca = ca(d, "srv-ca");
    let cli_ca = ca(d, "cli-ca");
    write_pair(d, "one", &["one.test"], &srv_ca);
    write_pair(d, "two", &["*.two.test"], &srv_ca);
    write_pair(d, "client", &["client.test"], &cli_ca);
    let s = val_of(
        d,
        "cert_pairs:\n  - {certificate: one.crt, private_key: one.key}\n  - {certificate: two.crt, private_key: two.key}\n",
        NativeTlsServer::parse,
    )
    .unwrap();
    let c = val_of(d, "ca_certificate: srv-ca.crt\n", TlsClient::parse)
        .unwrap()
        .unwrap();
    let der = |f: &str| {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(d.join(f))
            .unwrap()
            .to_vec()
    };
    assert_eq!(run(&s, &c, "one.test").await.unwrap(), der("one.crt"));
    assert_eq!(run(&s, &c, "a.two.test").await.unwrap(), der("two.crt"));
    let m = val_of(
        d,
        "cert_pairs: {certificate: one.crt, private_key: one.key}\nenable_client_auth: true\nca_certificate: cli-ca.crt\nmax_tls_version: tls1.2\n",
        NativeTlsServer::parse,
    )
    .unwrap();
    assert!(
        run(&m, &c, "one.test").await.is_err(),
        "no client certificate"
    );
    let with_cert = val_of(
        d,
        "ca_certificate: srv-ca.crt\ncertificate: client.crt\nprivate_key: client.key\n",
        TlsClient::parse,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        run(&m, &with_cert, "one.test").await.unwrap(),
        der("one.crt")
    );
}

#[test]
fn openssl_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = ca(d, "a");
    write_pair(d, "x", &["x.test"], &a);
    write_pair(d, "y", &["y.test"], &a);
    let e = val_of(d, "enable_client_auth: true\n", NativeTlsServer::parse).unwrap_err();
    assert!(e.message.contains("cert_pairs"), "{e}");
    let e = val_of(
        d,
        "cert_pairs: {certificate: x.crt, private_key: y.key}\n",
        NativeTlsServer::parse,
    )
    .unwrap_err();
    assert!(e.message.contains("does not fit"), "{e}");
    let e = val_of(
        d,
        "cert_pairs: {certificate: nope.crt, private_key: y.key}\n",
        NativeTlsServer::parse,
    )
    .unwrap_err();
    assert!(e.message.contains("nope.crt"), "{e}");
    #[cfg(not(feature = "vendored-tongsuo"))]
    {
        let e = val_of(
            d,
            "tlcp_cert_pairs: {sign_certificate: x.crt, sign_private_key: x.key, enc_certificate: y.crt, enc_private_key: y.key}\n",
            NativeTlsServer::parse,
        )
        .unwrap_err();
        assert!(e.message.contains("vendored-tongsuo"), "{e}");
    }
}
