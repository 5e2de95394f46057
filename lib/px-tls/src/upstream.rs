//! [`UpstreamTlsClient`]: the `tls_client` of the stream servers (`tcp_stream`, `tls_stream`),
//! which may also speak TLCP.
//!
//! A map with `protocol: tlcp` is, in a build with the `vendored-tongsuo` feature, a TLCP client
//! on Tongsuo (`native::TlcpClient`: SM2 CAs, `tlcp_cert_pair`, `ciphers`); in other builds it is
//! the config error of [`TlsClient::parse`] naming the feature. Every other value is a rustls
//! [`TlsClient`].
//!
//! ```yaml
//! tls_client:
//!   protocol: tlcp
//!   ca_certificate: /path/to/ca.cert
//! ```

use px_core::{Host, UpstreamConn};
use px_yaml::{ConfigError, Val};

use crate::TlsClient;

/// TLS (rustls) or TLCP (Tongsuo) towards an upstream.
#[derive(Debug, Clone)]
pub enum UpstreamTlsClient {
    /// rustls, TLS 1.2 / 1.3.
    Tls(TlsClient),
    /// TLCP (GM/T 0024) on Tongsuo's NTLS.
    #[cfg(feature = "vendored-tongsuo")]
    Tlcp(crate::native::TlcpClient),
}

impl UpstreamTlsClient {
    /// Parses a `tls_client` value; `None` when it is `false`.
    pub fn parse(v: &Val<'_>) -> Result<Option<UpstreamTlsClient>, ConfigError> {
        #[cfg(feature = "vendored-tongsuo")]
        {
            use crate::native::TlcpClient;
            if TlcpClient::wanted(v)? {
                return TlcpClient::parse(v).map(|c| Some(UpstreamTlsClient::Tlcp(c)));
            }
            if v.is_map() {
                let mut m = v.map()?;
                if let Some(p) = m.get("tlcp_cert_pair") {
                    return Err(p.err("`tlcp_cert_pair` needs `protocol: tlcp`"));
                }
            }
        }
        Ok(TlsClient::parse(v)?.map(UpstreamTlsClient::Tls))
    }

    /// The protocol family, for logs: `TLS` or `TLCP`.
    pub fn protocol(&self) -> &'static str {
        match self {
            UpstreamTlsClient::Tls(_) => "TLS",
            #[cfg(feature = "vendored-tongsuo")]
            UpstreamTlsClient::Tlcp(_) => "TLCP",
        }
    }

    /// Wraps an escaper's connection in TLS or TLCP, verifying the server as `name`.
    pub async fn connect_upstream(
        &self,
        conn: UpstreamConn,
        name: &Host,
    ) -> std::io::Result<UpstreamConn> {
        match self {
            UpstreamTlsClient::Tls(c) => c.connect_upstream(conn, name).await,
            #[cfg(feature = "vendored-tongsuo")]
            UpstreamTlsClient::Tlcp(c) => c.connect_upstream(conn, name).await,
        }
    }
}

#[cfg(all(test, not(feature = "vendored-tongsuo")))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tlcp_needs_the_tongsuo_build() {
        let dir = std::path::Path::new("/nonexistent/g3proxy.yaml");
        let parse = |yaml: &str| {
            let node = px_yaml::load_str(yaml, dir).unwrap();
            UpstreamTlsClient::parse(&Val::root(&node, "tls_client"))
        };
        let e = parse("protocol: tlcp\nca_certificate: ca.crt\n").unwrap_err();
        assert!(e.message.contains("vendored-tongsuo"), "{e}");
        assert_eq!(e.key_path, "tls_client.protocol");
        assert_eq!(parse("{}\n").unwrap().unwrap().protocol(), "TLS");
        assert!(parse("false\n").unwrap().is_none());
    }
}
