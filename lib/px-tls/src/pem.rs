//! Reading PEM files named in the config: certificate chains, private keys and CA sets.
//!
//! Paths are relative to the file that names them. Every failure is a [`ConfigError`] at the
//! key that named the file, saying which file and why.

use std::path::PathBuf;
use std::sync::Arc;

use px_yaml::section::resolve_path;
use px_yaml::{ConfigError, Val};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The file a `certificate`/`private_key`/`ca_certificate` value names.
fn path_of(v: &Val<'_>) -> Result<PathBuf, ConfigError> {
    let s = v.as_text()?;
    if s.trim().is_empty() {
        return Err(v.err("empty file path"));
    }
    Ok(resolve_path(v.file(), s.trim()))
}

/// Certificates from one file or a list of files (g3proxy's "tls certificates").
pub fn certificates(v: &Val<'_>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let mut out = Vec::new();
    for item in v.list() {
        let path = path_of(&item)?;
        let iter = CertificateDer::pem_file_iter(&path)
            .map_err(|e| item.err(format!("cannot read {}: {e}", path.display())))?;
        let before = out.len();
        for cert in iter {
            out.push(cert.map_err(|e| item.err(format!("bad PEM in {}: {e}", path.display())))?);
        }
        if out.len() == before {
            return Err(item.err(format!("no certificate found in {}", path.display())));
        }
    }
    if out.is_empty() {
        return Err(v.err("no certificate file given"));
    }
    Ok(out)
}

/// The private key of a file: PKCS#8, PKCS#1 or SEC1 PEM; the last one when there are several.
pub fn private_key(v: &Val<'_>) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let path = path_of(v)?;
    let iter = PrivateKeyDer::pem_file_iter(&path)
        .map_err(|e| v.err(format!("cannot read {}: {e}", path.display())))?;
    let mut last = None;
    for key in iter {
        last = Some(key.map_err(|e| v.err(format!("bad PEM in {}: {e}", path.display())))?);
    }
    last.ok_or_else(|| v.err(format!("no private key found in {}", path.display())))
}

/// A root store holding the certificates of `v` (one file or a list).
pub fn root_store(v: &Val<'_>) -> Result<Arc<RootCertStore>, ConfigError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(v)? {
        store
            .add(cert)
            .map_err(|e| v.err(format!("unusable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// The system's CA certificates (`rustls-native-certs`); unreadable ones are skipped and logged.
pub fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::warn!("system CA certificates: {e}");
    }
    let mut store = RootCertStore::empty();
    let (_added, ignored) = store.add_parsable_certificates(found.certs);
    if ignored > 0 {
        log::debug!("system CA certificates: {ignored} could not be used");
    }
    store
}

/// The Mozilla roots compiled into the binary (`webpki-roots`).
pub fn builtin_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}
