//! `tls_client` of a hickory `encryption` map: the rustls client settings for
//! DNS over TLS, HTTPS and QUIC (ring crypto provider).
//!
//! Keys (g3proxy's *rustls client config*):
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `ca_certificate` (alias `server_auth_certificate`) | file or list of files (PEM; inline PEM text also accepted) | not set | extra CAs to trust; relative paths are from the config file's folder |
//! | `no_default_ca_certificate` | bool | false | do not trust the default CAs |
//! | `use_builtin_ca_certificate` | bool | false | default CAs are the built-in Mozilla roots (webpki-roots) instead of the system store |
//! | `no_session_cache` | bool | false | no TLS session resumption |
//! | `disable_sni` | bool | false | send no SNI (DoT never sends it) |
//! | `max_fragment_size` | usize | rustls default | largest TLS record to send |
//!
//! The system store is read from the usual OpenSSL locations
//! (`/etc/ssl/certs`); when it is empty the built-in roots are used.
//! `cert_pair`, `certificate`, `private_key` and `handshake_timeout` are known
//! to g3proxy but not implemented yet.
//!
//! ```yaml
//! encryption:
//!   protocol: dns-over-tls
//!   tls_name: dns.example.net
//!   tls_client:
//!     ca_certificate: ca.pem
//! ```

use std::path::Path;
use std::sync::Arc;

use px_yaml::{ConfigError, Val};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Parsed `tls_client` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsClientConfig {
    /// Extra trusted CAs.
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    /// Skip the default CAs.
    pub(crate) no_default_ca: bool,
    /// Default CAs are webpki-roots.
    pub(crate) use_builtin_ca: bool,
    /// Disable session resumption.
    pub(crate) no_session_cache: bool,
    /// Do not send SNI.
    pub(crate) disable_sni: bool,
    /// Largest TLS record to send.
    pub(crate) max_fragment_size: Option<usize>,
}

impl TlsClientConfig {
    /// Reads a `tls_client` map.
    pub(crate) fn read(v: &Val<'_>) -> Result<Self, ConfigError> {
        let mut map = v.map()?;
        map.unimplemented(&[
            "cert_pair",
            "certificate",
            "private_key",
            "handshake_timeout",
        ])?;
        let mut c = TlsClientConfig::default();
        if let Some(v) = map.get_any(&["ca_certificate", "server_auth_certificate"]) {
            for item in v.list() {
                c.ca_certs.extend(certificates(&item)?);
            }
        }
        if let Some(v) = map.get("no_default_ca_certificate") {
            c.no_default_ca = v.as_bool()?;
        }
        if let Some(v) = map.get("use_builtin_ca_certificate") {
            c.use_builtin_ca = v.as_bool()?;
        }
        if let Some(v) = map.get("no_session_cache") {
            c.no_session_cache = v.as_bool()?;
        }
        if let Some(v) = map.get("disable_sni") {
            c.disable_sni = v.as_bool()?;
        }
        if let Some(v) = map.get("max_fragment_size") {
            let n: usize = v.as_int()?;
            // rustls accepts 32 ..= 16389 (record header included)
            if !(32..=16389).contains(&n) {
                return Err(v.err("max_fragment_size must be between 32 and 16389"));
            }
            c.max_fragment_size = Some(n);
        }
        map.finish()?;
        Ok(c)
    }

    /// Builds the rustls client config.
    pub(crate) fn build(&self) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        if !self.no_default_ca {
            if !self.use_builtin_ca {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
            if roots.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        for cert in &self.ca_certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("no CA certificate to verify the DNS server with".to_string());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if self.no_session_cache {
            config.resumption = rustls::client::Resumption::disabled();
        }
        if self.disable_sni {
            config.enable_sni = false;
        }
        config.max_fragment_size = self.max_fragment_size;
        Ok(config)
    }
}

/// PEM certificates from a file (relative to the config file) or inline text.
fn certificates(v: &Val<'_>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let text = v.as_str()?;
    let certs: Result<Vec<_>, _> = if text.contains("-----BEGIN") {
        CertificateDer::pem_slice_iter(text.as_bytes()).collect()
    } else {
        let path = Path::new(text);
        let path = match v.file().parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        let bytes = std::fs::read(&path)
            .map_err(|e| v.err(format!("cannot read {}: {e}", path.display())))?;
        CertificateDer::pem_slice_iter(&bytes).collect()
    };
    let certs = certs.map_err(|e| v.err(format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(v.err("no PEM certificate found"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use px_yaml::load_str;

    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["ca.test".to_string()]).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn read(yaml: &str, file: &Path) -> Result<TlsClientConfig, ConfigError> {
        let node = load_str(yaml, file).unwrap();
        TlsClientConfig::read(&Val::root(&node, "tls_client"))
    }

    #[test]
    fn every_key_and_relative_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_pem()).unwrap();
        let file = dir.path().join("main.yaml");
        let c = read(
            "ca_certificate: ca.pem\nno_default_ca_certificate: true\nuse_builtin_ca_certificate: true\n\
             no_session_cache: true\ndisable_sni: true\nmax_fragment_size: 1024\n",
            &file,
        )
        .unwrap();
        assert_eq!(c.ca_certs.len(), 1);
        assert!(c.no_default_ca && c.use_builtin_ca && c.no_session_cache && c.disable_sni);
        assert_eq!(c.max_fragment_size, Some(1024));
        let built = c.build().unwrap();
        assert!(!built.enable_sni);
    }

    #[test]
    fn inline_pem_and_errors() {
        let yaml = format!(
            "server_auth_certificate: |\n  {}\n",
            ca_pem().replace('\n', "\n  ")
        );
        let c = read(&yaml, Path::new("/nonexistent/r.yaml")).unwrap();
        assert_eq!(c.ca_certs.len(), 1);
        let e = read(
            "ca_certificate: missing.pem\n",
            Path::new("/nonexistent/r.yaml"),
        )
        .unwrap_err();
        assert_eq!(e.key_path, "tls_client.ca_certificate");
        assert!(e.message.contains("/nonexistent/missing.pem"), "{e}");
        let e = read("\ncertificate: a.pem\n", Path::new("r.yaml")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not implemented"), "{e}");
        let e = read("max_fragment_size: 1\n", Path::new("r.yaml")).unwrap_err();
        assert_eq!(e.key_path, "tls_client.max_fragment_size");
        let e = read("bogus: 1\n", Path::new("r.yaml")).unwrap_err();
        assert_eq!(e.key_path, "tls_client.bogus");
        let none = TlsClientConfig {
            no_default_ca: true,
            ..TlsClientConfig::default()
        };
        assert!(none.build().is_err());
    }
}
