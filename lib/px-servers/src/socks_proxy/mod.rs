//! `socks_proxy`: SOCKS4, SOCKS4a and SOCKS5 on one port.
//!
//! SOCKS5 CONNECT (IPv4, IPv6, domain targets) and UDP ASSOCIATE, SOCKS4/4a CONNECT; BIND is
//! answered "command not supported". With a `user_group`, clients authenticate (see [`auth`]).
//! Keys, besides the common `listen`, `escaper`, `user_group`, `ingress_network_filter`,
//! `dst_host_filter_set`, `dst_port_filter`, `tcp_sock_speed_limit`:
//!
//! - `enable_udp_associate` (alias `use_udp_associate`, default false): standard UDP ASSOCIATE;
//!   when false, g3proxy's simplified UDP connect (see [`udp`]).
//! - `negotiation_timeout` (default 4s): from accept until the request is read.
//! - `udp_client_initial_timeout` (default 30s), `udp_socket_buffer`, `transmute_udp_echo_ip`,
//!   `udp_sock_speed_limit`, `udp_relay_packet_size`, `udp_relay_yield_size`.
//! - `tcp_copy_buffer_size`, `task_idle_check_interval`, `task_idle_max_count`;
//! - `socks4_user_id_auth` (default false): authenticate SOCKS4 clients by a `user:password`
//!   USERID;
//!
//! CONNECT tasks are relayed by px-io (see [`tcp_connect`]); UDP tasks by [`udp`].
//!
//! Every other key g3proxy documents for socks_proxy is an error saying it is not implemented yet.
//! `doc/config/server/socks_proxy.md` describes every key.
//!
//! ```yaml
//! server:
//!   - name: socks
//!     type: socks_proxy
//!     listen: 127.0.0.1:1080
//!     escaper: default
//!     enable_udp_associate: true
//!     udp_socket_buffer: 512K
//! ```

mod auth;
mod config;
mod limit;
mod negotiate;
mod tcp_connect;
mod udp;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use px_core::value::ListenConfig;
use px_core::{AcceptedStream, ClientInfo, ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;

use crate::common::stats;
use config::SocksProxyConfig;
use negotiate::{Request, negotiate};

/// The `type:` name of this server.
pub const TYPE_NAME: &str = "socks_proxy";

/// Builds a socks_proxy server from its config map (`name` and `type` already taken).
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Server>, ConfigError> {
    let config = SocksProxyConfig::parse(name, &mut map, lookup)?;
    map.finish()?;
    Ok(Arc::new(SocksProxyServer { config }))
}

/// A running socks_proxy server.
struct SocksProxyServer {
    config: SocksProxyConfig,
}

/// Read-ahead buffer for the handshake; bytes past the request stay in it and are relayed.
const HANDSHAKE_BUFFER: usize = 2048;

impl SocksProxyServer {
    async fn serve<S>(&self, stream: S, client: ClientInfo)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let cfg = &self.config;
        cfg.common.stats.add_connection();
        if !cfg.common.ingress_allowed(client.peer_addr.ip()) {
            log::debug!(
                "socks {}: client {} refused by ingress filter",
                cfg.common.name,
                client.peer_addr
            );
            return;
        }
        let mut stream = BufReader::with_capacity(HANDSHAKE_BUFFER, stream);
        let group = cfg.common.user_group.as_ref().map(|h| h.get());
        let auth = group.as_deref().map(|group| auth::SocksAuth {
            group,
            client: &client,
            socks4_user_id: cfg.socks4_user_id_auth,
        });
        // boxed: the handshake state is freed before the relay, which may idle for long
        let handshake = Box::pin(negotiate(&mut stream, auth.as_ref()));
        let (request, user) = match tokio::time::timeout(cfg.negotiation_timeout, handshake).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                log::debug!(
                    "socks {}: negotiation with {} failed: {e}",
                    cfg.common.name,
                    client.peer_addr
                );
                return;
            }
            Err(_) => {
                log::debug!(
                    "socks {}: negotiation with {} timed out",
                    cfg.common.name,
                    client.peer_addr
                );
                return;
            }
        };
        let timeout = cfg.negotiation_timeout;
        let Ok(user) = Box::pin(auth::admit(&mut stream, &request, user, timeout)).await else {
            return;
        };
        let _task = stats::start_task(&cfg.common.stats, user.as_ref().map(|u| &u.ctx), true);
        match request {
            Request::V4Connect(r) => {
                tcp_connect::serve_socks4(cfg, stream, client, r.target, user).await
            }
            Request::V5Connect(t) => tcp_connect::serve_socks5(cfg, stream, client, t, user).await,
            // boxed: its state is much larger than a TCP relay's
            Request::V5UdpAssociate(hint) => {
                Box::pin(udp::serve_udp(cfg, stream, client, hint, user)).await
            }
        }
    }
}

#[async_trait]
impl Server for SocksProxyServer {
    fn name(&self) -> &str {
        &self.config.common.name
    }

    fn kind(&self) -> &'static str {
        TYPE_NAME
    }

    fn listen(&self) -> Option<&ListenConfig> {
        self.config.common.listen.as_ref()
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
