//! `tcp_stream`: maps a local TCP port to one upstream address or a weighted list of them,
//! optionally speaking TLS to the upstream (TLS offloading, with mTLS).
//!
//! - [`config`]: the keys (`proxy_pass`, `upstream_pick_policy`, `tls_client`,
//!   `upstream_tls_name`, the common and relay keys); `doc/config/server/tcp_stream.md`.
//! - `serve`: pick an upstream (a failed one is marked down and the next is tried), connect
//!   through the escaper, TLS if asked, relay with px-io (splice between plain sockets).
//!
//! ```yaml
//! server:
//!   - name: tcp
//!     type: tcp_stream
//!     escaper: default
//!     listen: "[::1]:10086"
//!     proxy_pass: ["127.0.0.1:5201", "127.0.0.1:5202"]
//!     upstream_pick_policy: rr
//! ```

mod config;
mod serve;

use std::sync::Arc;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, ClientInfo, ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader};
use tokio::net::TcpStream;

pub(crate) use config::StreamConfig;
pub(crate) use serve::serve as serve_stream;

/// The `type:` name of this server.
pub const TYPE: &str = "tcp_stream";

/// A `tcp_stream` server.
pub struct TcpStreamServer {
    cfg: StreamConfig,
}

/// Builds a `tcp_stream` server from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let cfg = StreamConfig::parse(name, &mut map, lookup)?;
    map.finish()?;
    Ok(Arc::new(TcpStreamServer { cfg }))
}

#[async_trait]
impl Server for TcpStreamServer {
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
        serve::serve(&self.cfg, TYPE, stream, client).await;
    }

    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        match stream {
            AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
            AcceptedStream::Other(s) => serve::serve(&self.cfg, TYPE, s, client).await,
        }
    }
}
