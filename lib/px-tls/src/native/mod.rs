//! `tls_server` of `native_tls_port`: g3proxy's "openssl server config", on the system OpenSSL
//! (or a Tongsuo built from source with the `vendored-tongsuo` feature, which adds TLCP).
//!
//! Keys: `cert_pairs` (one `{certificate, private_key}` or a list; with several, the
//! certificate is chosen by SNI against each certificate's DNS names, the first pair otherwise),
//! `tlcp_cert_pairs` (`{sign_certificate, sign_private_key, enc_certificate, enc_private_key}`,
//! `vendored-tongsuo` only), `enable_client_auth`, `ca_certificate` (alias
//! `client_auth_certificate`; the system CA paths when not set), `session_id_context`,
//! `no_session_ticket`, `no_session_cache`, `handshake_timeout` (10s), and the extensions
//! `min_tls_version` / `max_tls_version` (tls1.0 to tls1.3) and `alpn_protocols`.
//!
//! With `vendored-tongsuo`, also `TlcpClient` (`tlcp_client.rs`): a `tls_client` with `protocol: tlcp`.
//!
//! ```yaml
//! tls_server:
//!   cert_pairs: {certificate: server.crt, private_key: server.key}
//!   enable_client_auth: true
//!   ca_certificate: clients-ca.crt
//! ```

mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{
    AlpnError, NameType, SniError, Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod,
    SslOptions, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use px_yaml::section::resolve_path;
use px_yaml::{ConfigError, MapReader, Val, values};
use tokio::io::{AsyncRead, AsyncWrite};

pub use stream::{MemIo, NativeTlsStream};

use crate::server::{DEFAULT_HANDSHAKE_TIMEOUT, alpn_list};
use crate::version::TlsVersion;

/// A parsed OpenSSL `tls_server`.
#[derive(Clone)]
pub struct NativeTlsServer {
    ctx: SslContext,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for NativeTlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeTlsServer")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// A certificate file and its key file.
struct PairPaths {
    cert: PathBuf,
    key: PathBuf,
    /// Where to report problems.
    at: String,
}

fn path_of(v: &Val<'_>) -> Result<PathBuf, ConfigError> {
    let s = v.as_text()?;
    if s.trim().is_empty() {
        return Err(v.err("empty file path"));
    }
    Ok(resolve_path(v.file(), s.trim()))
}

/// Common settings applied to every context (one per certificate pair).
struct Settings {
    client_auth: bool,
    ca_files: Vec<PathBuf>,
    session_id_context: Vec<u8>,
    no_ticket: bool,
    no_cache: bool,
    min: Option<SslVersion>,
    max: Option<SslVersion>,
    alpn: Option<Vec<Vec<u8>>>,
}

fn ssl_version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::V1_0 => SslVersion::TLS1,
        TlsVersion::V1_1 => SslVersion::TLS1_1,
        TlsVersion::V1_2 => SslVersion::TLS1_2,
        TlsVersion::V1_3 => SslVersion::TLS1_3,
    }
}

/// Names a certificate is valid for: its SAN DNS names, lower-cased.
fn dns_names(cert: &X509) -> Vec<String> {
    cert.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `name` is covered by a certificate name (`*.example.com` covers one label).
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == name,
    }
}

/// `{certificate, private_key}` paths.
fn pair_paths(v: &Val<'_>) -> Result<PairPaths, ConfigError> {
    let mut m = v.map()?;
    let c = m.required("certificate")?;
    let k = m.required("private_key")?;
    m.finish()?;
    let p = PairPaths {
        cert: path_of(&c)?,
        key: path_of(&k)?,
        at: c.path().to_string(),
    };
    if !p.cert.is_file() {
        return Err(c.err(format!("cannot read {}", p.cert.display())));
    }
    if !p.key.is_file() {
        return Err(k.err(format!("cannot read {}", p.key.display())));
    }
    Ok(p)
}

