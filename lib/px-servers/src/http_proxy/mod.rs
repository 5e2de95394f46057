//! `http_proxy`: a forward HTTP/1.x proxy, absolute-form forwarding of every method plus CONNECT.
//!
//! - [`config`]: the keys (`listen`, `escaper`, the filters, `tcp_sock_speed_limit`, the head
//!   limits and timeouts, upstream keep-alive, ...), documented in `doc/config/server/http_proxy.md`.
//! - `conn`: one client connection, request after request (keep-alive, pipelining in order).
//! - `forward`: one forwarded exchange (reused upstream connections, bodies, `100-continue`).
//! - `connect`: CONNECT tunnels relayed by px-io.
//! - `reply`: error replies (400, 403, 408, 431, 501, 502, 504, 505) and lingering close.
//! - `io`: each side's stream limited and counted by px-io's `LimitedStream`, then buffered.
//! - `upstream`: upstream connections (connect, keep for the next request).
//!
//! ```yaml
//! server:
//!   - name: http
//!     type: http_proxy
//!     listen: 127.0.0.1:8080
//!     escaper: default
//!     dst_port_filter: [80, 443]
//!     req_header_recv_timeout: 30s
//! ```

mod auth;
mod config;
mod conn;
mod connect;
mod forward;
mod io;
mod reply;
mod tls;
mod upstream;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, ClientInfo, ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader};
use tokio::net::TcpStream;

use config::HttpProxyConfig;

/// The `type:` name of this server.
pub const TYPE: &str = "http_proxy";

/// An `http_proxy` server.
pub struct HttpProxyServer {
    name: String,
    cfg: Arc<HttpProxyConfig>,
}

/// Builds an `http_proxy` server from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let cfg = HttpProxyConfig::parse(name, map, lookup)?;
    Ok(Arc::new(HttpProxyServer {
        name: name.to_string(),
        cfg: Arc::new(cfg),
    }))
}

#[async_trait]
impl Server for HttpProxyServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        TYPE
    }

    fn listen(&self) -> Option<&ListenConfig> {
        self.cfg.common.listen.as_ref()
    }

    async fn serve_tcp(&self, stream: TcpStream, client: ClientInfo) {
        tls::serve(Arc::clone(&self.cfg), stream, client).await;
    }

    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        match stream {
            AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
            AcceptedStream::Other(s) => tls::serve(Arc::clone(&self.cfg), s, client).await,
        }
    }
}
