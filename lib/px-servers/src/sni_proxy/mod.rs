//! `sni_proxy`: a TCP forward proxy routed by the TLS ClientHello's SNI or the first HTTP/1
//! request's `Host`, without terminating TLS. The bytes read to find the name are sent to the
//! upstream first, then both sides are relayed by px-io.
//!
//! - `sniff`: the ClientHello / HTTP head reader (a ClientHello split over TCP segments and TLS
//!   records is reassembled).
//! - `hosts`: `allowed_hosts`, the names served and their redirects.
//! - [`config`]: the keys; `doc/config/server/sni_proxy.md`.
//!
//! The upstream is the name on the port the client connected to (`ClientInfo::local_addr`), or
//! the port of the `Host` header, unless `allowed_hosts` redirects it. No first byte within
//! `request_wait_timeout`, or no complete ClientHello / head within `request_recv_timeout`, closes
//! the connection. A ClientHello without SNI gets a `handshake_failure` alert, a name that is not
//! allowed an `unrecognized_name` alert, an unreachable upstream `internal_error`; an HTTP
//! request gets 400 (no Host), 403 (not allowed) or 502 (unreachable). A name that leads back to
//! the very socket the client came in on is refused the same way (HTTP 508), not looped. Anything
//! else is closed without a reply.
//!
//! ```yaml
//! server:
//!   - name: sni
//!     type: sni_proxy
//!     escaper: default
//!     listen: "[::]:443"
//!     allowed_hosts:
//!       - exact_match: www.example.net
//!       - child_match: example.org
//! ```