impl Settings {
    /// A context with these settings (no certificate yet).
    fn builder(&self, v: &Val<'_>) -> Result<SslContextBuilder, ConfigError> {
        let e = |what: &str, err: openssl::error::ErrorStack| v.err(format!("{what}: {err}"));
        let mut b = SslContextBuilder::new(SslMethod::tls_server()).map_err(|x| e("OpenSSL", x))?;
        b.set_min_proto_version(self.min)
            .map_err(|x| e("min_tls_version", x))?;
        b.set_max_proto_version(self.max)
            .map_err(|x| e("max_tls_version", x))?;
        // no 1/n-1 record splitting: TLCP's CBC suites trip Tongsuo's record layer with it
        let mut opts = SslOptions::NO_COMPRESSION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
        if self.no_ticket {
            opts |= SslOptions::NO_TICKET;
        }
        b.set_options(opts);
        b.set_session_cache_mode(if self.no_cache {
            SslSessionCacheMode::OFF
        } else {
            SslSessionCacheMode::SERVER
        });
        b.set_session_id_context(&self.session_id_context)
            .map_err(|x| e("session_id_context", x))?;
        if self.client_auth {
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            if self.ca_files.is_empty() {
                b.set_default_verify_paths()
                    .map_err(|x| e("system CA certificates", x))?;
            }
            for f in &self.ca_files {
                let pem = std::fs::read(f)
                    .map_err(|x| v.err(format!("cannot read {}: {x}", f.display())))?;
                let certs = X509::stack_from_pem(&pem)
                    .map_err(|x| v.err(format!("bad PEM in {}: {x}", f.display())))?;
                for c in certs {
                    b.add_client_ca(&c).map_err(|x| e("client CA", x))?;
                    b.cert_store_mut()
                        .add_cert(c)
                        .map_err(|x| e("client CA", x))?;
                }
            }
        }
        if let Some(alpn) = &self.alpn {
            let offer = alpn.clone();
            b.set_alpn_select_callback(move |_ssl, client| {
                // the server's preference order wins
                for want in &offer {
                    let mut rest = client;
                    while let Some((&len, tail)) = rest.split_first() {
                        let len = usize::from(len);
                        let Some(p) = tail.get(..len) else {
                            break;
                        };
                        if p == want.as_slice() {
                            return Ok(p);
                        }
                        rest = &tail[len..];
                    }
                }
                Err(AlpnError::NOACK)
            });
        }
        Ok(b)
    }
}

fn load_pair(b: &mut SslContextBuilder, p: &PairPaths, v: &Val<'_>) -> Result<X509, ConfigError> {
    let err = |what: &str, x: openssl::error::ErrorStack| v.err(format!("{what} ({}): {x}", p.at));
    b.set_certificate_chain_file(&p.cert)
        .map_err(|x| err("certificate", x))?;
    b.set_private_key_file(&p.key, SslFiletype::PEM)
        .map_err(|x| {
            err(
                "the private key cannot be read or does not fit the certificate",
                x,
            )
        })?;
    b.check_private_key()
        .map_err(|x| err("the private key does not fit the certificate", x))?;
    let pem = std::fs::read(&p.cert).map_err(|x| v.err(format!("{}: {x}", p.cert.display())))?;
    X509::from_pem(&pem).map_err(|x| err("certificate", x))
}

