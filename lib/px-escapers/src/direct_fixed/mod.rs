//! `direct_fixed`: reach targets from this host.
//!
//! TCP: resolve the target with the escaper's resolver (the request's
//! `resolve_strategy` overrides the escaper's), drop addresses the egress
//! network filter forbids, pick a bind IP per family, and connect the
//! happy-eyeballs way ([`px_socket::happy_eyeballs_connect`]). The connection
//! carries the escaper's `tcp_sock_speed_limit` for the relay.
//!
//! UDP: a relay that sends to any target (resolving domains and filtering
//! every datagram's address), binds one socket per family lazily, and
//! receives from all of them ([`udp`]).
//!
//! ```yaml
//! escaper:
//!   - name: default
//!     type: direct_fixed
//!     resolver: default
//!     egress_network_filter: {default: allow, allow: 127.0.0.1}
//! ```

pub mod config;
pub mod udp;

use std::sync::Arc;

use async_trait::async_trait;
use px_core::{
    ConnectError, Escaper, ModuleLookup, QueryStrategy, ResolveStrategy, TcpConnectRequest,
    UdpRelay, UdpRelayRequest, UpstreamConn, UpstreamStream,
};
use px_socket::{Bind, BindIp, happy_eyeballs_connect};
use px_yaml::{ConfigError, MapReader};

pub use config::DirectFixedConfig;

/// The `direct_fixed` escaper.
pub struct DirectFixed {
    name: String,
    cfg: Arc<DirectFixedConfig>,
    stats: Arc<px_core::stats::EscaperStats>,
}

/// Builds a `direct_fixed` escaper (the factory of `type: direct_fixed`).
pub fn build_direct_fixed(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Escaper>, ConfigError> {
    let cfg = DirectFixedConfig::parse(map, lookup)?;
    Ok(Arc::new(DirectFixed {
        stats: crate::common::stats::escaper_stats(lookup, name),
        ..DirectFixed::new(name, cfg)
    }))
}

/// A random element of a non-empty list as a bind choice.
fn pick(list: &[std::net::IpAddr], usable: bool) -> BindIp {
    if !usable {
        return BindIp::Unavailable;
    }
    match list.len() {
        0 => BindIp::Any,
        1 => BindIp::Ip(list[0]),
        n => BindIp::Ip(list[px_socket::rand::index(n)]),
    }
}

impl DirectFixed {
    /// An escaper from a parsed config.
    pub fn new(name: &str, cfg: DirectFixedConfig) -> Self {
        DirectFixed {
            name: name.to_string(),
            cfg: Arc::new(cfg),
            stats: px_core::stats::EscaperStats::detached(name),
        }
    }

    /// The parsed config.
    pub fn config(&self) -> &DirectFixedConfig {
        &self.cfg
    }
}

impl DirectFixedConfig {
    /// Picks the bind IPs for one connection (a random one per family).
    pub fn pick_bind(&self) -> Bind {
        Bind {
            v4: pick(&self.bind_v4, self.ipv4_usable()),
            v6: pick(&self.bind_v6, self.ipv6_usable()),
        }
    }

    /// The strategy for one task: the request's override or the escaper's,
    /// narrowed to the usable families.
    pub fn strategy_for(&self, requested: Option<ResolveStrategy>) -> ResolveStrategy {
        let mut s = requested.unwrap_or(self.resolve_strategy);
        s.query = match (s.query, self.ipv4_usable(), self.ipv6_usable()) {
            (QueryStrategy::Ipv4First | QueryStrategy::Ipv6First, true, false) => {
                QueryStrategy::Ipv4Only
            }
            (QueryStrategy::Ipv4First | QueryStrategy::Ipv6First, false, true) => {
                QueryStrategy::Ipv6Only
            }
            (q, _, _) => q,
        };
        s
    }
}

#[async_trait]
impl Escaper for DirectFixed {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "direct_fixed"
    }

    async fn connect_tcp(&self, req: &TcpConnectRequest) -> Result<UpstreamConn, ConnectError> {
        let strategy = self.cfg.strategy_for(req.resolve_strategy);
        let bind = self.cfg.pick_bind();
        connect_direct(&self.name, &self.cfg, &self.stats, req, strategy, &bind).await
    }

    async fn open_udp(&self, req: &UdpRelayRequest) -> Result<Box<dyn UdpRelay>, ConnectError> {
        self.stats.add_task();
        let strategy = self.cfg.strategy_for(req.resolve_strategy);
        Ok(Box::new(udp::DirectUdpRelay::new(
            Arc::clone(&self.cfg),
            strategy,
            self.cfg.pick_bind(),
        )))
    }
}

/// The direct connect both direct escapers share: resolve, filter egress,
/// happy-eyeballs connect from `bind`, count the outcome.
pub(crate) async fn connect_direct(
    name: &str,
    cfg: &DirectFixedConfig,
    stats: &px_core::stats::EscaperStats,
    req: &TcpConnectRequest,
    strategy: px_core::ResolveStrategy,
    bind: &px_socket::Bind,
) -> Result<UpstreamConn, ConnectError> {
    stats.add_attempt();
    let resolver = cfg.resolver.get();
    let connected = happy_eyeballs_connect(
        &*resolver,
        &req.target,
        strategy,
        &cfg.egress_filter,
        bind,
        &cfg.egress,
    )
    .await;
    let (stream, peer_addr) = crate::common::stats::connected(stats, connected)?;
    let local_addr = stream.local_addr().map_err(ConnectError::Io)?;
    log::debug!(
        "escaper {name}: {} -> {peer_addr} via {local_addr}",
        req.target
    );
    Ok(UpstreamConn {
        stream: UpstreamStream::Tcp(stream),
        local_addr,
        peer_addr,
        speed_limit: cfg.tcp_speed_limit,
    })
}
