//! `plain_tcp_port`: a listening port that does only the outer layer (the ingress filter on the
//! socket address, the PROXY protocol) and hands each connection to the server named by
//! `server`, which then serves it as its own: its ACLs and logs see the client address the PROXY
//! protocol carried. Several ports may point at one server.
//!
//! Keys: `listen` (required), `server` (required), `ingress_network_filter`, `proxy_protocol`
//! (`v1` | `v2`), `proxy_protocol_read_timeout` (5s), `listen_in_worker`; see
//! `doc/config/server/plain_tcp_port.md`.
//!
//! ```yaml
//! server:
//!   - name: pp_for_http
//!     type: plain_tcp_port
//!     listen: "[::]:8080"
//!     server: real_http
//!     proxy_protocol: v2
//!     ingress_network_filter: {default: forbid, allow: 10.0.0.0/8}
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, ClientInfo, Handle, ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader};
use tokio::net::TcpStream;

use crate::common::port::{PortIngress, next_server};

/// The `type:` name of this server.
pub const TYPE: &str = "plain_tcp_port";

/// A `plain_tcp_port` server.
pub struct PlainTcpPort {
    ingress: PortIngress,
    next: Arc<Handle<dyn Server>>,
}

/// Builds a `plain_tcp_port` from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let ingress = PortIngress::parse(name, &mut map)?;
    let next = next_server(&mut map, "server", lookup)?;
    map.finish()?;
    Ok(Arc::new(PlainTcpPort { ingress, next }))
}

#[async_trait]
impl Server for PlainTcpPort {
    fn name(&self) -> &str {
        &self.ingress.name
    }

    fn kind(&self) -> &'static str {
        TYPE
    }

    fn listen(&self) -> Option<&ListenConfig> {
        Some(&self.ingress.listen)
    }

    async fn serve_tcp(&self, mut stream: TcpStream, client: ClientInfo) {
        if let Some(info) = self.ingress.admit(&mut stream, client).await {
            let next = self.next.get();
            next.serve_accepted(AcceptedStream::Tcp(stream), info).await;
        }
    }

    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        match stream {
            AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
            AcceptedStream::Other(mut s) => {
                if let Some(info) = self.ingress.admit(&mut s, client).await {
                    let next = self.next.get();
                    next.serve_accepted(AcceptedStream::Other(s), info).await;
                }
            }
        }
    }
}
