//! Typed config values shared by several module types: listen sockets, speed
//! limits and ACL rules (network, port, destination host).
//!
//! `px-yaml` parses them from YAML; servers and escapers evaluate them.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::addr::Host;

/// A TCP listen socket config (`listen:` as a port, an address or a map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// The address to bind.
    pub address: SocketAddr,
    /// The accept backlog (g3proxy default 4096).
    pub backlog: u32,
    /// IPV6_V6ONLY for `[::]` listeners.
    pub ipv6_only: bool,
    /// SO_MARK for the listening socket.
    pub netfilter_mark: Option<u32>,
    /// How many listening sockets (SO_REUSEPORT) to open, `scale` applied.
    pub instance: usize,
    /// `follow_cpu_affinity`: pin per-worker listeners to their worker's CPU
    /// (SO_INCOMING_CPU), or hand each accepted connection to the worker
    /// pinned to the CPU it came in on.
    pub follow_cpu_affinity: bool,
    /// The server's `listen_in_worker`: one listener per worker runtime, each
    /// accepting on its worker (when the daemon has workers).
    pub in_worker: bool,
}

impl ListenConfig {
    /// A listen config with g3proxy's defaults for everything but the address.
    pub fn new(address: SocketAddr) -> Self {
        ListenConfig {
            address,
            backlog: 4096,
            ipv6_only: false,
            netfilter_mark: None,
            instance: 1,
            follow_cpu_affinity: false,
            in_worker: false,
        }
    }
}

/// A per-socket TCP speed limit: bytes per time slice of 2^shift_millis ms, each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpeedLimit {
    /// The time slice is 2^shift_millis milliseconds (0..=12).
    pub shift_millis: u8,
    /// Max bytes from client to target per slice; `None` is unlimited.
    pub upload: Option<u64>,
    /// Max bytes from target to client per slice; `None` is unlimited.
    pub download: Option<u64>,
}

impl SpeedLimit {
    /// True when neither direction is limited.
    pub fn is_unlimited(&self) -> bool {
        self.upload.is_none() && self.download.is_none()
    }

    /// The stricter of two limits in each direction (server vs escaper vs user),
    /// compared as bytes per second.
    pub fn stricter(self, other: SpeedLimit) -> SpeedLimit {
        fn per_sec(v: Option<u64>, shift: u8) -> Option<u64> {
            v.map(|b| b.saturating_mul(1000) >> shift)
        }
        let pick = |a: Option<u64>, sa: u8, b: Option<u64>, sb: u8| -> (Option<u64>, u8) {
            match (per_sec(a, sa), per_sec(b, sb)) {
                (None, None) => (None, sa),
                (Some(_), None) => (a, sa),
                (None, Some(_)) => (b, sb),
                (Some(x), Some(y)) if x <= y => (a, sa),
                _ => (b, sb),
            }
        };
        let (up, up_shift) = pick(
            self.upload,
            self.shift_millis,
            other.upload,
            other.shift_millis,
        );
        let (down, down_shift) = pick(
            self.download,
            self.shift_millis,
            other.download,
            other.shift_millis,
        );
        // rescale both to one slice width
        let shift = up_shift.max(down_shift);
        let rescale = |v: Option<u64>, s: u8| v.map(|b| b << (shift - s));
        SpeedLimit {
            shift_millis: shift,
            upload: rescale(up, up_shift),
            download: rescale(down, down_shift),
        }
    }
}

/// A per-socket UDP speed limit: bytes and packets per time slice, each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpSpeedLimit {
    /// The time slice is 2^shift_millis milliseconds (0..=12).
    pub shift_millis: u8,
    /// Max bytes upstream per slice.
    pub upload_bytes: Option<u64>,
    /// Max bytes downstream per slice.
    pub download_bytes: Option<u64>,
    /// Max packets upstream per slice.
    pub upload_packets: Option<u64>,
    /// Max packets downstream per slice.
    pub download_packets: Option<u64>,
}

/// An ACL action, in match priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclAction {
    /// Forbid and log.
    ForbidLog,
    /// Forbid.
    Forbid,
    /// Permit and log.
    PermitLog,
    /// Permit.
    Permit,
}

impl AclAction {
    /// True for the permit actions.
    pub fn permits(self) -> bool {
        matches!(self, AclAction::Permit | AclAction::PermitLog)
    }

    /// Parses g3proxy's action names and their alternatives.
    pub fn parse(s: &str) -> Option<AclAction> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "forbid_log" | "deny_log" | "reject_log" => Some(AclAction::ForbidLog),
            "forbid" | "deny" | "reject" => Some(AclAction::Forbid),
            "permit_log" | "allow_log" | "accept_log" => Some(AclAction::PermitLog),
            "permit" | "allow" | "accept" => Some(AclAction::Permit),
            _ => None,
        }
    }
}

/// A network ACL rule: records of networks with actions, longest prefix wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAcl {
    /// The action when no record matches.
    pub missed: AclAction,
    /// The records.
    pub records: Vec<(IpNet, AclAction)>,
}

impl NetworkAcl {
    /// A rule that permits everything.
    pub fn permit_all() -> Self {
        NetworkAcl {
            missed: AclAction::Permit,
            records: Vec::new(),
        }
    }

    /// The action for an address (IPv4-mapped IPv6 addresses are checked as IPv4).
    pub fn check(&self, ip: IpAddr) -> AclAction {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let mut best: Option<(u8, AclAction)> = None;
        for (net, action) in &self.records {
            if net.contains(&ip) {
                let len = net.prefix_len();
                match best {
                    Some((l, a)) if l > len || (l == len && a <= *action) => {}
                    _ => best = Some((len, *action)),
                }
            }
        }
        best.map(|(_, a)| a).unwrap_or(self.missed)
    }

