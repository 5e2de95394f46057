//! `tls_client`: a rustls client config (g3proxy's "rustls client config", with the version keys
//! of its "openssl tls client config").
//!
//! Keys:
//!
//! - `ca_certificate` (alias `server_auth_certificate`): the CAs that verify the server; when not
//!   set, the system roots (`use_builtin_ca_certificate: true`: the Mozilla roots built in;
//!   `no_default_ca_certificate: true`: none, so `ca_certificate` is then required).
//! - `certificate` + `private_key`, or `cert_pair: {certificate, private_key}`: the client
//!   certificate for mTLS.
//! - `no_session_cache` (default false), `disable_sni` (default false), `max_fragment_size`,
//!   `handshake_timeout` (default 10s).
//! - `protocol` (`tls1.2` | `tls1.3`), or `min_tls_version` / `max_tls_version`.
//! - `alpn_protocols` (extension): ALPN protocols to offer.
//!
//! The value may also be a bool: `true` is the defaults, `false` no TLS; `{}` is the defaults.
//!
//! ```yaml
//! tls_client:
//!   certificate: client.crt
//!   private_key: client.key
//!   ca_certificate: upstream-ca.crt
//! ```

use std::sync::Arc;
use std::time::Duration;

use px_core::{Host, UpstreamConn, UpstreamStream};
use px_yaml::{ConfigError, Val, Value, values};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server::{DEFAULT_HANDSHAKE_TIMEOUT, alpn_list};
use crate::{pem, provider, version};

/// g3proxy's client keys that need OpenSSL or are not implemented here.
const UNIMPLEMENTED: &[&str] = &[
    "ciphers",
    "tlcp_cert_pair",
    "insecure",
    "supported_groups",
    "use_ocsp_stapling",
    "enable_sct",
    "enable_grease",
    "permute_extensions",
    "use_builtin_session_cache",
];

/// A parsed `tls_client`.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("alpn", &self.config.alpn_protocols)
            .finish()
    }
}

fn client_pair(
    cert: &Val<'_>,
    key: &Val<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    Ok((pem::certificates(cert)?, pem::private_key(key)?))
}

impl TlsClient {
    /// Parses a `tls_client` value; `None` when it is `false`.
    pub fn parse(v: &Val<'_>) -> Result<Option<TlsClient>, ConfigError> {
        match &v.node().value {
            Value::Bool(false) => return Ok(None),
            Value::Bool(true) | Value::Null => return Self::parse_map(None, v).map(Some),
            Value::Str(_) => {
                return if v.as_bool()? {
                    Self::parse_map(None, v).map(Some)
                } else {
                    Ok(None)
                };
            }
            _ => {}
        }
        let m = v.map()?;
        Self::parse_map(Some(m), v).map(Some)
    }