mod config;
mod hosts;
mod sniff;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{
    AcceptedStream, AsyncStream, ClientInfo, Host, ModuleLookup, Server, TcpConnectRequest,
    UpstreamAddr,
};
use px_io::RelayOpts;
use px_yaml::{ConfigError, MapReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::check_target;
use config::SniProxyConfig;
use sniff::{Sniffed, sniff};

/// The `type:` name of this server.
pub const TYPE: &str = "sni_proxy";

/// Upper bound on one connect through the escaper, over its own timeouts.
const CONNECT_GUARD: Duration = Duration::from_secs(60);

/// A `sni_proxy` server.
pub struct SniProxyServer {
    cfg: SniProxyConfig,
}

/// Builds a `sni_proxy` server from its map (`name` and `type` already taken).
pub fn build(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let cfg = SniProxyConfig::parse(name, map, lookup)?;
    Ok(Arc::new(SniProxyServer { cfg }))
}

/// How a task is refused: these bytes (a TLS alert, an HTTP error) are sent, then it closes.
struct Refusal(Vec<u8>);

fn http_error(status: u16, reason: &str) -> Refusal {
    Refusal(
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .into_bytes(),
    )
}

impl SniProxyServer {
    /// Reads until the name is known: the bytes read and what they were.
    async fn read_request<S: AsyncStream>(
        &self,
        stream: &mut S,
        client: &ClientInfo,
    ) -> Option<(Vec<u8>, Sniffed)> {
        let cfg = &self.cfg;
        let mut buf = Vec::with_capacity(2048);
        let first = tokio::time::timeout(cfg.request_wait_timeout, stream.read_buf(&mut buf));
        match first.await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return None,
            Err(_) => {
                log::debug!(
                    "{TYPE} {}: {} sent nothing in time",
                    cfg.common.name,
                    client.peer_addr
                );
                return None;
            }
        }
        let rest = async {
            loop {
                match sniff(&buf, cfg.max_client_hello) {
                    Ok(Some(s)) => return Ok(s),
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
                match stream.read_buf(&mut buf).await {
                    Ok(0) => return Err("closed before the request was complete".to_string()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        match tokio::time::timeout(cfg.request_recv_timeout, rest).await {
            Ok(Ok(s)) => Some((buf, s)),
            Ok(Err(e)) => {
                log::debug!("{TYPE} {}: {}: {e}", cfg.common.name, client.peer_addr);
                None
            }
            Err(_) => {
                log::debug!(
                    "{TYPE} {}: {}: request not complete in time",
                    cfg.common.name,
                    client.peer_addr
                );
                None
            }
        }
    }

    /// The upstream for what was sniffed, or how to refuse.
    fn target(&self, sniffed: &Sniffed, client: &ClientInfo) -> Result<UpstreamAddr, Refusal> {
        let port = client.local_addr.port();
        let (requested, tls) = match sniffed {
            Sniffed::Tls(None) => {
                return Err(Refusal(
                    sniff::alert(sniff::ALERT_HANDSHAKE_FAILURE).to_vec(),
                ));
            }
            Sniffed::Tls(Some(name)) => match Host::parse(name) {
                Some(h) => (UpstreamAddr::new(h, port), true),
                None => {
                    return Err(Refusal(
                        sniff::alert(sniff::ALERT_UNRECOGNIZED_NAME).to_vec(),
                    ));
                }
            },
            Sniffed::Http(None) => return Err(http_error(400, "Bad Request")),
            Sniffed::Http(Some(h)) => match UpstreamAddr::parse(h, Some(port)) {
                Some(a) => (a, false),
                None => return Err(http_error(400, "Bad Request")),
            },
        };
        let deny = || {
            if tls {
                Refusal(sniff::alert(sniff::ALERT_UNRECOGNIZED_NAME).to_vec())
            } else {
                http_error(403, "Forbidden")
            }
        };
        let target = match &self.cfg.allowed_hosts {
            Some(hosts) => match hosts.find(&requested.host) {
                Some(h) => h.redirect(&requested),
                None => {
                    log::debug!(
                        "{TYPE} {}: {requested} is not allowed",
                        self.cfg.common.name
                    );
                    return Err(deny());
                }
            },
            None => requested,
        };
        if let Err(denied) = check_target(&self.cfg.common, &target) {
            log::debug!("{TYPE} {}: {denied}", self.cfg.common.name);
            return Err(deny());
        }
        Ok(target)
    }

    async fn serve<S: AsyncStream + 'static>(&self, mut stream: S, client: ClientInfo) {
        let cfg = &self.cfg;
        cfg.common.stats.add_connection();
        if !cfg.common.ingress_allowed(client.peer_addr.ip()) {
            log::debug!(
                "{TYPE} {}: client {} refused by ingress_network_filter",
                cfg.common.name,
                client.peer_addr
            );
            return;
        }
        let Some((buf, sniffed)) = self.read_request(&mut stream, &client).await else {
            return;
        };
        let _task = cfg.common.stats.task();
        let target = match self.target(&sniffed, &client) {
            Ok(t) => t,
            Err(r) => return refuse(stream, r).await,
        };
        let req = TcpConnectRequest {
            target: target.clone(),
            client_addr: client.peer_addr,
            resolve_strategy: None,
        };
        let escaper = cfg.common.escaper.get();
        let mut conn = match tokio::time::timeout(CONNECT_GUARD, escaper.connect_tcp(&req)).await {
            Ok(Ok(c)) => c,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                log::info!("{TYPE} {}: connect to {target}: {why}", cfg.common.name);
                let reply = match sniffed {
                    Sniffed::Tls(_) => Refusal(sniff::alert(sniff::ALERT_INTERNAL_ERROR).to_vec()),
                    Sniffed::Http(_) => http_error(502, "Bad Gateway"),
                };
                return refuse(stream, reply).await;
            }
        };
        if conn.peer_addr == client.local_addr {
            // the name leads back to this very listener: relaying would loop forever
            log::info!("{TYPE} {}: {target} is this server itself", cfg.common.name);
            let reply = match sniffed {
                Sniffed::Tls(_) => Refusal(sniff::alert(sniff::ALERT_INTERNAL_ERROR).to_vec()),
                Sniffed::Http(_) => http_error(508, "Loop Detected"),
            };
            return refuse(stream, reply).await;
        }
        let opts = RelayOpts {
            buf_size: cfg.keys.buf_size,
            idle_timeout: Some(cfg.keys.idle_timeout),
            client_limit: cfg.common.tcp_sock_speed_limit,
            ..Default::default()
        };
        let outcome = px_io::relay_upstream(&mut stream, &mut conn, &buf, b"", &opts).await;
        crate::common::stats::fold_relay(&cfg.common.stats, None, &outcome);
        log::debug!(
            "{TYPE} {}: {} -> {target} ({}) ended: {}, up {} down {}",
            cfg.common.name,
            client.peer_addr,
            conn.peer_addr,
            outcome.end.reason(),
            outcome.up_bytes,
            outcome.down_bytes,
        );
    }
}

/// Sends the refusal (bounded in time) and closes.
async fn refuse<S: AsyncStream>(mut stream: S, r: Refusal) {
    let send = async {
        stream.write_all(&r.0).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), send).await;
}

#[async_trait]
impl Server for SniProxyServer {
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
        self.serve(stream, client).await;
    }

    async fn serve_accepted(&self, stream: AcceptedStream, client: ClientInfo) {
        match stream {
            AcceptedStream::Tcp(s) => self.serve_tcp(s, client).await,
            AcceptedStream::Other(s) => self.serve(s, client).await,
        }
    }
}