impl NativeTlsServer {
    /// Parses a `tls_server` map for OpenSSL.
    pub fn parse(v: &Val<'_>) -> Result<NativeTlsServer, ConfigError> {
        let mut m = v.map()?;
        let mut pairs = Vec::new();
        if let Some(list) = m.get("cert_pairs") {
            for item in list.list() {
                pairs.push(pair_paths(&item)?);
            }
        }
        let tlcp = m.get("tlcp_cert_pairs");
        let client_auth = m
            .get("enable_client_auth")
            .map(|b| b.as_bool())
            .transpose()?
            .unwrap_or(false);
        let ca_files = match m.get_any(&["ca_certificate", "client_auth_certificate"]) {
            Some(c) => c
                .list()
                .iter()
                .map(path_of)
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let session_id_context = match m.get("session_id_context") {
            Some(s) => format!("px-native-tls:{}", s.as_text()?).into_bytes(),
            None => b"px-native-tls".to_vec(),
        };
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
        let (min, max) = versions(&mut m)?;
        m.unimplemented(&["tls_ticketer"])?;
        m.finish()?;
        let settings = Settings {
            client_auth,
            ca_files,
            session_id_context,
            no_ticket: no_ticket == Some(true),
            no_cache: no_cache == Some(true),
            min,
            max,
            alpn,
        };
        if let Some(t) = tlcp {
            return tlcp::build(&settings, &t, pairs, v, handshake_timeout);
        }
        if pairs.is_empty() {
            return Err(v.err("tls_server needs `cert_pairs` (or `tlcp_cert_pairs`)"));
        }
        // one context per pair; the first one picks among the others by SNI
        let mut others: Vec<(Vec<String>, SslContext)> = Vec::new();
        for p in pairs.iter().skip(1) {
            let mut b = settings.builder(v)?;
            let cert = load_pair(&mut b, p, v)?;
            others.push((dns_names(&cert), b.build()));
        }
        let mut b = settings.builder(v)?;
        load_pair(&mut b, &pairs[0], v)?;
        if !others.is_empty() {
            let others = Arc::new(others);
            b.set_servername_callback(move |ssl, _alert| {
                let Some(name) = ssl
                    .servername(NameType::HOST_NAME)
                    .map(str::to_ascii_lowercase)
                else {
                    return Ok(());
                };
                let hit = others
                    .iter()
                    .find(|(names, _)| names.iter().any(|p| name_matches(p, &name)));
                if let Some((_, ctx)) = hit {
                    ssl.set_ssl_context(ctx)
                        .map_err(|_| SniError::ALERT_FATAL)?;
                }
                Ok(())
            });
        }
        Ok(NativeTlsServer {
            ctx: b.build(),
            handshake_timeout,
        })
    }

    /// The `handshake_timeout`.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the server handshake on `stream` within the handshake timeout.
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<NativeTlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ssl = Ssl::new(&self.ctx).map_err(std::io::Error::other)?;
        let mut tls = NativeTlsStream::new(ssl, stream)?;
        match tokio::time::timeout(self.handshake_timeout, tls.accept()).await {
            Ok(Ok(())) => Ok(tls),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// `min_tls_version` / `max_tls_version` for OpenSSL (all of TLS 1.0 to 1.3).
fn versions(
    m: &mut MapReader<'_>,
) -> Result<(Option<SslVersion>, Option<SslVersion>), ConfigError> {
    let min = m.get("min_tls_version");
    let max = m.get("max_tls_version");
    let min_v = min.as_ref().map(TlsVersion::from_val).transpose()?;
    let max_v = max.as_ref().map(TlsVersion::from_val).transpose()?;
    if let (Some(a), Some(b), Some(at)) = (min_v, max_v, &min)
        && a > b
    {
        return Err(at.err("min_tls_version is above max_tls_version"));
    }
    Ok((min_v.map(ssl_version), max_v.map(ssl_version)))
}

#[cfg(not(feature = "vendored-tongsuo"))]
mod tlcp {
    use super::*;

    pub(super) fn build(
        _settings: &Settings,
        at: &Val<'_>,
        _pairs: Vec<PairPaths>,
        _v: &Val<'_>,
        _timeout: Duration,
    ) -> Result<NativeTlsServer, ConfigError> {
        Err(at.err(
            "tlcp_cert_pairs needs a build with the `vendored-tongsuo` feature (TLCP on Tongsuo)",
        ))
    }
}

#[cfg(feature = "vendored-tongsuo")]
mod tlcp;
#[cfg(feature = "vendored-tongsuo")]
mod tlcp_client;
#[cfg(feature = "vendored-tongsuo")]
pub use tlcp_client::TlcpClient;

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "vendored-tongsuo"))]
mod tlcp_tests;
