//! The egress network filter: the user's rule plus built-in forbidden networks.
//!
//! Built-in records (added unless the user wrote a record for the very same
//! network; the longest matching prefix decides, so a user record for the same
//! or a more specific network wins, and a less specific one does not):
//!
//! | network | why |
//! |---|---|
//! | `0.0.0.0/8`, `::/128` | unspecified / "this network" |
//! | `127.0.0.0/8`, `::1/128` | loopback |
//! | `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` | private (RFC 1918) |
//! | `fc00::/7` | unique local (RFC 4193) |
//! | `169.254.0.0/16`, `fe80::/10` | link-local |
//! | `224.0.0.0/4`, `ff00::/8` | multicast |
//! | `255.255.255.255/32` | limited broadcast |
//! | `100::/64` | discard-only (RFC 6666) |
//!
//! IPv4-mapped IPv6 addresses are checked as IPv4. Without the key, every
//! other address is permitted; with it, the rule's `default` applies (forbid
//! when omitted, as for every g3proxy ACL rule).

use ipnet::IpNet;
use px_core::value::{AclAction, NetworkAcl};

/// The built-in forbidden networks (see the module doc).
pub const DEFAULT_FORBIDDEN: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "100::/64",
];

/// The effective egress filter: the user's rule (or permit-all) plus the defaults.
pub fn egress_filter(user: Option<NetworkAcl>) -> NetworkAcl {
    let mut acl = user.unwrap_or_else(NetworkAcl::permit_all);
    for net in DEFAULT_FORBIDDEN {
        if let Ok(net) = net.parse::<IpNet>() {
            acl.add_default(net, AclAction::Forbid);
        }
    }
    acl
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn permits(acl: &NetworkAcl, ip: &str) -> bool {
        acl.check(ip.parse().unwrap()).permits()
    }

    #[test]
    fn defaults_forbid_local_networks() {
        let acl = egress_filter(None);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "100::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!permits(&acl, ip), "{ip} should be forbidden");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(permits(&acl, ip), "{ip} should be permitted");
        }
    }

    #[test]
    fn user_records_win_for_same_or_more_specific() {
        let user = NetworkAcl {
            missed: AclAction::Permit,
            records: vec![
                ("127.0.0.1/32".parse().unwrap(), AclAction::Permit),
                ("10.0.0.0/8".parse().unwrap(), AclAction::Permit),
                ("0.0.0.0/0".parse().unwrap(), AclAction::Permit),
            ],
        };
        let acl = egress_filter(Some(user));
        assert!(permits(&acl, "127.0.0.1"));
        assert!(!permits(&acl, "127.0.0.2"));
        assert!(permits(&acl, "10.9.9.9"));
        // a less specific user record does not open a built-in network
        assert!(!permits(&acl, "192.168.0.1"));
        // `{default: allow}` alone keeps loopback closed
        let acl = egress_filter(Some(NetworkAcl::permit_all()));
        assert!(!permits(&acl, "127.0.0.1"));
    }
}
