//! The TLCP (GM/T 0024) client of a `tls_client` with `protocol: tlcp`, on Tongsuo's NTLS
//! (`vendored-tongsuo` builds only): what the stream servers use to speak TLCP to an upstream.
//!
//! Keys (the TLS client's, where they mean something for TLCP):
//!
//! - `protocol: tlcp` (also `tlcp1.1`, `tlcp11`, `tlcp1_1`): selects this client.
//! - `ca_certificate` (alias `server_auth_certificate`): the CAs that verify the server's signing
//!   certificate; when not set, the system CA certificates (`no_default_ca_certificate: true`:
//!   none, so `ca_certificate` is then required).
//! - `tlcp_cert_pair` (`{sign_certificate, sign_private_key, enc_certificate, enc_private_key}`):
//!   the client's SM2 pairs, for servers that require client authentication; it also enables the
//!   ECDHE-SM2 suites.
//! - `ciphers`: an OpenSSL cipher list (string, or a list joined with `:`); the default prefers
//!   ECC-SM2 (and ECDHE-SM2 with a client pair) with SM4-GCM, then SM4-CBC.
//! - `disable_sni`, `handshake_timeout` (10s), `alpn_protocols`.
//! - `no_session_cache`, `session_cache_lru_max_sites`, `session_cache_each_capacity`: accepted;
//!   this client makes a full handshake every time.
//!
//! TLS-only keys (`certificate`, `private_key`, `cert_pair`, `min_tls_version`,
//! `max_tls_version`, `max_fragment_size`, `use_builtin_ca_certificate`) are errors here.
//!
//! ```yaml
//! tls_client:
//!   protocol: tlcp
//!   ca_certificate: sm2-ca.crt
//! upstream_tls_name: target.host.domain
//! ```

use std::time::Duration;

use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVerifyMode};
use openssl::x509::X509;
use px_core::{Host, UpstreamConn, UpstreamStream};
use px_yaml::{ConfigError, Val, Value, values};
use tokio::io::{AsyncRead, AsyncWrite};

use super::NativeTlsStream;
use super::tlcp::{load_tlcp_pair, tlcp_pair};
use crate::server::{DEFAULT_HANDSHAKE_TIMEOUT, alpn_list};

/// The cipher list without a client pair: SM2 key exchange with the server's encryption
/// certificate, then the RSA variants of TLCP.
const ECC_CIPHERS: &str = "ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3:RSA-SM4-GCM-SM3:RSA-SM4-CBC-SM3";

/// With a client pair, ECDHE-SM2 (which needs the client's encryption certificate) comes first.
const ECDHE_CIPHERS: &str = "ECDHE-SM2-SM4-GCM-SM3:ECDHE-SM2-SM4-CBC-SM3";

/// g3proxy client keys not implemented (for TLCP or at all).
const UNIMPLEMENTED: &[&str] = &[
    "insecure",
    "supported_groups",
    "use_ocsp_stapling",
    "enable_sct",
    "enable_grease",
    "permute_extensions",
    "use_builtin_session_cache",
];

/// TLS client keys that have no meaning with `protocol: tlcp`, and what to use instead.
const NOT_FOR_TLCP: &[(&str, &str)] = &[
    (
        "certificate",
        "use `tlcp_cert_pair` for a TLCP client certificate",
    ),
    (
        "private_key",
        "use `tlcp_cert_pair` for a TLCP client certificate",
    ),
    (
        "cert_pair",
        "use `tlcp_cert_pair` for a TLCP client certificate",
    ),
    ("min_tls_version", "`protocol: tlcp` fixes the protocol"),
    ("max_tls_version", "`protocol: tlcp` fixes the protocol"),
    ("max_fragment_size", "not supported with `protocol: tlcp`"),
    (
        "use_builtin_ca_certificate",
        "the built-in roots hold no SM2 CA: set `ca_certificate`",
    ),
];

