//! Policy checks on a requested target, before any connection is made.

use px_core::UpstreamAddr;

use super::config::CommonServerConfig;

/// Why a target was refused by the server's own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// `dst_port_filter` refused the port.
    Port(u16),
    /// `dst_host_filter_set` refused the host.
    Host(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Port(p) => write!(f, "port {p} is not allowed"),
            Denied::Host(h) => write!(f, "host {h} is not allowed"),
        }
    }
}

/// Checks a target against the server's port and host filters.
pub fn check_target(cfg: &CommonServerConfig, target: &UpstreamAddr) -> Result<(), Denied> {
    if let Some(ports) = &cfg.dst_port_filter
        && !ports.check(target.port).permits()
    {
        cfg.stats.add_dest_denied();
        return Err(Denied::Port(target.port));
    }
    if let Some(hosts) = &cfg.dst_host_filter
        && !hosts.check(&target.host).permits()
    {
        cfg.stats.add_dest_denied();
        return Err(Denied::Host(target.host.to_string()));
    }
    Ok(())
}
