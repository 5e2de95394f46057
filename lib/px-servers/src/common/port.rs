//! What the port servers (`plain_tcp_port`, `plain_tls_port`, `intelli_proxy`) share: their
//! listen socket, the ingress filter on the socket's peer address, the PROXY protocol in front
//! of the stream, and handing the stream on to a next server by name.
//!
//! Keys read here: `listen` (required), `listen_in_worker` (one listener per worker runtime when
//! the daemon has a `worker:` section), `ingress_network_filter` (always
//! the real socket address, also with the PROXY protocol), `proxy_protocol` (`v1` | `v2`),
//! `proxy_protocol_read_timeout` (default 5s).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use px_core::value::{AclAction, ListenConfig, NetworkAcl};
use px_core::{ClientInfo, Handle, ModuleLookup, Server};
use px_yaml::{ConfigError, MapReader, Val, values};
use tokio::io::AsyncRead;

use super::proxy_protocol::{self, ProxyProtocolVersion};

/// An ingress network filter as the proxy servers read it: default forbid, loopback permitted
/// unless the rule names it.
pub fn ingress_filter(v: &Val<'_>) -> Result<NetworkAcl, ConfigError> {
    let mut acl = values::network_acl(v, AclAction::Forbid)?;
    acl.add_default(IpAddr::from([127, 0, 0, 1]).into(), AclAction::Permit);
    acl.add_default(
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]).into(),
        AclAction::Permit,
    );
    Ok(acl)
}

/// Takes `listen_in_worker` (default `false`): with a `worker:` section the
/// daemon opens one listener per worker runtime and accepts on each worker;
/// without one, the listener runs on the main runtime as `listen` says (as
/// g3proxy does).
pub fn listen_in_worker(map: &mut MapReader<'_>) -> Result<bool, ConfigError> {
    match map.get("listen_in_worker") {
        Some(v) => v.as_bool(),
        None => Ok(false),
    }
}

/// A next server named by a key (`server`, `http_server`, `socks_server`).
pub fn next_server(
    map: &mut MapReader<'_>,
    key: &str,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<Handle<dyn Server>>, ConfigError> {
    let v = map.required(key)?;
    lookup.server(v.as_str()?).map_err(|e| v.err(e))
}

/// The outer layer every port server handles before its own work.
#[derive(Debug, Clone)]
pub struct PortIngress {
    /// The server name, for logs.
    pub name: String,
    /// The listen socket.
    pub listen: ListenConfig,
    /// Filter on the socket peer address.
    pub filter: Option<NetworkAcl>,
    /// The PROXY protocol version expected, if any.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// Time for the PROXY protocol header.
    pub proxy_protocol_read_timeout: Duration,
}

impl PortIngress {
    /// Takes `listen`, `listen_in_worker`, `ingress_network_filter` (alias
    /// `ingress_net_filter`), `proxy_protocol` and `proxy_protocol_read_timeout`.
    pub fn parse(name: &str, map: &mut MapReader<'_>) -> Result<PortIngress, ConfigError> {
        let mut listen = values::listen(&map.required("listen")?)?;
        listen.in_worker = listen_in_worker(map)?;
        let filter = map
            .get_any(&["ingress_network_filter", "ingress_net_filter"])
            .map(|v| ingress_filter(&v))
            .transpose()?;
        let proxy_protocol = map
            .get("proxy_protocol")
            .map(|v| ProxyProtocolVersion::parse(&v))
            .transpose()?;
        let proxy_protocol_read_timeout = match map.get("proxy_protocol_read_timeout") {
            Some(v) => values::duration(&v)?,
            None => proxy_protocol::DEFAULT_READ_TIMEOUT,
        };
        Ok(PortIngress {
            name: name.to_string(),
            listen,
            filter,
            proxy_protocol,
            proxy_protocol_read_timeout,
        })
    }

    /// Checks the socket peer against the filter, then reads the PROXY protocol header if one is
    /// expected. The client info to hand on, or `None` when the connection is to be dropped.
    pub async fn admit<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        client: ClientInfo,
    ) -> Option<ClientInfo> {
        let socket_peer = client.socket_peer_addr;
        if let Some(acl) = &self.filter
            && !acl.check(socket_peer.ip()).permits()
        {
            log::debug!(
                "{}: client {socket_peer} refused by ingress_network_filter",
                self.name
            );
            return None;
        }
        let Some(version) = self.proxy_protocol else {
            return Some(client);
        };
        match proxy_protocol::read_header(stream, version, self.proxy_protocol_read_timeout).await {
            Ok(addrs) => Some(with_proxy_source(client, addrs.source)),
            Err(e) => {
                log::debug!(
                    "{}: client {socket_peer}: bad PROXY protocol header: {e}",
                    self.name
                );
                None
            }
        }
    }
}

/// The client info with the address a PROXY protocol header carried as the client address.
pub fn with_proxy_source(client: ClientInfo, source: Option<SocketAddr>) -> ClientInfo {
    match source {
        Some(src) => ClientInfo {
            peer_addr: src,
            local_addr: client.local_addr,
            socket_peer_addr: client.socket_peer_addr,
        },
        None => client,
    }
}
