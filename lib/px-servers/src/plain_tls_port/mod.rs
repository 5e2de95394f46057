//! `plain_tls_port`: a TLS port (rustls) that terminates TLS and hands the decrypted stream to the
//! server named by `server` (an `http_proxy` becomes an HTTPS proxy, a `tcp_stream` a TLS
//! stream, ...). The ingress filter applies to the socket address; with `proxy_protocol` the
//! header is read before the TLS handshake and its address is the client address the next
//! server sees.
//!
//! Keys: `listen` (required), `server` (required), `tls_server` (required; px-tls), and the port
//! keys `ingress_network_filter`, `proxy_protocol`, `proxy_protocol_read_timeout`,
//! `listen_in_worker`; see `doc/config/server/plain_tls_port.md`.
//!
//! ```yaml
//! server:
//!   - name: tls
//!     type: plain_tls_port
//!     listen: "[::]:8443"
//!     server: http
//!     tls_server:
//!       cert_pairs: {certificate: /path/to/certificate, private_key: /path/to/private_key}
//!       enable_client_auth: true
//!       ca_certificate: /path/to/clients-ca.crt
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, AsyncStream, ClientInfo, Handle, ModuleLookup, Server};
use px_tls::TlsServer;
use px_yaml::{ConfigError, MapReader};
use tokio::net::TcpStream;

use crate::common::port::{PortIngress, next_server};

/// The `type:` name of this server.
pub const TYPE: &str = "plain_tls_port";

/// A `plain_tls_port` server.
pub struct PlainTlsPort {
    ingress: PortIngress,
    tls: TlsServer,
    next: Arc<Handle<dyn Server>>,
}

/// Builds a `plain_tls_port` from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let ingress = PortIngress::parse(name, &mut map)?;
    let tls = TlsServer::parse(&map.required("tls_server")?)?;
    let next = next_server(&mut map, "server", lookup)?;
    map.unimplemented(&["tls_ticketer"])?;
    map.finish()?;
    Ok(Arc::new(PlainTlsPort { ingress, tls, next }))
}

impl PlainTlsPort {
    /// Serves a client after `handshake` (rustls, or on our own socket px-tls's
    /// kTLS hand-over, which keeps rustls where the kernel cannot take over).
    async fn serve<S, T, F>(
        &self,
        mut stream: S,
        client: ClientInfo,
        handshake: impl FnOnce(S) -> F,
    ) where
        S: AsyncStream + 'static,
        F: Future<Output = std::io::Result<T>>,
        T: AsyncStream + 'static,
    {
        let Some(info) = self.ingress.admit(&mut stream, client).await else {
            return;
        };
        match handshake(stream).await {
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
impl Server for PlainTlsPort {
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
        let tls = &self.tls;
        self.serve(stream, client, |s| px_tls::ktls::accept(tls, s))
            .await;
    }

    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        match stream {
            AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
            AcceptedStream::Other(s) => self.serve(s, client, |s| self.tls.accept(s)).await,
        }
    }
}
