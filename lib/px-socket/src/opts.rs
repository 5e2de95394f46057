//! Socket option sets as g3proxy configures them (`tcp_misc_opts`,
//! `tcp_keepalive`, `udp_misc_opts`) and how they are applied.

use std::io;
use std::time::Duration;

use socket2::{Socket, TcpKeepalive};

/// `tcp_misc_opts`: TCP_NODELAY, TCP_MAXSEG, IP_TTL, IP_TOS, SO_MARK.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpMiscOpts {
    /// TCP_NODELAY; `None` means the caller's default (escapers: enabled).
    pub no_delay: Option<bool>,
    /// TCP_MAXSEG.
    pub mss: Option<u32>,
    /// IP_TTL (IPV6_UNICAST_HOPS for IPv6).
    pub ttl: Option<u32>,
    /// IP_TOS (IPV6_TCLASS for IPv6).
    pub tos: Option<u8>,
    /// SO_MARK.
    pub mark: Option<u32>,
}

/// `tcp_keepalive`: whether to enable it and its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepaliveOpts {
    /// SO_KEEPALIVE.
    pub enable: bool,
    /// TCP_KEEPIDLE (g3proxy default 60s).
    pub idle_time: Duration,
    /// TCP_KEEPINTVL; the OS default when unset.
    pub probe_interval: Option<Duration>,
    /// TCP_KEEPCNT; the OS default when unset.
    pub probe_count: Option<u32>,
}

impl Default for TcpKeepaliveOpts {
    fn default() -> Self {
        TcpKeepaliveOpts {
            enable: false,
            idle_time: Duration::from_secs(60),
            probe_interval: None,
            probe_count: None,
        }
    }
}

/// `udp_misc_opts`: IP_TTL, IP_TOS, SO_MARK.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpMiscOpts {
    /// IP_TTL (IPV6_UNICAST_HOPS for IPv6).
    pub ttl: Option<u32>,
    /// IP_TOS (IPV6_TCLASS for IPv6).
    pub tos: Option<u8>,
    /// SO_MARK.
    pub mark: Option<u32>,
}

fn apply_ip_opts(
    s: &Socket,
    v6: bool,
    ttl: Option<u32>,
    tos: Option<u8>,
    mark: Option<u32>,
) -> io::Result<()> {
    if let Some(mark) = mark {
        s.set_mark(mark)?;
    }
    if let Some(ttl) = ttl {
        if v6 {
            s.set_unicast_hops_v6(ttl)?;
        } else {
            s.set_ttl_v4(ttl)?;
        }
    }
    if let Some(tos) = tos {
        if v6 {
            s.set_tclass_v6(u32::from(tos))?;
        } else {
            s.set_tos_v4(u32::from(tos))?;
        }
    }
    Ok(())
}

impl TcpMiscOpts {
    /// Applies the options that must be set before connect (all but TCP_NODELAY,
    /// which is applied with `default_no_delay` when unset).
    pub fn apply(&self, s: &Socket, v6: bool, default_no_delay: bool) -> io::Result<()> {
        apply_ip_opts(s, v6, self.ttl, self.tos, self.mark)?;
        if let Some(mss) = self.mss {
            s.set_tcp_mss(mss)?;
        }
        s.set_tcp_nodelay(self.no_delay.unwrap_or(default_no_delay))
    }
}

impl TcpKeepaliveOpts {
    /// Enables keepalive with its timers, when enabled.
    pub fn apply(&self, s: &Socket) -> io::Result<()> {
        if !self.enable {
            return Ok(());
        }
        let mut ka = TcpKeepalive::new().with_time(self.idle_time);
        if let Some(i) = self.probe_interval {
            ka = ka.with_interval(i);
        }
        if let Some(c) = self.probe_count {
            ka = ka.with_retries(c);
        }
        s.set_tcp_keepalive(&ka)
    }
}

impl UdpMiscOpts {
    /// Applies the options to a UDP socket.
    pub fn apply(&self, s: &Socket, v6: bool) -> io::Result<()> {
        apply_ip_opts(s, v6, self.ttl, self.tos, self.mark)
    }
}
