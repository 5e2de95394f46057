//! The `socks_proxy` config: the common server keys plus the SOCKS-specific ones.
//!
//! ```yaml
//! name: socks
//! type: socks_proxy
//! listen: 127.0.0.1:1080
//! escaper: default
//! enable_udp_associate: true
//! negotiation_timeout: 4s
//! udp_socket_buffer: {recv: 512K, send: 512K}
//! transmute_udp_echo_ip: {"192.168.10.2": "192.168.30.2"}
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use px_core::ModuleLookup;
use px_core::value::UdpSpeedLimit;
use px_yaml::{ConfigError, MapReader, Val, values};

use crate::common::CommonServerConfig;

/// g3proxy's keys for socks_proxy that this proxy does not implement yet.
const UNIMPLEMENTED: &[&str] = &[
    "auditor",
    "shared_logger",
    "udp_relay_batch_size",
    "tcp_copy_yield_size",
    "tcp_misc_opts",
    "udp_misc_opts",
    "flush_task_log_on_created",
    "flush_task_log_on_connected",
    "task_log_flush_interval",
    "extra_metrics_tags",
    "udp_bind_ipv4",
    "udp_bind_ipv6",
    "udp_bind_port_range",
];

/// SO_RCVBUF / SO_SNDBUF sizes for a UDP socket; `None` leaves the OS default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SocketBufferConfig {
    /// SO_RCVBUF.
    pub(crate) recv: Option<usize>,
    /// SO_SNDBUF.
    pub(crate) send: Option<usize>,
}

/// The parsed `socks_proxy` config.
pub(crate) struct SocksProxyConfig {
    /// listen, escaper, filters, tcp_sock_speed_limit.
    pub(crate) common: CommonServerConfig,
    /// `use_udp_associate` / `enable_udp_associate`: standard UDP ASSOCIATE, else UDP connect.
    pub(crate) udp_associate: bool,
    /// `negotiation_timeout`: time allowed from accept until the request is read.
    pub(crate) negotiation_timeout: Duration,
    /// `udp_client_initial_timeout`: time allowed for the client's first datagram.
    pub(crate) udp_client_initial_timeout: Duration,
    /// `udp_socket_buffer` on the client-side UDP socket.
    pub(crate) udp_socket_buffer: SocketBufferConfig,
    /// `transmute_udp_echo_ip`: local IP -> IP told to the client; `None` disables.
    pub(crate) transmute_udp_echo_ip: Option<HashMap<IpAddr, IpAddr>>,
    /// `udp_sock_speed_limit` on the client-side UDP socket.
    pub(crate) udp_sock_speed_limit: UdpSpeedLimit,
    /// `tcp_copy_buffer_size`.
    pub(crate) tcp_copy_buffer_size: usize,
    /// `udp_relay_packet_size`: the largest payload relayed.
    pub(crate) udp_relay_packet_size: usize,
    /// `udp_relay_yield_size`.
    pub(crate) udp_relay_yield_size: usize,
    /// `task_idle_check_interval`.
    pub(crate) task_idle_check_interval: Duration,
    /// `task_idle_max_count`.
    pub(crate) task_idle_max_count: u32,
    /// `socks4_user_id_auth`: read a SOCKS4 USERID as `username:password`.
    pub(crate) socks4_user_id_auth: bool,
}

