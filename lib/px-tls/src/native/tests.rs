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

/// A TLCP handshake: SM2 signing and encryption certificates made by Tongsuo, the server parsed
/// from `tlcp_cert_pairs`, a Tongsuo NTLS client.
#[cfg(feature = "vendored-tongsuo")]
mod tlcp {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::{Ssl, SslContextBuilder, SslMethod, SslVerifyMode};
    use openssl::x509::extension::{BasicConstraints, KeyUsage};
    use openssl::x509::{X509, X509Builder, X509NameBuilder};

    use crate::native::NativeTlsStream;

    fn sm2_key() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::SM2).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    fn cert(
        cn: &str,
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
        usage: openssl::x509::X509Extension,
        ca: bool,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(rand_serial())
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        let mut bc = BasicConstraints::new();
        if ca {
            bc.critical().ca();
        }
        b.append_extension(bc.build().unwrap()).unwrap();
        b.append_extension(usage).unwrap();
        match issuer {
            Some((icert, ikey)) => {
                b.set_issuer_name(icert.subject_name()).unwrap();
                b.sign(ikey, MessageDigest::sm3()).unwrap();
            }
            None => {
                b.set_issuer_name(&name).unwrap();
                b.sign(key, MessageDigest::sm3()).unwrap();
            }
        }
        b.build()
    }

    fn rand_serial() -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(7)
            | 1
    }

    #[tokio::test]
    async fn tlcp_handshake_with_sm2_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca_key = sm2_key();
        let ca = cert(
            "tlcp CA",
            &ca_key,
            None,
            KeyUsage::new().key_cert_sign().crl_sign().build().unwrap(),
            true,
        );
        let write = |f: &str, c: &X509, k: &PKey<Private>| {
            std::fs::write(d.join(format!("{f}.crt")), c.to_pem().unwrap()).unwrap();
            std::fs::write(
                d.join(format!("{f}.key")),
                k.private_key_to_pem_pkcs8().unwrap(),
            )
            .unwrap();
        };
        let sign_key = sm2_key();
        let sign = cert(
            "sign",
            &sign_key,
            Some((&ca, &ca_key)),
            KeyUsage::new().digital_signature().build().unwrap(),
            false,
        );
        write("sign", &sign, &sign_key);
        let enc_key = sm2_key();
        let enc = cert(
            "enc",
            &enc_key,
            Some((&ca, &ca_key)),
            KeyUsage::new()
                .key_encipherment()
                .data_encipherment()
                .key_agreement()
                .build()
                .unwrap(),
            false,
        );
        write("enc", &enc, &enc_key);
        std::fs::write(d.join("ca.crt"), ca.to_pem().unwrap()).unwrap();
        let s = val_of(
            d,
            "tlcp_cert_pairs:\n  sign_certificate: sign.crt\n  sign_private_key: sign.key\n  enc_certificate: enc.crt\n  enc_private_key: enc.key\n",
            NativeTlsServer::parse,
        )
        .unwrap();
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
}
