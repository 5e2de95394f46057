//! `tls_stream`: a TLS port in front of one upstream address or a weighted list of them (TLS
//! encapsulation): the client speaks TLS to this server, the bytes go on to the upstream in
//! plain TCP (or in TLS again with `tls_client`, or in TLCP with `tls_client: {protocol: tlcp}`
//! in `vendored-tongsuo` builds: the user guide's "TLCP to 4-layer TLS").
//!
//! Keys: `tls_server` (required; px-tls: `cert_pairs` chosen by SNI, `enable_client_auth` +
//! `ca_certificate` for mTLS, `alpn_protocols`, `min_tls_version`/`max_tls_version`), and every
//! key of `tcp_stream` (`proxy_pass`, `upstream_pick_policy`, `tls_client`, `upstream_tls_name`,
//! the common and relay keys). `doc/config/server/tls_stream.md` lists them all.
//!
//! ```yaml
//! server:
//!   - name: tls
//!     type: tls_stream
//!     escaper: default
//!     listen: "[::1]:10443"
//!     tls_server:
//!       cert_pairs: {certificate: /path/to/cert, private_key: /path/to/key}
//!       enable_client_auth: true
//!     proxy_pass: ["127.0.0.1:5201", "127.0.0.1:5202"]
//!     upstream_pick_policy: rr
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, ClientInfo, ModuleLookup, Server};
use px_tls::TlsServer;
use px_yaml::{ConfigError, MapReader};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tcp_stream::{StreamConfig, serve_stream};

/// The `type:` name of this server.
pub const TYPE: &str = "tls_stream";

/// A `tls_stream` server.
pub struct TlsStreamServer {
    cfg: StreamConfig,
    tls: TlsServer,
}

/// Builds a `tls_stream` server from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let tls = TlsServer::parse(&map.required("tls_server")?)?;
    map.unimplemented(&["tls_ticketer"])?;
    let cfg = StreamConfig::parse(name, &mut map, lookup)?;
    map.finish()?;
    Ok(Arc::new(TlsStreamServer { cfg, tls }))
}

impl TlsStreamServer {
    /// Serves a client after `handshake` (rustls, or on our own socket px-tls's
    /// kTLS hand-over, which keeps rustls where the kernel cannot take over).
    async fn serve<S, T, F>(&self, stream: S, client: ClientInfo, handshake: impl FnOnce(S) -> F)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
        F: Future<Output = std::io::Result<T>>,
        T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        if !self.cfg.common.ingress_allowed(client.peer_addr.ip()) {
            log::debug!(
                "{TYPE} {}: client {} refused by ingress_network_filter",
                self.cfg.common.name,
                client.peer_addr
            );
            return;
        }
        match handshake(stream).await {
            Ok(tls) => serve_stream(&self.cfg, TYPE, tls, client).await,
            Err(e) => log::info!(
                "{TYPE} {}: TLS handshake with {} failed: {e}",
                self.cfg.common.name,
                client.peer_addr
            ),
        }
    }
}

#[async_trait]
impl Server for TlsStreamServer {
    fn name(&self) -> &str {
        &self.cfg.common.name
    }

    fn kind(&self) -> &'static str {
        TYPE
    }

    fn listen(&self) -> Option<&ListenConfig> {
        self.cfg.common.listen.as_ref()
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
