//! rustls configs built from g3proxy's `tls_server` and `tls_client` YAML values, and the
//! handshakes that use them. ring is the only crypto provider.
//!
//! - [`server::TlsServer`]: `cert_pairs` (certificate chosen by SNI), mTLS with
//!   `enable_client_auth` + `ca_certificate`, ALPN, protocol versions, session resumption knobs.
//! - [`client::TlsClient`]: `ca_certificate` or the system roots, a client certificate for mTLS,
//!   `no_session_cache`, `disable_sni`, protocol versions; [`client::server_name`] for the name
//!   a server certificate is checked against (`upstream_tls_name` or the upstream host).
//! - [`upstream::UpstreamTlsClient`]: the stream servers' `tls_client`: a `TlsClient`, or TLCP
//!   (`protocol: tlcp`) on Tongsuo with the `vendored-tongsuo` feature.
//! - [`pem`]: certificate, key and CA files, relative to the config file naming them.
//! - [`version`]: TLS version values.
//! - `native` (feature `openssl`): the OpenSSL `tls_server` of `native_tls_port`, and an async
//!   OpenSSL stream in safe code; TLCP (server and client) with the `vendored-tongsuo` feature.
//!
//! ```yaml
//! tls_server:
//!   cert_pairs: {certificate: server.crt, private_key: server.key}
//!   enable_client_auth: true
//!   ca_certificate: clients-ca.crt
//! tls_client:
//!   ca_certificate: upstream-ca.crt
//!   certificate: client.crt
//!   private_key: client.key
//! ```

pub mod client;
pub mod ktls;
#[cfg(feature = "openssl")]
pub mod native;
pub mod pem;
pub mod server;
pub mod upstream;
pub mod version;

use std::sync::Arc;

pub use client::{TlsClient, server_name};
pub use server::TlsServer;
pub use upstream::UpstreamTlsClient;

/// The crypto provider of every config: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests;
