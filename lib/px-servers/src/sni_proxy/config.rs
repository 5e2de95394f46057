//! The `sni_proxy` config: the common server keys (`listen`, `escaper`,
//! `ingress_network_filter`, `dst_host_filter_set`, `dst_port_filter`, `tcp_sock_speed_limit`),
//! the relay keys, and `tls_max_client_hello_size`, `request_wait_timeout`,
//! `request_recv_timeout`, `allowed_hosts`. Every key is in `doc/config/server/sni_proxy.md`.

use std::time::Duration;

use px_core::ModuleLookup;
use px_yaml::{ConfigError, MapReader, values};

use super::hosts::AllowedHosts;
use crate::common::CommonServerConfig;
use crate::common::stream_keys::StreamKeys;

/// g3proxy's sni_proxy keys not implemented yet.
const UNIMPLEMENTED: &[&str] = &[
    "auditor",
    "user_group",
    "auth_by_client_ip",
    "auth_by_server_name",
    "shared_logger",
    "tcp_copy_yield_size",
    "tcp_misc_opts",
    "flush_task_log_on_created",
    "flush_task_log_on_connected",
    "task_log_flush_interval",
    "extra_metrics_tags",
    "protocol_inspection",
    "server_tcp_portmap",
    "client_tcp_portmap",
];

/// The parsed `sni_proxy` config.
pub(crate) struct SniProxyConfig {
    /// listen, escaper, filters, speed limit.
    pub(crate) common: CommonServerConfig,
    /// Relay buffer and idle time.
    pub(crate) keys: StreamKeys,
    /// The largest ClientHello accepted.
    pub(crate) max_client_hello: usize,
    /// Time for the first byte.
    pub(crate) request_wait_timeout: Duration,
    /// Time for the whole ClientHello or request head once the first byte came.
    pub(crate) request_recv_timeout: Duration,
    /// The names served; `None` serves every name.
    pub(crate) allowed_hosts: Option<AllowedHosts>,
}

impl SniProxyConfig {
    /// Parses the map (`name` and `type` already taken) and checks for leftover keys.
    pub(crate) fn parse(
        name: &str,
        mut map: MapReader<'_>,
        lookup: &dyn ModuleLookup,
    ) -> Result<SniProxyConfig, ConfigError> {
        let common = CommonServerConfig::parse(name, &mut map, lookup)?;
        let keys = StreamKeys::parse(&mut map)?;
        let mut max_client_hello = 1 << 16;
        if let Some(v) = map.get("tls_max_client_hello_size") {
            let n: u32 = v.as_int()?;
            if n < 512 {
                return Err(v.err("tls_max_client_hello_size must be at least 512"));
            }
            max_client_hello = usize::try_from(n).map_err(|_| v.err("too large"))?;
        }
        let request_wait_timeout = match map.get("request_wait_timeout") {
            Some(v) => values::duration(&v)?,
            None => Duration::from_secs(60),
        };
        let request_recv_timeout = match map.get("request_recv_timeout") {
            Some(v) => values::duration(&v)?,
            None => Duration::from_secs(4),
        };
        let allowed_hosts = map
            .get_any(&["allowed_hosts", "allowed_sites", "hosts"])
            .map(|v| AllowedHosts::parse(&v))
            .transpose()?;
        map.unimplemented(UNIMPLEMENTED)?;
        map.finish()?;
        Ok(SniProxyConfig {
            common,
            keys,
            max_client_hello,
            request_wait_timeout,
            request_recv_timeout,
            allowed_hosts,
        })
    }
}