/// Whether a `protocol` text names TLCP.
fn is_tlcp_name(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "tlcp" | "tlcp1.1" | "tlcp11" | "tlcp1_1"
    )
}

/// A parsed TLCP `tls_client`.
#[derive(Clone)]
pub struct TlcpClient {
    ctx: SslContext,
    disable_sni: bool,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlcpClient")
            .field("disable_sni", &self.disable_sni)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// CA certificates from one file or a list of files.
fn ca_certs(v: &Val<'_>) -> Result<Vec<X509>, ConfigError> {
    let mut out = Vec::new();
    for item in v.list() {
        let path = super::path_of(&item)?;
        let pem = std::fs::read(&path)
            .map_err(|e| item.err(format!("cannot read {}: {e}", path.display())))?;
        let certs = X509::stack_from_pem(&pem)
            .map_err(|e| item.err(format!("bad PEM in {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(item.err(format!("no certificate found in {}", path.display())));
        }
        out.extend(certs);
    }
    if out.is_empty() {
        return Err(v.err("no certificate file given"));
    }
    Ok(out)
}

/// The system's CA certificates, as X509 (Tongsuo's own default paths point into its build).
fn system_cas() -> Vec<X509> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::warn!("system CA certificates: {e}");
    }
    found
        .certs
        .iter()
        .filter_map(|der| X509::from_der(der).ok())
        .collect()
}

impl TlcpClient {
    /// Whether a `tls_client` value asks for TLCP (`protocol: tlcp`).
    pub fn wanted(v: &Val<'_>) -> Result<bool, ConfigError> {
        if !v.is_map() {
            return Ok(false);
        }
        let mut m = v.map()?;
        match m.get("protocol") {
            Some(p) if matches!(p.node().value, Value::Str(_)) => Ok(is_tlcp_name(&p.as_text()?)),
            _ => Ok(false),
        }
    }

    /// Parses a `tls_client` map with `protocol: tlcp`.
    pub fn parse(v: &Val<'_>) -> Result<TlcpClient, ConfigError> {
        let mut m = v.map()?;
        let protocol = m.required("protocol")?;
        if !is_tlcp_name(&protocol.as_text()?) {
            return Err(protocol.err("not a TLCP protocol"));
        }
        m.unimplemented(UNIMPLEMENTED)?;
        for (key, why) in NOT_FOR_TLCP {
            if let Some(k) = m.get(key) {
                return Err(k.err(format!("`{key}` does not apply to TLCP: {why}")));
            }
        }
        let e = |what: &str, x: openssl::error::ErrorStack| v.err(format!("{what}: {x}"));
        let mut b =
            SslContextBuilder::new(SslMethod::ntls_client()).map_err(|x| e("Tongsuo", x))?;
        b.enable_ntls();
        // no 1/n-1 record splitting on TLCP's CBC suites (as on the server side)
        b.set_options(SslOptions::NO_COMPRESSION | SslOptions::DONT_INSERT_EMPTY_FRAGMENTS);
        b.set_verify(SslVerifyMode::PEER);
        let no_default = match m.get("no_default_ca_certificate") {
            Some(b) => b.as_bool()?,
            None => false,
        };
        let cas = match m.get_any(&["ca_certificate", "server_auth_certificate"]) {
            Some(c) => ca_certs(&c)?,
            None if no_default => {
                return Err(v.err("no_default_ca_certificate needs `ca_certificate`"));
            }
            None => system_cas(),
        };
        for c in cas {
            b.cert_store_mut()
                .add_cert(c)
                .map_err(|x| e("CA certificate", x))?;
        }
        let with_pair = match m.get("tlcp_cert_pair") {
            Some(p) => {
                load_tlcp_pair(&mut b, &tlcp_pair(&p)?, &p)?;
                true
            }
            None => false,
        };
        match m.get("ciphers") {
            Some(c) => {
                let list = c
                    .list()
                    .iter()
                    .map(|i| i.as_text())
                    .collect::<Result<Vec<_>, _>>()?
                    .join(":");
                b.set_cipher_list(&list)
                    .map_err(|x| c.err(format!("no usable cipher in {list:?}: {x}")))?;
            }
            None if with_pair => b
                .set_cipher_list(&format!("{ECDHE_CIPHERS}:{ECC_CIPHERS}"))
                .map_err(|x| e("ciphers", x))?,
            None => b
                .set_cipher_list(ECC_CIPHERS)
                .map_err(|x| e("ciphers", x))?,
        }
        if let Some(a) = m.get("alpn_protocols") {
            let mut wire = Vec::new();
            for p in alpn_list(&a)? {
                // each name is 1 to 255 bytes (checked by alpn_list)
                wire.push(u8::try_from(p.len()).map_err(|_| a.err("ALPN name too long"))?);
                wire.extend_from_slice(&p);
            }
            b.set_alpn_protos(&wire)
                .map_err(|x| a.err(format!("alpn_protocols: {x}")))?;
        }
        let disable_sni = match m.get("disable_sni") {
            Some(b) => b.as_bool()?,
            None => false,
        };
        let handshake_timeout = match m.get("handshake_timeout") {
            Some(d) => values::duration(&d)?,
            None => DEFAULT_HANDSHAKE_TIMEOUT,
        };
        // sessions are not resumed (see the module doc); the keys are accepted and checked
        if let Some(b) = m.get("no_session_cache") {
            b.as_bool()?;
        }
        for key in ["session_cache_lru_max_sites", "session_cache_each_capacity"] {
            if let Some(n) = m.get(key) {
                n.as_int::<usize>()?;
            }
        }
        m.finish()?;
        Ok(TlcpClient {
            ctx: b.build(),
            disable_sni,
            handshake_timeout,
        })
    }