    /// Adds a record unless the user already wrote one for the same network.
    pub fn add_default(&mut self, net: IpNet, action: AclAction) {
        if !self.records.iter().any(|(n, _)| *n == net) {
            self.records.push((net, action));
        }
    }
}

/// A port ACL rule (`dst_port_filter`): ports and ranges with actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAcl {
    /// The action when no record matches.
    pub missed: AclAction,
    /// Inclusive port ranges with their actions.
    pub records: Vec<(u16, u16, AclAction)>,
}

impl PortAcl {
    /// The action for a port; the strictest matching record wins.
    pub fn check(&self, port: u16) -> AclAction {
        self.records
            .iter()
            .filter(|(s, e, _)| *s <= port && port <= *e)
            .map(|(_, _, a)| *a)
            .min()
            .unwrap_or(self.missed)
    }
}

/// One rule of a host ACL set, generic over its record type.
#[derive(Debug, Clone)]
pub struct AclRule<T> {
    /// The action when no record matches.
    pub missed: AclAction,
    /// The records.
    pub records: Vec<(T, AclAction)>,
}

/// A destination host ACL set (`dst_host_filter_set`): exact, child, regex, subnet.
#[derive(Debug, Clone, Default)]
pub struct HostAclSet {
    /// Exact hosts (domains or IPs).
    pub exact: Option<AclRule<Host>>,
    /// Parent domains: matches the domain and all its children.
    pub child: Option<AclRule<String>>,
    /// Regular expressions on the domain.
    pub regex: Option<AclRule<regex::Regex>>,
    /// Networks for IP hosts.
    pub subnet: Option<NetworkAcl>,
}

impl HostAclSet {
    /// The action for a host: the first rule with a matching record decides,
    /// in the order exact, child, regex, subnet; if none matches, the strictest
    /// missed action of the rules present.
    pub fn check(&self, host: &Host) -> AclAction {
        if let Some((_, a)) = self
            .exact
            .as_ref()
            .and_then(|rule| rule.records.iter().find(|(h, _)| h == host))
        {
            return *a;
        }
        if let Host::Domain(d) = host {
            if let Some(rule) = &self.child {
                let hit = rule.records.iter().find(|(parent, _)| {
                    d == parent
                        || (d.len() > parent.len()
                            && d.ends_with(parent.as_str())
                            && d.as_bytes()[d.len() - parent.len() - 1] == b'.')
                });
                if let Some((_, a)) = hit {
                    return *a;
                }
            }
            if let Some((_, a)) = self
                .regex
                .as_ref()
                .and_then(|rule| rule.records.iter().find(|(re, _)| re.is_match(d)))
            {
                return *a;
            }
        }
        if let (Host::Ip(ip), Some(rule)) = (host, &self.subnet)
            && rule.records.iter().any(|(n, _)| n.contains(ip))
        {
            return rule.check(*ip);
        }
        [
            self.exact.as_ref().map(|r| r.missed),
            self.child.as_ref().map(|r| r.missed),
            self.regex.as_ref().map(|r| r.missed),
            self.subnet.as_ref().map(|r| r.missed),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(AclAction::Permit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn network_longest_prefix_wins() {
        let acl = NetworkAcl {
            missed: AclAction::Permit,
            records: vec![
                ("127.0.0.0/8".parse().unwrap(), AclAction::Forbid),
                ("127.0.0.2/32".parse().unwrap(), AclAction::Permit),
            ],
        };
        assert_eq!(acl.check("127.0.0.1".parse().unwrap()), AclAction::Forbid);
        assert_eq!(acl.check("127.0.0.2".parse().unwrap()), AclAction::Permit);
        assert_eq!(
            acl.check("::ffff:127.0.0.1".parse().unwrap()),
            AclAction::Forbid
        );
        assert_eq!(acl.check("8.8.8.8".parse().unwrap()), AclAction::Permit);
    }

    #[test]
    fn host_set_order() {
        let set = HostAclSet {
            exact: Some(AclRule {
                missed: AclAction::Forbid,
                records: vec![(Host::Domain("ipinfo.io".into()), AclAction::Permit)],
            }),
            child: Some(AclRule {
                missed: AclAction::Forbid,
                records: vec![("ipip.net".into(), AclAction::Permit)],
            }),
            regex: Some(AclRule {
                missed: AclAction::Forbid,
                records: vec![(
                    regex::Regex::new("lum[a-z]*[.]com$").unwrap(),
                    AclAction::Permit,
                )],
            }),
            subnet: None,
        };
        let d = |s: &str| Host::Domain(s.into());
        assert!(set.check(&d("ipinfo.io")).permits());
        assert!(set.check(&d("myip.ipip.net")).permits());
        assert!(!set.check(&d("xipip.net")).permits());
        assert!(set.check(&d("lumtest.com")).permits());
        assert!(!set.check(&d("example.com")).permits());
    }

    #[test]
    fn stricter_speed_limit() {
        let a = SpeedLimit {
            shift_millis: 10,
            upload: Some(1000),
            download: None,
        };
        let b = SpeedLimit {
            shift_millis: 10,
            upload: Some(500),
            download: Some(10),
        };
        let c = a.stricter(b);
        assert_eq!(c.upload, Some(500));
        assert_eq!(c.download, Some(10));
    }
}
