//! TLS on both sides of `http_proxy`.
//!
//! - `tls_server` ([px_tls::TlsServer]): clients speak TLS to the proxy itself (an HTTPS proxy,
//!   `curl -x https://...`), with mTLS when `enable_client_auth` is set. The handshake runs
//!   before the first request is read; a failed one closes the connection.
//! - `tls_client` ([px_tls::TlsClient]): `GET https://...` sent in plain HTTP to the proxy is
//!   forwarded over TLS to the origin (https forward), verified as the URI's host. g3proxy
//!   enables it by default: without the key the defaults apply (system roots); `tls_client:
//!   false` turns https forwarding off (501).

use std::sync::Arc;

use px_core::{ClientInfo, ConnectError, Host, UpstreamConn};
use px_tls::{TlsClient, TlsServer};
use px_yaml::{ConfigError, MapReader};

use super::config::HttpProxyConfig;
use super::conn::{self, ClientStream};

/// The TLS settings of an http_proxy.
#[derive(Debug, Default)]
pub(crate) struct HttpTls {
    /// TLS towards clients.
    pub(crate) server: Option<TlsServer>,
    /// TLS towards origins of `https://` requests; `None` refuses them.
    pub(crate) client: Option<TlsClient>,
}

/// Takes `tls_server` and `tls_client` out of the server map.
pub(crate) fn parse(map: &mut MapReader<'_>) -> Result<HttpTls, ConfigError> {
    let server = map
        .get("tls_server")
        .map(|v| TlsServer::parse(&v))
        .transpose()?;
    let client = match map.get("tls_client") {
        Some(v) => TlsClient::parse(&v)?,
        None => {
            Some(TlsClient::defaults().map_err(|e| map.err(format!("default tls_client: {e}")))?)
        }
    };
    Ok(HttpTls { server, client })
}

/// Serves a client connection, first terminating TLS when `tls_server` is set.
pub(crate) async fn serve<S: ClientStream>(cfg: Arc<HttpProxyConfig>, stream: S, info: ClientInfo) {
    cfg.common.stats.add_connection();
    let Some(tls) = &cfg.tls.server else {
        return conn::serve(cfg, stream, info).await;
    };
    // boxed: a TLS stream's connection state would otherwise size every plain connection's
    // future too (this future lives as long as the connection, tunnels included)
    // (the accepted stream moves into the box inside this block, so its storage is not kept
    // in this future while the connection is served)
    let serving = match Box::pin(tls.accept(stream)).await {
        Ok(s) => Box::pin(conn::serve(Arc::clone(&cfg), s, info)),
        Err(e) => {
            return log::debug!(
                "http_proxy {}: TLS handshake with {} failed: {e}",
                cfg.common.name,
                info.peer_addr
            );
        }
    };
    serving.await
}

/// Wraps a connection to an `https://` origin in TLS, verified as `host`.
pub(crate) async fn wrap_upstream(
    cfg: &HttpProxyConfig,
    conn: UpstreamConn,
    host: &Host,
) -> Result<UpstreamConn, ConnectError> {
    match &cfg.tls.client {
        Some(tls) => tls
            .connect_upstream(conn, host)
            .await
            .map_err(ConnectError::Io),
        None => Err(ConnectError::Unsupported("https forwarding")),
    }
}