    /// The `handshake_timeout`.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the TLCP client handshake on `stream`, verifying the server's signing certificate
    /// for `name` (a DNS name, or an IP address in its subject alternative names).
    pub async fn connect<S>(&self, name: &Host, stream: S) -> std::io::Result<NativeTlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut ssl = Ssl::new(&self.ctx).map_err(std::io::Error::other)?;
        match name {
            Host::Domain(d) => {
                ssl.param_mut().set_host(d).map_err(std::io::Error::other)?;
                if !self.disable_sni {
                    ssl.set_hostname(d).map_err(std::io::Error::other)?;
                }
            }
            Host::Ip(ip) => ssl.param_mut().set_ip(*ip).map_err(std::io::Error::other)?,
        }
        let mut tls = NativeTlsStream::new(ssl, stream)?;
        match tokio::time::timeout(self.handshake_timeout, tls.connect()).await {
            Ok(Ok(())) => Ok(tls),
            Ok(Err(e)) => {
                let verify = tls.ssl().verify_result();
                if verify == openssl::x509::X509VerifyResult::OK {
                    Err(e)
                } else {
                    Err(std::io::Error::new(
                        e.kind(),
                        format!("{e} (server certificate: {verify})"),
                    ))
                }
            }
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLCP handshake timed out",
            )),
        }
    }

    /// Wraps an escaper's connection in TLCP, verifying the server as `name`.
    pub async fn connect_upstream(
        &self,
        mut conn: UpstreamConn,
        name: &Host,
    ) -> std::io::Result<UpstreamConn> {
        let stream = std::mem::replace(
            &mut conn.stream,
            UpstreamStream::Other(Box::new(tokio::io::join(
                tokio::io::empty(),
                tokio::io::sink(),
            ))),
        );
        conn.stream = match stream {
            UpstreamStream::Tcp(t) => UpstreamStream::Other(Box::new(self.connect(name, t).await?)),
            UpstreamStream::Other(s) => {
                UpstreamStream::Other(Box::new(self.connect(name, s).await?))
            }
        };
        Ok(conn)
    }
}
