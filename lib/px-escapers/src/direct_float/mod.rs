//! `direct_float`: reach targets from this host, like `direct_fixed`, but
//! from bind addresses published at run time (the user guide's Dynamic Route
//! Binding): `g3proxy-ctl -G GROUP escaper NAME publish '{"ipv4": "..."}'`.
//!
//! TCP connects and UDP relays pick a random alive (not expired) published
//! address of the target's family per task; a family with none is not used,
//! and a task finds no usable family fails with a clear error. The published
//! set lives in the escaper object, so reloading other modules keeps it; the
//! `cache_ipv4` / `cache_ipv6` files keep it across restarts and reloads of
//! this escaper (read at build, written on every publish). Everything else
//! (resolver, egress filter, happy eyeballs, socket options) is
//! `direct_fixed`'s code.
//!
//! ```yaml
//! escaper:
//!   - name: float
//!     type: direct_float
//!     resolver: default
//!     cache_ipv4: /var/lib/g3proxy/float-v4.json
//! ```

pub mod bind;
pub mod config;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use px_core::{
    ConnectError, Escaper, ModuleLookup, QueryStrategy, ResolveStrategy, TcpConnectRequest,
    UdpRelay, UdpRelayRequest, UpstreamConn,
};
use px_socket::{Bind, BindIp};
use px_yaml::{ConfigError, MapReader};

use crate::direct_fixed::udp::DirectUdpRelay;
use crate::direct_fixed::{DirectFixedConfig, connect_direct};
use bind::{BindEntry, load_cache, parse_published, save_cache};
pub use config::DirectFloatConfig;

/// The `direct_float` escaper.
pub struct DirectFloat {
    name: String,
    direct: Arc<DirectFixedConfig>,
    cache_ipv4: Option<std::path::PathBuf>,
    cache_ipv6: Option<std::path::PathBuf>,
    v4: RwLock<Vec<BindEntry>>,
    v6: RwLock<Vec<BindEntry>>,
    stats: Arc<px_core::stats::EscaperStats>,
}

/// Builds a `direct_float` escaper (the factory of `type: direct_float`);
/// the cache files are read here, so a broken one is a config error.
pub fn build_direct_float(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Escaper>, ConfigError> {
    let at = map.val().clone();
    let cfg = DirectFloatConfig::parse(map, lookup)?;
    let load = |p: &Option<std::path::PathBuf>, v6: bool| match p {
        Some(p) => load_cache(p, v6).map_err(|e| at.err(e)),
        None => Ok(Vec::new()),
    };
    let v4 = load(&cfg.cache_ipv4, false)?;
    let v6 = load(&cfg.cache_ipv6, true)?;
    if !v4.is_empty() || !v6.is_empty() {
        log::info!(
            "escaper {name}: {} IPv4 and {} IPv6 bind addresses restored from cache",
            v4.len(),
            v6.len()
        );
    }
    Ok(Arc::new(DirectFloat {
        name: name.to_string(),
        direct: Arc::new(cfg.direct),
        cache_ipv4: cfg.cache_ipv4,
        cache_ipv6: cfg.cache_ipv6,
        v4: RwLock::new(v4),
        v6: RwLock::new(v6),
        stats: crate::common::stats::escaper_stats(lookup, name),
    }))
}

fn pick(set: &RwLock<Vec<BindEntry>>, usable: bool, now: SystemTime) -> BindIp {
    if !usable {
        return BindIp::Unavailable;
    }
    let g = set.read().unwrap_or_else(|e| e.into_inner());
    let alive: Vec<IpAddr> = g.iter().filter(|e| e.alive(now)).map(|e| e.ip).collect();
    match alive.len() {
        0 => BindIp::Unavailable,
        1 => BindIp::Ip(alive[0]),
        n => BindIp::Ip(alive[px_socket::rand::index(n)]),
    }
}

impl DirectFloat {
    /// The bind addresses for one task, or an error when none is published.
    fn pick_bind(&self) -> Result<Bind, ConnectError> {
        let now = SystemTime::now();
        let bind = Bind {
            v4: pick(&self.v4, !self.direct.no_ipv4, now),
            v6: pick(&self.v6, !self.direct.no_ipv6, now),
        };
        if bind.v4 == BindIp::Unavailable && bind.v6 == BindIp::Unavailable {
            return Err(ConnectError::Io(std::io::Error::other(format!(
                "escaper {}: no bind address published (g3proxy-ctl escaper {} publish)",
                self.name, self.name
            ))));
        }
        Ok(bind)
    }

    /// The task's strategy narrowed to the families that have an address.
    fn strategy(&self, requested: Option<ResolveStrategy>, bind: &Bind) -> ResolveStrategy {
        let mut s = self.direct.strategy_for(requested);
        let v4 = bind.v4 != BindIp::Unavailable;
        let v6 = bind.v6 != BindIp::Unavailable;
        s.query = match (s.query, v4, v6) {
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

    /// The published addresses now (alive or not), per family.
    pub fn published(&self) -> (Vec<IpAddr>, Vec<IpAddr>) {
        let ips = |l: &RwLock<Vec<BindEntry>>| {
            let g = l.read().unwrap_or_else(|e| e.into_inner());
            g.iter().map(|e| e.ip).collect()
        };
        (ips(&self.v4), ips(&self.v6))
    }
}

#[async_trait]
impl Escaper for DirectFloat {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "direct_float"
    }

    async fn connect_tcp(&self, req: &TcpConnectRequest) -> Result<UpstreamConn, ConnectError> {
        let bind = match self.pick_bind() {
            Ok(b) => b,
            Err(e) => {
                // counted as an attempt that did not get anywhere, as before
                self.stats.add_attempt();
                return Err(e);
            }
        };
        let strategy = self.strategy(req.resolve_strategy, &bind);
        connect_direct(&self.name, &self.direct, &self.stats, req, strategy, &bind).await
    }

    async fn open_udp(&self, req: &UdpRelayRequest) -> Result<Box<dyn UdpRelay>, ConnectError> {
        self.stats.add_task();
        let bind = self.pick_bind()?;
        let strategy = self.strategy(req.resolve_strategy, &bind);
        Ok(Box::new(DirectUdpRelay::new(
            Arc::clone(&self.direct),
            strategy,
            bind,
        )))
    }

    fn publish(&self, json: &str) -> Result<(), String> {
        let (v4, v6) = parse_published(json)?;
        let mut notes = Vec::new();
        for (set, lock, cache, label) in [
            (v4, &self.v4, &self.cache_ipv4, "ipv4"),
            (v6, &self.v6, &self.cache_ipv6, "ipv6"),
        ] {
            let Some(set) = set else { continue };
            if let Some(path) = cache
                && let Err(e) = save_cache(path, &set)
            {
                // the new set still applies; only the restart copy is stale
                notes.push(format!("{label} cache {}: {e}", path.display()));
            }
            log::info!(
                "escaper {}: {} {label} bind addresses published",
                self.name,
                set.len()
            );
            *lock.write().unwrap_or_else(|e| e.into_inner()) = set;
        }
        if notes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "published, but the cache was not written: {}",
                notes.join("; ")
            ))
        }
    }
}
