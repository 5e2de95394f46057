//! Keys shared by the proxy server types: `listen`, `listen_in_worker`, `escaper`,
//! `ingress_network_filter`, `dst_host_filter_set`, `dst_port_filter`,
//! `tcp_sock_speed_limit`.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! listen_in_worker: true   # one listener per `worker:` runtime
//! escaper: default
//! ingress_network_filter: {default: forbid, allow: 10.0.0.0/8}
//! dst_port_filter: [80, 443]
//! dst_host_filter_set: {exact: [example.net], child: example.com}
//! tcp_sock_speed_limit: 10M/s
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use px_core::value::{AclAction, HostAclSet, ListenConfig, NetworkAcl, PortAcl, SpeedLimit};
use px_core::{Escaper, Handle, ModuleLookup};
use px_yaml::{ConfigError, MapReader, values};

/// The common server keys, parsed.
pub struct CommonServerConfig {
    /// The module name.
    pub name: String,
    /// The listen socket, when the server listens by itself.
    pub listen: Option<ListenConfig>,
    /// The escaper every task goes out through.
    pub escaper: Arc<Handle<dyn Escaper>>,
    /// Which client addresses may connect; `None` permits all.
    pub ingress_filter: Option<NetworkAcl>,
    /// Which target hosts are allowed.
    pub dst_host_filter: Option<HostAclSet>,
    /// Which target ports are allowed.
    pub dst_port_filter: Option<PortAcl>,
    /// Per-connection speed limit on the client side.
    pub tcp_sock_speed_limit: SpeedLimit,
    /// The user group that authenticates clients (`user_group`); `None` means no authentication.
    pub user_group: Option<Arc<Handle<dyn px_core::UserGroup>>>,
    /// The server's counters (the same object across reloads, see `common/stats.rs`).
    pub stats: Arc<px_core::stats::ServerStats>,
}

impl CommonServerConfig {
    /// Takes the common keys out of a server's map (`escaper` is required).
    pub fn parse(
        name: &str,
        map: &mut MapReader<'_>,
        lookup: &dyn ModuleLookup,
    ) -> Result<Self, ConfigError> {
        let mut listen = map.get("listen").map(|v| values::listen(&v)).transpose()?;
        let esc = map.required("escaper")?;
        let escaper = lookup.escaper(esc.as_str()?).map_err(|e| esc.err(e))?;
        let ingress_filter = match map.get("ingress_network_filter") {
            Some(v) => {
                let mut acl = values::network_acl(&v, AclAction::Forbid)?;
                // g3proxy's ingress rule always lets loopback in unless told otherwise
                acl.add_default(IpAddr::from([127, 0, 0, 1]).into(), AclAction::Permit);
                acl.add_default(
                    IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]).into(),
                    AclAction::Permit,
                );
                Some(acl)
            }
            None => None,
        };
        let dst_host_filter = map
            .get("dst_host_filter_set")
            .map(|v| values::host_acl_set(&v))
            .transpose()?;
        let dst_port_filter = map
            .get("dst_port_filter")
            .map(|v| values::port_acl(&v))
            .transpose()?;
        let tcp_sock_speed_limit = map
            .get("tcp_sock_speed_limit")
            .map(|v| values::tcp_speed_limit(&v))
            .transpose()?
            .unwrap_or_default();
        let user_group = super::user::parse_user_group(map, lookup)?;
        let in_worker = super::port::listen_in_worker(map)?;
        if let Some(l) = listen.as_mut() {
            l.in_worker = in_worker;
        }
        Ok(CommonServerConfig {
            name: name.to_string(),
            listen,
            escaper,
            ingress_filter,
            dst_host_filter,
            dst_port_filter,
            tcp_sock_speed_limit,
            user_group,
            stats: super::stats::server_stats(lookup, name),
        })
    }

    /// True when a client at this address may use the server.
    pub fn ingress_allowed(&self, ip: IpAddr) -> bool {
        self.ingress_filter
            .as_ref()
            .map(|acl| acl.check(ip).permits())
            .unwrap_or(true)
    }
}
