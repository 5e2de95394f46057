//! `native_tls_port`: the `plain_tls_port` of OpenSSL. It terminates TLS with the system OpenSSL
//! (or TLCP with a Tongsuo built by the `vendored-tongsuo` feature) and hands the decrypted stream
//! to the server named by `server`. The ingress filter applies to the socket address; with
//! `proxy_protocol` the header is read before the handshake and its address is the client
//! address the next server sees.
//!
//! Keys: `listen` (required), `server` (required), `tls_server` (required; an "openssl server
//! config", see px-tls `native`), `ingress_network_filter`, `proxy_protocol`,
//! `proxy_protocol_read_timeout`, `listen_in_worker`; see
//! `doc/config/server/native_tls_port.md`. Without the `native-tls` cargo feature the type is a
//! config error saying so.
//!
//! ```yaml
//! server:
//!   - name: tls
//!     type: native_tls_port
//!     listen: "[::]:443"
//!     server: real_http
//!     tls_server:
//!       cert_pairs: {certificate: server.crt, private_key: server.key}
//!       enable_client_auth: true
//!     proxy_protocol: v2
//! ```

use std::sync::Arc;

use px_core::{ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader};

/// The `type:` name of this server.
pub const TYPE: &str = "native_tls_port";

/// Builds a `native_tls_port` from its map (`name` and `type` already taken).
#[cfg(feature = "native-tls")]
pub fn build(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    imp::build(name, map, lookup)
}

/// Builds a `native_tls_port`: not in this build.
#[cfg(not(feature = "native-tls"))]
pub fn build(
    _name: &str,
    map: MapReader<'_>,
    _lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    Err(map.err("native_tls_port needs a build with the `native-tls` cargo feature (OpenSSL)"))
}

#[cfg(feature = "native-tls")]
mod imp {
    use std::sync::Arc;

    use async_trait::async_trait;
    use px_core::value::ListenConfig;
    use px_core::{AcceptedStream, AsyncStream, ClientInfo, Handle, ModuleLookup, Server};
    use px_tls::native::NativeTlsServer;
    use px_yaml::{ConfigError, MapReader};
    use tokio::net::TcpStream;

    use super::TYPE;
    use crate::common::port::{PortIngress, next_server};

    /// A `native_tls_port` server.
    pub(super) struct NativeTlsPort {
        ingress: PortIngress,
        tls: NativeTlsServer,
        next: Arc<Handle<dyn Server>>,
    }

    pub(super) fn build(
        name: &str,
        mut map: MapReader<'_>,
        lookup: &dyn ModuleLookup,
    ) -> Result<Arc<dyn Server>, ConfigError> {
        let ingress = PortIngress::parse(name, &mut map)?;
        let tls = NativeTlsServer::parse(&map.required("tls_server")?)?;
        let next = next_server(&mut map, "server", lookup)?;
        map.unimplemented(&["tls_ticketer"])?;
        map.finish()?;
        Ok(Arc::new(NativeTlsPort { ingress, tls, next }))
    }

    impl NativeTlsPort {
        async fn serve<S: AsyncStream + 'static>(&self, mut stream: S, client: ClientInfo) {
            let Some(info) = self.ingress.admit(&mut stream, client).await else {
                return;
            };
            match self.tls.accept(stream).await {
                Ok(tls) => {
                    let next = self.next.get();
                    next.serve_accepted(AcceptedStream::Other(Box::new(tls)), info)
                        .await;
                }
                Err(e) => log::info!(
                    "{TYPE} {}: TLS handshake with {} failed: {e}",
                    self.ingress.name,
                    info.peer_addr
                ),
            }
        }
    }

    #[async_trait]
    impl Server for NativeTlsPort {
        fn name(&self) -> &str {
            &self.ingress.name
        }

        fn kind(&self) -> &'static str {
            TYPE
        }

        fn listen(&self) -> Option<&ListenConfig> {
            Some(&self.ingress.listen)
        }

        async fn serve_tcp(&self, stream: TcpStream, client: ClientInfo) {
            self.serve(stream, client).await;
        }

        async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
            match stream {
                AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
                AcceptedStream::Other(s) => self.serve(s, client).await,
            }
        }
    }
}