impl SocksProxyConfig {
    /// Reads every key of a socks_proxy map (the caller calls `finish`).
    pub(crate) fn parse(
        name: &str,
        map: &mut MapReader<'_>,
        lookup: &dyn ModuleLookup,
    ) -> Result<Self, ConfigError> {
        let mut common = CommonServerConfig::parse(name, map, lookup)?;
        // g3proxy's deprecated spellings of tcp_sock_speed_limit
        if let Some(v) = map.get_any(&["tcp_conn_speed_limit", "tcp_conn_limit", "conn_limit"]) {
            if !common.tcp_sock_speed_limit.is_unlimited() {
                return Err(v.err("deprecated alias of tcp_sock_speed_limit, which is also set"));
            }
            common.tcp_sock_speed_limit = values::tcp_speed_limit(&v)?;
        }
        let udp_associate = match map.get_any(&["use_udp_associate", "enable_udp_associate"]) {
            Some(v) => v.as_bool()?,
            None => false,
        };
        let negotiation_timeout = opt_duration(map, &["negotiation_timeout"], 4)?;
        let udp_client_initial_timeout = opt_duration(map, &["udp_client_initial_timeout"], 30)?;
        let udp_socket_buffer = match map.get("udp_socket_buffer") {
            Some(v) => socket_buffer(&v)?,
            None => SocketBufferConfig::default(),
        };
        let transmute_udp_echo_ip =
            match map.get_any(&["transmute_udp_echo_ip", "auto_reply_local_ip_map"]) {
                Some(v) => transmute_map(&v)?,
                None => None,
            };
        let udp_sock_speed_limit = match map.get_any(&[
            "udp_sock_speed_limit",
            "udp_relay_speed_limit",
            "udp_relay_limit",
            "relay_limit",
        ]) {
            Some(v) => values::udp_speed_limit(&v)?,
            None => UdpSpeedLimit::default(),
        };
        let tcp_copy_buffer_size = opt_size(map, "tcp_copy_buffer_size", 16 * 1024)?.max(4 * 1024);
        let udp_relay_packet_size = opt_size(map, "udp_relay_packet_size", 4 * 1024)?;
        let udp_relay_packet_size = udp_relay_packet_size.clamp(512, 16 * 1024);
        let udp_relay_yield_size = opt_size(map, "udp_relay_yield_size", 1024 * 1024)?.max(1);
        let task_idle_check_interval = opt_duration(
            map,
            &["task_idle_check_interval", "task_idle_check_duration"],
            60,
        )?
        .clamp(Duration::from_secs(2), Duration::from_secs(30 * 60));
        let task_idle_max_count = match map.get("task_idle_max_count") {
            Some(v) => v.as_int::<u32>()?.max(1),
            None => 5,
        };
        let socks4_user_id_auth = match map.get("socks4_user_id_auth") {
            Some(v) => v.as_bool()?,
            None => false,
        };
        map.unimplemented(UNIMPLEMENTED)?;
        Ok(SocksProxyConfig {
            common,
            udp_associate,
            negotiation_timeout,
            udp_client_initial_timeout,
            udp_socket_buffer,
            transmute_udp_echo_ip,
            udp_sock_speed_limit,
            tcp_copy_buffer_size,
            udp_relay_packet_size,
            udp_relay_yield_size,
            task_idle_check_interval,
            task_idle_max_count,
            socks4_user_id_auth,
        })
    }

    /// The IP to tell the client for a UDP socket bound on `local`.
    pub(crate) fn udp_echo_ip(&self, local: IpAddr) -> IpAddr {
        match &self.transmute_udp_echo_ip {
            None => local,
            Some(map) => map.get(&local).copied().unwrap_or(match local {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            }),
        }
    }

    /// How long a task may move no bytes before it is closed.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.task_idle_check_interval
            .saturating_mul(self.task_idle_max_count)
    }
}

fn opt_duration(
    map: &mut MapReader<'_>,
    keys: &[&str],
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    match map.get_any(keys) {
        Some(v) => values::duration(&v),
        None => Ok(Duration::from_secs(default_secs)),
    }
}

fn opt_size(map: &mut MapReader<'_>, key: &str, default: usize) -> Result<usize, ConfigError> {
    match map.get(key) {
        Some(v) => usize_size(&v),
        None => Ok(default),
    }
}

fn usize_size(v: &Val<'_>) -> Result<usize, ConfigError> {
    let n = values::size(v)?;
    usize::try_from(n).map_err(|_| v.err(format!("size {n} is too large")))
}

/// g3proxy's "socket buffer config": a size for both, or a map with `recv` and `send`.
fn socket_buffer(v: &Val<'_>) -> Result<SocketBufferConfig, ConfigError> {
    if v.is_map() {
        let mut m = v.map()?;
        let recv = m.get("recv").map(|x| usize_size(&x)).transpose()?;
        let send = m.get("send").map(|x| usize_size(&x)).transpose()?;
        m.finish()?;
        return Ok(SocketBufferConfig { recv, send });
    }
    let n = usize_size(v)?;
    Ok(SocketBufferConfig {
        recv: Some(n),
        send: Some(n),
    })
}

/// `transmute_udp_echo_ip`: a map of local IP to echoed IP, or a bool (true: empty map).
fn transmute_map(v: &Val<'_>) -> Result<Option<HashMap<IpAddr, IpAddr>>, ConfigError> {
    if !v.is_map() {
        return Ok(v.as_bool()?.then(HashMap::new));
    }
    let mut m = v.map()?;
    let mut out = HashMap::new();
    for (key, val) in m.rest() {
        let local: IpAddr = key
            .trim()
            .parse()
            .map_err(|_| val.err(format!("invalid local IP address {key:?}")))?;
        out.insert(local.to_canonical(), values::ip_addr(&val)?);
    }
    m.finish()?;
    Ok(Some(out))
}
