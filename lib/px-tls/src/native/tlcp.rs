//! TLCP (GM/T 0024) on Tongsuo: `tlcp_cert_pairs` gives the SM2 signing and encryption
//! certificate pairs; NTLS is enabled on the context, so one port answers TLCP clients and, when
//! `cert_pairs` is also set, TLS clients.
//!
//! Only the first `tlcp_cert_pairs` entry is used (no SNI selection among TLCP pairs).

use super::*;

/// The four files of one TLCP pair (a server's, or the client's `tlcp_cert_pair`).
pub(super) struct TlcpPaths {
    pub(super) sign_cert: PathBuf,
    pub(super) sign_key: PathBuf,
    pub(super) enc_cert: PathBuf,
    pub(super) enc_key: PathBuf,
}

/// `{sign_certificate, sign_private_key, enc_certificate, enc_private_key}`.
pub(super) fn tlcp_pair(v: &Val<'_>) -> Result<TlcpPaths, ConfigError> {
    let mut m = v.map()?;
    let p = TlcpPaths {
        sign_cert: path_of(&m.required("sign_certificate")?)?,
        sign_key: path_of(&m.required("sign_private_key")?)?,
        enc_cert: path_of(&m.required("enc_certificate")?)?,
        enc_key: path_of(&m.required("enc_private_key")?)?,
    };
    m.finish()?;
    Ok(p)
}

/// Loads the signing and encryption pairs into a context (server or client); errors at `at`.
pub(super) fn load_tlcp_pair(
    b: &mut SslContextBuilder,
    p: &TlcpPaths,
    at: &Val<'_>,
) -> Result<(), ConfigError> {
    let err = |what: &str, file: &std::path::Path, x: openssl::error::ErrorStack| {
        at.err(format!("{what} ({}): {x}", file.display()))
    };
    b.set_sign_certificate_file(&p.sign_cert, SslFiletype::PEM)
        .map_err(|x| err("sign_certificate", &p.sign_cert, x))?;
    b.set_sign_private_key_file(&p.sign_key, SslFiletype::PEM)
        .map_err(|x| err("sign_private_key", &p.sign_key, x))?;
    b.set_enc_certificate_file(&p.enc_cert, SslFiletype::PEM)
        .map_err(|x| err("enc_certificate", &p.enc_cert, x))?;
    b.set_enc_private_key_file(&p.enc_key, SslFiletype::PEM)
        .map_err(|x| err("enc_private_key", &p.enc_key, x))?;
    Ok(())
}

pub(super) fn build(
    settings: &Settings,
    at: &Val<'_>,
    pairs: Vec<PairPaths>,
    v: &Val<'_>,
    handshake_timeout: Duration,
) -> Result<NativeTlsServer, ConfigError> {
    let list = at.list();
    let Some(first) = list.first() else {
        return Err(at.err("tlcp_cert_pairs is empty"));
    };
    let p = tlcp_pair(first)?;
    let mut b = settings.builder(v)?;
    b.enable_ntls();
    load_tlcp_pair(&mut b, &p, first)?;
    if let Some(tls) = pairs.first() {
        load_pair(&mut b, tls, v)?;
    }
    Ok(NativeTlsServer {
        ctx: b.build(),
        handshake_timeout,
    })
}
