//! `intelli_proxy`: one port for HTTP and SOCKS clients. The first byte of a connection picks the
//! next server: `0x04` or `0x05` (a SOCKS4/4a or SOCKS5 greeting) goes to `socks_server`, an
//! upper-case ASCII letter (an HTTP method) to `http_server`. Anything else, or no byte within
//! `protocol_detection_timeout`, closes the connection without a reply (a FIN: what the client
//! sent is read first, so the kernel does not answer with a reset). The byte is only peeked
//! at, so the next server gets the untouched socket.
//!
//! Keys: `listen` (required), `http_server` and `socks_server` (required),
//! `protocol_detection_timeout` (4s), and the port keys `ingress_network_filter`,
//! `proxy_protocol`, `proxy_protocol_read_timeout`, `listen_in_worker`; see
//! `doc/config/server/intelli_proxy.md`.
//!
//! ```yaml
//! server:
//!   - name: intelli
//!     type: intelli_proxy
//!     listen: "[::]:8080"
//!     http_server: http
//!     socks_server: socks
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, ClientInfo, Handle, ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader, values};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::port::{PortIngress, next_server};
use crate::common::rewind::Rewind;

/// The `type:` name of this server.
pub const TYPE: &str = "intelli_proxy";

/// g3proxy's default `protocol_detection_timeout`.
const DEFAULT_DETECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// An `intelli_proxy` server.
pub struct IntelliProxy {
    ingress: PortIngress,
    http: Arc<Handle<dyn Server>>,
    socks: Arc<Handle<dyn Server>>,
    detection_timeout: Duration,
}

/// What the first byte says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Socks,
}

fn detect(first: u8) -> Option<Protocol> {
    match first {
        0x04 | 0x05 => Some(Protocol::Socks),
        b'A'..=b'Z' => Some(Protocol::Http),
        _ => None,
    }
}

/// Builds an `intelli_proxy` from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let ingress = PortIngress::parse(name, &mut map)?;
    let http = next_server(&mut map, "http_server", lookup)?;
    let socks = next_server(&mut map, "socks_server", lookup)?;
    let detection_timeout = match map.get("protocol_detection_timeout") {
        Some(v) => values::duration(&v)?,
        None => DEFAULT_DETECTION_TIMEOUT,
    };
    map.finish()?;
    Ok(Arc::new(IntelliProxy {
        ingress,
        http,
        socks,
        detection_timeout,
    }))
}

impl IntelliProxy {
    fn next_for(&self, first: Option<u8>, client: &ClientInfo) -> Option<Arc<dyn Server>> {
        let Some(b) = first else {
            log::debug!(
                "{TYPE} {}: no first byte from {} in time",
                self.ingress.name,
                client.peer_addr
            );
            return None;
        };
        match detect(b) {
            Some(Protocol::Http) => Some(self.http.get()),
            Some(Protocol::Socks) => Some(self.socks.get()),
            None => {
                log::debug!(
                    "{TYPE} {}: unknown protocol from {} (first byte {b:#04x})",
                    self.ingress.name,
                    client.peer_addr
                );
                None
            }
        }
    }
}

/// Closes with a FIN rather than a reset: what the client sent is read and dropped first.
async fn close_clearly(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = stream.shutdown().await;
}

#[async_trait]
impl Server for IntelliProxy {
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
        let Some(info) = self.ingress.admit(&mut stream, client).await else {
            return;
        };
        let mut one = [0u8; 1];
        let first = match tokio::time::timeout(self.detection_timeout, stream.peek(&mut one)).await
        {
            Ok(Ok(1)) => Some(one[0]),
            _ => None,
        };
        match self.next_for(first, &info) {
            Some(next) => next.serve_accepted(AcceptedStream::Tcp(stream), info).await,
            None => close_clearly(stream).await,
        }
    }

    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        let mut stream = match stream {
            AcceptedStream::Tcp(s) => return self.serve_tcp(s, client).await,
            AcceptedStream::Other(s) => s,
        };
        let Some(info) = self.ingress.admit(&mut stream, client).await else {
            return;
        };
        let first = match tokio::time::timeout(self.detection_timeout, stream.read_u8()).await {
            Ok(Ok(b)) => Some(b),
            _ => None,
        };
        if let (Some(next), Some(b)) = (self.next_for(first, &info), first) {
            let s = Rewind::new(vec![b], stream);
            next.serve_accepted(AcceptedStream::Other(Box::new(s)), info)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_byte() {
        assert_eq!(detect(0x05), Some(Protocol::Socks));
        assert_eq!(detect(0x04), Some(Protocol::Socks));
        for m in [b'G', b'P', b'C', b'H', b'O', b'D'] {
            assert_eq!(detect(m), Some(Protocol::Http));
        }
        for b in [0x16, 0x00, b'g', b' ', 0xff] {
            assert_eq!(detect(b), None);
        }
    }
}
