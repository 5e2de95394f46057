//! `tls_server`: a rustls server config (g3proxy's "rustls server config").
//!
//! Keys:
//!
//! - `cert_pairs`: one `{certificate, private_key}` map or a list of them; with several, the
//!   certificate is chosen by the client's SNI (the first pair whose certificate is valid for the
//!   name, wildcards included), the first pair otherwise.
//! - `certificate` + `private_key`: one more pair, written flat.
//! - `enable_client_auth` (default false): require a client certificate (mTLS), verified against
//!   `ca_certificate` (alias `client_auth_certificate`), or the system roots when that is not set.
//! - `no_session_ticket`, `no_session_cache` (default false): turn off TLS 1.3/1.2 resumption.
//! - `handshake_timeout` (default 10s).
//! - `alpn_protocols` (extension): the ALPN protocols offered, in preference order.
//! - `min_tls_version`, `max_tls_version` (extension): the protocol range, within TLS 1.2..=1.3.
//!
//! ```yaml
//! tls_server:
//!   cert_pairs:
//!     - {certificate: a.crt, private_key: a.key}
//!     - {certificate: b.crt, private_key: b.key}
//!   enable_client_auth: true
//!   ca_certificate: clients-ca.crt
//!   alpn_protocols: [h2, http/1.1]
//! ```

use std::sync::Arc;
use std::time::Duration;

use px_yaml::{ConfigError, Val, values};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{pem, provider, version};

/// The default `handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `tls_server`: the rustls config and how long a handshake may take.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
    client_auth: bool,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// Picks the certificate by SNI among several pairs.
#[derive(Debug)]
struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let first = self.keys.first().cloned();
        if self.keys.len() < 2 {
            return first;
        }
        let Some(sn) = name.and_then(|n| ServerName::try_from(n).ok()) else {
            return first;
        };
        for key in &self.keys {
            let Some(der) = key.cert.first() else {
                continue;
            };
            let Ok(ee) = webpki::EndEntityCert::try_from(der) else {
                continue;
            };
            if ee.verify_is_valid_for_subject_name(&sn).is_ok() {
                return Some(Arc::clone(key));
            }
        }
        first
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

fn cert_pair(v: &Val<'_>, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, ConfigError> {
    let mut m = v.map()?;
    let cert = m.required("certificate")?;
    let key = m.required("private_key")?;
    m.finish()?;
    pair_of(&cert, &key, provider)
}

fn pair_of(
    cert: &Val<'_>,
    key: &Val<'_>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = pem::certificates(cert)?;
    let der = pem::private_key(key)?;
    CertifiedKey::from_der(chain, der, provider)
        .map(Arc::new)
        .map_err(|e| key.err(format!("the private key does not fit the certificate: {e}")))
}

/// ALPN protocol names from a string or a list of strings.
pub(crate) fn alpn_list(v: &Val<'_>) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut out = Vec::new();
    for item in v.list() {
        let s = item.as_text()?;
        if s.is_empty() || s.len() > 255 {
            return Err(item.err("an ALPN protocol name is 1 to 255 bytes"));
        }
        out.push(s.into_bytes());
    }
    Ok(out)
}

impl TlsServer {
    /// Parses a `tls_server` map.
    pub fn parse(v: &Val<'_>) -> Result<TlsServer, ConfigError> {
        let provider = provider();
        let mut m = v.map()?;
        let mut keys = Vec::new();
        if let Some(pairs) = m.get("cert_pairs") {
            for item in pairs.list() {
                keys.push(cert_pair(&item, &provider)?);
            }
        }
        let cert = m.get("certificate");
        let key = m.get("private_key");
        match (cert, key) {
            (Some(c), Some(k)) => keys.push(pair_of(&c, &k, &provider)?),
            (Some(c), None) => return Err(c.err("`certificate` needs `private_key`")),
            (None, Some(k)) => return Err(k.err("`private_key` needs `certificate`")),
            (None, None) => {}
        }
        if keys.is_empty() {
            return Err(m.err("tls_server needs `cert_pairs` (or `certificate` and `private_key`)"));
        }
        let client_auth = match m.get("enable_client_auth") {
            Some(b) => b.as_bool()?,
            None => false,
        };
        let ca = m.get_any(&["ca_certificate", "client_auth_certificate"]);
        let roots = ca.as_ref().map(pem::root_store).transpose()?;
        let no_ticket = m
            .get("no_session_ticket")
            .map(|b| b.as_bool())
            .transpose()?;
        let no_cache = m.get("no_session_cache").map(|b| b.as_bool()).transpose()?;
        let handshake_timeout = match m.get("handshake_timeout") {
            Some(d) => values::duration(&d)?,
            None => DEFAULT_HANDSHAKE_TIMEOUT,
        };
        let alpn = m.get("alpn_protocols").map(|a| alpn_list(&a)).transpose()?;
        let versions = version::versions_from_map(&mut m)?;
        m.finish()?;

        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| v.err(format!("TLS versions: {e}")))?;
        let builder = if client_auth {
            let roots = match roots {
                Some(r) => r,
                None => Arc::new(pem::system_roots()),
            };
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| v.err(format!("client certificate verification: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver { keys }));
        // kTLS takes the record keys out of rustls after the handshake
        config.enable_secret_extraction = cfg!(feature = "ktls");
        if no_cache == Some(true) {
            config.session_storage = Arc::new(NoServerSessionStorage {});
        }
        if no_ticket != Some(true) {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| v.err(format!("TLS session tickets: {e}")))?;
        }
        if let Some(alpn) = alpn {
            config.alpn_protocols = alpn;
        }
        Ok(TlsServer {
            config: Arc::new(config),
            handshake_timeout,
            client_auth,
        })
    }

    /// The rustls config.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The `handshake_timeout`.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Whether clients must present a certificate.
    pub fn client_auth(&self) -> bool {
        self.client_auth
    }

    /// Runs the server handshake on `stream` within the handshake timeout.
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config));
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}
