//! Handshakes between configs parsed from YAML, over in-memory pipes, with certificates made
//! by rcgen at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use px_yaml::{Val, load_str};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{TlsClient, TlsServer};

/// A CA that issues leaf certificates into a directory.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.crt")), cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// Writes `<file>.crt` and `<file>.key` for these names.
    fn leaf(&self, file: &str, names: &[&str]) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }

    fn ca_file(&self) -> String {
        format!("{}-ca.crt", self.name)
    }
}

fn server(dir: &Path, yaml: &str) -> Result<TlsServer, px_yaml::ConfigError> {
    let node = load_str(yaml, &dir.join("g3proxy.yaml")).unwrap();
    TlsServer::parse(&Val::root(&node, "tls_server"))
}

fn client(dir: &Path, yaml: &str) -> Result<Option<TlsClient>, px_yaml::ConfigError> {
    let node = load_str(yaml, &dir.join("g3proxy.yaml")).unwrap();
    TlsClient::parse(&Val::root(&node, "tls_client"))
}

struct Handshake {
    client: std::io::Result<()>,
    server: std::io::Result<()>,
    /// The certificate the client saw, as DER.
    peer_cert: Option<Vec<u8>>,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

async fn handshake(s: &TlsServer, c: &TlsClient, name: &str) -> Handshake {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let sn = ServerName::try_from(name.to_string()).unwrap();
    let srv = async {
        let mut t = s.accept(b).await?;
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await?;
        t.write_all(&buf).await?;
        t.shutdown().await?;
        Ok::<_, std::io::Error>(())
    };
    let cli = async {
        let mut t = c.connect(sn, a).await?;
        t.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        let (_, conn) = t.get_ref();
        let peer = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        Ok::<_, std::io::Error>((
            peer,
            conn.alpn_protocol().map(|p| p.to_vec()),
            conn.protocol_version(),
        ))
    };
    let (sr, cr) = tokio::join!(srv, cli);
    let (peer_cert, alpn, version, client) = match cr {
        Ok((p, a, v)) => (p, a, v, Ok(())),
        Err(e) => (None, None, None, Err(e)),
    };
    Handshake {
        client,
        server: sr,
        peer_cert,
        alpn,
        version,
    }
}

fn der_of(path: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[tokio::test]
async fn sni_selects_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d, "a");
    ca.leaf("one", &["one.test"]);
    ca.leaf("two", &["two.test", "*.wild.test"]);
    let s = server(
        d,
        "cert_pairs:\n  - {certificate: one.crt, private_key: one.key}\n  - certificate: two.crt\n    private_key: two.key\n",
    )
    .unwrap();
    let c = client(d, &format!("ca_certificate: {}\n", ca.ca_file()))
        .unwrap()
        .unwrap();
    for (name, file) in [
        ("one.test", "one.crt"),
        ("two.test", "two.crt"),
        ("x.wild.test", "two.crt"),
    ] {
        let h = handshake(&s, &c, name).await;
        h.client.as_ref().unwrap();
        h.server.as_ref().unwrap();
        assert_eq!(h.peer_cert.unwrap(), der_of(&d.join(file)), "{name}");
    }
    // an unknown name gets the first pair, which the client then refuses
    let h = handshake(&s, &c, "three.test").await;
    assert!(h.client.is_err());
}

#[tokio::test]
async fn mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Ca::new(d, "a");
    let b = Ca::new(d, "b");
    a.leaf("srv", &["srv.test"]);
    a.leaf("good", &["client.test"]);
    b.leaf("stranger", &["client.test"]);
    let s = server(
        d,
        "cert_pairs: {certificate: srv.crt, private_key: srv.key}\nenable_client_auth: true\nca_certificate: a-ca.crt\n",
    )
    .unwrap();
    assert!(s.client_auth());
    let no_cert = client(d, "ca_certificate: a-ca.crt\n").unwrap().unwrap();
    let h = handshake(&s, &no_cert, "srv.test").await;
    assert!(
        h.server.is_err(),
        "a client without a certificate is refused"
    );
    let stranger = client(
        d,
        "ca_certificate: a-ca.crt\ncertificate: stranger.crt\nprivate_key: stranger.key\n",
    )
    .unwrap()
    .unwrap();
    let h = handshake(&s, &stranger, "srv.test").await;
    assert!(h.server.is_err(), "a certificate of another CA is refused");
    let good = client(
        d,
        "ca_certificate: a-ca.crt\ncert_pair: {certificate: good.crt, private_key: good.key}\n",
    )
    .unwrap()
    .unwrap();
    let h = handshake(&s, &good, "srv.test").await;
    h.server.unwrap();
    h.client.unwrap();
}

#[tokio::test]
async fn alpn_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Ca::new(d, "a");
    a.leaf("srv", &["srv.test"]);
    let s = server(
        d,
        "certificate: srv.crt\nprivate_key: srv.key\nalpn_protocols: [h2, http/1.1]\nmax_tls_version: tls1.2\n",
    )
    .unwrap();
    let c = client(d, "ca_certificate: a-ca.crt\nalpn_protocols: http/1.1\n")
        .unwrap()
        .unwrap();
    let h = handshake(&s, &c, "srv.test").await;
    h.client.unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h.version, Some(rustls::ProtocolVersion::TLSv1_2));
    let c13 = client(d, "ca_certificate: a-ca.crt\nprotocol: tls1.3\n")
        .unwrap()
        .unwrap();
    let h = handshake(&s, &c13, "srv.test").await;
    assert!(
        h.client.is_err(),
        "a TLS 1.3-only client cannot talk to a 1.2-only server"
    );
}

#[test]
fn config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Ca::new(d, "a");
    a.leaf("srv", &["srv.test"]);
    a.leaf("other", &["srv.test"]);
    let e = server(d, "enable_client_auth: true\n").unwrap_err();
    assert!(e.message.contains("cert_pairs"), "{e}");
    let e = server(
        d,
        "cert_pairs: {certificate: missing.crt, private_key: srv.key}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("missing.crt"), "{e}");
    assert_eq!(e.line, 1);
    let e = server(
        d,
        "cert_pairs: {certificate: srv.crt, private_key: other.key}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("does not fit"), "{e}");
    let e = server(d, "certificate: srv.crt\nprivate_key: srv.key\nbogus: 1\n").unwrap_err();
    assert!(e.message.contains("unknown key"), "{e}");
    let e = server(
        d,
        "certificate: srv.crt\nprivate_key: srv.key\nmax_tls_version: 1.1\n",
    )
    .unwrap_err();
    assert!(e.message.contains("1.2 and 1.3"), "{e}");
    let e = client(d, "protocol: tlcp\n").unwrap_err();
    assert!(e.message.contains("tlcp"), "{e}");
    let e = client(d, "ciphers: AES\n").unwrap_err();
    assert!(e.message.contains("not implemented"), "{e}");
    assert!(client(d, "false\n").unwrap().is_none());
    assert!(client(d, "true\n").unwrap().is_some());
    assert!(client(d, "{}\n").unwrap().is_some());
    assert!(
        client(
            d,
            "no_session_cache: true\nuse_builtin_ca_certificate: true\n"
        )
        .unwrap()
        .is_some()
    );
}
