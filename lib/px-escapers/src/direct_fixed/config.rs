//! The `direct_fixed` config.
//!
//! ```yaml
//! name: default
//! type: direct_fixed
//! resolver: default                 # required
//! resolve_strategy: IPv4First       # or {query: IPv6First, pick: random}
//! bind_ip: [192.0.2.10, 2001:db8::10]
//! egress_network_filter:            # also spelled egress_net_filter
//!   default: allow
//!   allow: 127.0.0.1
//! tcp_connect: {max_retry: 2, each_timeout: 30s}
//! happy_eyeballs: {resolution_delay: 50ms, connection_attempt_delay: 250ms}
//! tcp_sock_speed_limit: 10M/s       # aliases tcp_conn_speed_limit, tcp_conn_limit
//! udp_sock_speed_limit: 1M/s        # aliases udp_relay_speed_limit, udp_relay_limit
//! tcp_keepalive: 60s
//! tcp_misc_opts: {no_delay: true}
//! udp_misc_opts: {ttl: 64}
//! no_ipv6: false
//! ```
//!
//! Every key is described in `doc/config/escaper/direct_fixed.md`.

use std::net::IpAddr;
use std::sync::Arc;

use px_core::value::{NetworkAcl, SpeedLimit, UdpSpeedLimit};
use px_core::{Handle, ModuleLookup, QueryStrategy, ResolveStrategy, Resolver};
use px_socket::{EgressConfig, UdpMiscOpts};
use px_yaml::{ConfigError, MapReader, values};

use crate::common::config as common;

/// g3proxy's direct_fixed keys this proxy does not implement yet.
const UNIMPLEMENTED: &[&str] = &[
    "shared_logger",
    "bind_interface",
    "resolve_redirection",
    "enable_path_selection",
    "use_proxy_protocol",
    "extra_metrics_tags",
];

/// The parsed `direct_fixed` config.
pub struct DirectFixedConfig {
    /// `resolver`: the resolver module's handle (the current one is taken per task).
    pub resolver: Arc<Handle<dyn Resolver>>,
    /// `resolve_strategy` (IPv4First by default).
    pub resolve_strategy: ResolveStrategy,
    /// `bind_ip`, the IPv4 ones.
    pub bind_v4: Vec<IpAddr>,
    /// `bind_ip`, the IPv6 ones.
    pub bind_v6: Vec<IpAddr>,
    /// `no_ipv4`.
    pub no_ipv4: bool,
    /// `no_ipv6`.
    pub no_ipv6: bool,
    /// `egress_network_filter` with its built-in defaults.
    pub egress_filter: NetworkAcl,
    /// `tcp_connect`, `happy_eyeballs`, `tcp_misc_opts`, `tcp_keepalive`.
    pub egress: EgressConfig,
    /// `tcp_sock_speed_limit`.
    pub tcp_speed_limit: SpeedLimit,
    /// `udp_sock_speed_limit`.
    pub udp_speed_limit: UdpSpeedLimit,
    /// `udp_misc_opts`.
    pub udp_misc: UdpMiscOpts,
}

impl DirectFixedConfig {
    /// True when IPv4 targets can be reached (not disabled, and a bind IP of
    /// that family exists if any bind IP is configured).
    pub fn ipv4_usable(&self) -> bool {
        !self.no_ipv4 && (!self.bind_v4.is_empty() || self.bind_v6.is_empty())
    }

    /// True when IPv6 targets can be reached (see [`Self::ipv4_usable`]).
    pub fn ipv6_usable(&self) -> bool {
        !self.no_ipv6 && (!self.bind_v6.is_empty() || self.bind_v4.is_empty())
    }

    /// Parses the map (with `name` and `type` already taken), then checks for leftover keys.
    pub fn parse(mut map: MapReader<'_>, lookup: &dyn ModuleLookup) -> Result<Self, ConfigError> {
        map.unimplemented(UNIMPLEMENTED)?;
        let rv = map.required("resolver")?;
        let resolver = lookup.resolver(rv.as_str()?).map_err(|e| rv.err(e))?;
        let mut cfg = DirectFixedConfig {
            resolver,
            resolve_strategy: ResolveStrategy::default(),
            bind_v4: Vec::new(),
            bind_v6: Vec::new(),
            no_ipv4: false,
            no_ipv6: false,
            egress_filter: common::egress_network_filter(&mut map)?,
            egress: EgressConfig::default(),
            tcp_speed_limit: SpeedLimit::default(),
            udp_speed_limit: UdpSpeedLimit::default(),
            udp_misc: UdpMiscOpts::default(),
        };
        let strategy_val = map.get("resolve_strategy");
        if let Some(v) = &strategy_val {
            cfg.resolve_strategy = values::resolve_strategy(v)?;
        }
        if let Some(v) = map.get("bind_ip") {
            (cfg.bind_v4, cfg.bind_v6) = common::bind_ips(&v)?;
        }
        if let Some(v) = map.get("no_ipv4") {
            cfg.no_ipv4 = v.as_bool()?;
        }
        if let Some(v) = map.get("no_ipv6") {
            cfg.no_ipv6 = v.as_bool()?;
        }
        if let Some(v) = map.get("tcp_connect") {
            cfg.egress.tcp_connect = common::tcp_connect(&v)?;
        }
        if let Some(v) = map.get("happy_eyeballs") {
            cfg.egress.happy_eyeballs = common::happy_eyeballs(&v)?;
        }
        if let Some(v) = map.get("tcp_keepalive") {
            cfg.egress.keepalive = common::tcp_keepalive(&v)?;
        }
        if let Some(v) = map.get("tcp_misc_opts") {
            cfg.egress.misc = common::tcp_misc_opts(&v)?;
        }
        if let Some(v) = map.get("udp_misc_opts") {
            cfg.udp_misc = common::udp_misc_opts(&v)?;
        }
        if let Some(v) = map.get_any(&[
            "tcp_sock_speed_limit",
            "tcp_conn_speed_limit",
            "tcp_conn_limit",
        ]) {
            cfg.tcp_speed_limit = values::tcp_speed_limit(&v)?;
        }
        if let Some(v) = map.get_any(&[
            "udp_sock_speed_limit",
            "udp_relay_speed_limit",
            "udp_relay_limit",
        ]) {
            cfg.udp_speed_limit = values::udp_speed_limit(&v)?;
        }

        let (v4, v6) = (cfg.ipv4_usable(), cfg.ipv6_usable());
        if !v4 && !v6 {
            return Err(map.err("no address family is usable (no_ipv4, no_ipv6 and bind_ip)"));
        }
        let conflict = match cfg.resolve_strategy.query {
            QueryStrategy::Ipv4Only => !v4,
            QueryStrategy::Ipv6Only => !v6,
            QueryStrategy::Ipv4First | QueryStrategy::Ipv6First => false,
        };
        if conflict {
            let msg =
                "resolve_strategy asks for an address family that no_ipv4/no_ipv6/bind_ip disable";
            return Err(match &strategy_val {
                Some(v) => v.err(msg),
                None => map.err(msg),
            });
        }
        map.finish()?;
        Ok(cfg)
    }
}