    fn parse_map(m: Option<px_yaml::MapReader<'_>>, v: &Val<'_>) -> Result<TlsClient, ConfigError> {
        let provider = provider();
        let mut roots_val = None;
        let mut no_default = false;
        let mut builtin = false;
        let mut pair = None;
        let mut no_cache = false;
        let mut disable_sni = false;
        let mut max_fragment = None;
        let mut handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT;
        let mut alpn = Vec::new();
        let mut versions = vec![&rustls::version::TLS12, &rustls::version::TLS13];
        let mut lru_sites = 128usize;
        if let Some(mut m) = m {
            m.unimplemented(UNIMPLEMENTED)?;
            roots_val = m.get_any(&["ca_certificate", "server_auth_certificate"]);
            if let Some(b) = m.get("no_default_ca_certificate") {
                no_default = b.as_bool()?;
            }
            if let Some(b) = m.get("use_builtin_ca_certificate") {
                builtin = b.as_bool()?;
            }
            let cert = m.get("certificate");
            let key = m.get("private_key");
            if let Some(p) = m.get("cert_pair") {
                if let Some(c) = cert.as_ref().or(key.as_ref()) {
                    return Err(c.err("`cert_pair` conflicts with `certificate`/`private_key`"));
                }
                let mut pm = p.map()?;
                let c = pm.required("certificate")?;
                let k = pm.required("private_key")?;
                pm.finish()?;
                pair = Some(client_pair(&c, &k)?);
            } else {
                match (cert, key) {
                    (Some(c), Some(k)) => pair = Some(client_pair(&c, &k)?),
                    (Some(c), None) => return Err(c.err("`certificate` needs `private_key`")),
                    (None, Some(k)) => return Err(k.err("`private_key` needs `certificate`")),
                    (None, None) => {}
                }
            }
            if let Some(b) = m.get("no_session_cache") {
                no_cache = b.as_bool()?;
            }
            if let Some(b) = m.get("disable_sni") {
                disable_sni = b.as_bool()?;
            }
            if let Some(n) = m.get("max_fragment_size") {
                let size = usize::try_from(values::size(&n)?).map_err(|_| n.err("too large"))?;
                if !(32..=16389).contains(&size) {
                    return Err(n.err("max_fragment_size must be in 32..=16389"));
                }
                max_fragment = Some(size);
            }
            if let Some(d) = m.get("handshake_timeout") {
                handshake_timeout = values::duration(&d)?;
            }
            if let Some(a) = m.get("alpn_protocols") {
                alpn = alpn_list(&a)?;
            }
            if let Some(n) = m.get("session_cache_lru_max_sites") {
                lru_sites = n.as_int()?;
            }
            // rustls keeps one LRU of sessions; the per-site capacity has no separate knob
            m.get("session_cache_each_capacity")
                .map(|n| n.as_int::<usize>())
                .transpose()?;
            let protocol = m.get("protocol");
            let has_range = m.has("min_tls_version") || m.has("max_tls_version");
            versions = version::versions_from_map(&mut m)?;
            if let Some(p) = protocol {
                if has_range {
                    return Err(p.err("`protocol` conflicts with min/max_tls_version"));
                }
                versions = version::protocol_versions(&p)?;
            }
            m.finish()?;
        }
        let roots = match &roots_val {
            Some(r) => pem::root_store(r)?,
            None if no_default => {
                return Err(v.err("no_default_ca_certificate needs `ca_certificate`"));
            }
            None if builtin => Arc::new(pem::builtin_roots()),
            None => Arc::new(pem::system_roots()),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| v.err(format!("TLS versions: {e}")))?
            .with_root_certificates(roots);
        let mut config = match pair {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| v.err(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = !disable_sni;
        // kTLS takes the record keys out of rustls after the handshake
        config.enable_secret_extraction = cfg!(feature = "ktls");
        config.max_fragment_size = max_fragment;
        config.alpn_protocols = alpn;
        config.resumption = if no_cache {
            Resumption::disabled()
        } else {
            Resumption::in_memory_sessions(lru_sites.max(1) * 4)
        };
        Ok(TlsClient {
            config: Arc::new(config),
            handshake_timeout,
        })
    }

    /// The defaults (`tls_client: {}`): system roots, TLS 1.2 and 1.3, session cache.
    pub fn defaults() -> Result<TlsClient, rustls::Error> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(pem::system_roots())
            .with_no_client_auth();
        config.enable_secret_extraction = cfg!(feature = "ktls");
        Ok(TlsClient {
            config: Arc::new(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// The rustls config.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The `handshake_timeout`.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the client handshake on `stream`, verifying the server as `name`.
    pub async fn connect<S>(
        &self,
        name: ServerName<'static>,
        stream: S,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        match tokio::time::timeout(self.handshake_timeout, connector.connect(name, stream)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// Wraps an escaper's connection in TLS, verifying the server as `name`.
    pub async fn connect_upstream(
        &self,
        mut conn: UpstreamConn,
        name: &Host,
    ) -> std::io::Result<UpstreamConn> {
        let sn = server_name(name)?;
        let stream = std::mem::replace(
            &mut conn.stream,
            UpstreamStream::Other(Box::new(tokio::io::join(
                tokio::io::empty(),
                tokio::io::sink(),
            ))),
        );
        conn.stream = match stream {
            UpstreamStream::Tcp(t) => {
                UpstreamStream::Other(Box::new(crate::ktls::connect(self, sn, t).await?))
            }
            UpstreamStream::Other(s) => UpstreamStream::Other(Box::new(self.connect(sn, s).await?)),
        };
        Ok(conn)
    }
}

/// The name a server certificate is verified against: a domain or an IP address.
pub fn server_name(host: &Host) -> std::io::Result<ServerName<'static>> {
    match host {
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        Host::Domain(d) => ServerName::try_from(d.clone()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid TLS server name {d}: {e}"),
            )
        }),
    }
}
