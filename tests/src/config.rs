//! The g3proxy YAML the tests start from: one resolver, one `direct_fixed` escaper whose
//! egress filter allows 127.0.0.1 (the targets) and denies 127.0.0.2 (the refused
//! target), an `http_proxy` and a `socks_proxy` server, each optional and each with room
//! for extra keys. Key names follow g3's reference (`sphinx/g3proxy/configuration/`).
//!
//! ```text
//! log: stdout
//! resolver:
//!   - name: default
//!     type: c-ares
//!     server: 127.0.0.1:DNS_PORT
//! escaper:
//!   - name: default
//!     type: direct_fixed
//!     resolver: default
//!     egress_network_filter:
//!       default: allow
//!       allow: 127.0.0.1
//!       deny: 127.0.0.2
//! server:
//!   - name: http
//!     type: http_proxy
//!     escaper: default
//!     listen: 127.0.0.1:HTTP_PORT
//!   - name: socks
//!     type: socks_proxy
//!     escaper: default
//!     listen: 127.0.0.1:SOCKS_PORT
//!     enable_udp_associate: true
//! ```

/// The IP the egress filter refuses; targets on it exist, so only the filter can stop them.
pub const DENIED_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// Builder for the standard test config.
#[derive(Debug, Clone, Default)]
pub struct Standard {
    http: Option<u16>,
    socks: Option<u16>,
    dns_port: Option<u16>,
    resolvers: Option<String>,
    http_extra: Vec<String>,
    socks_extra: Vec<String>,
    escaper_extra: Vec<String>,
    top_extra: Vec<String>,
    egress_allow: Vec<String>,
    udp_associate: bool,
}

impl Standard {
    pub fn new() -> Self {
        Standard {
            udp_associate: true,
            ..Default::default()
        }
    }

    /// Add the `http_proxy` server on this port.
    pub fn http(mut self, port: u16) -> Self {
        self.http = Some(port);
        self
    }

    /// Add the `socks_proxy` server on this port.
    pub fn socks(mut self, port: u16) -> Self {
        self.socks = Some(port);
        self
    }

    /// Point the default c-ares resolver at `127.0.0.1:port` (without it: a port where
    /// nothing answers, for tests that use IP targets only).
    pub fn dns(mut self, port: u16) -> Self {
        self.dns_port = Some(port);
        self
    }

    /// Replace the whole `resolver:` list body; it must define a resolver named `default`.
    /// Each line is indented by two spaces by the caller (`  - name: default`).
    pub fn resolvers(mut self, yaml: &str) -> Self {
        self.resolvers = Some(yaml.to_string());
        self
    }

    /// Extra `key: value` lines for the http server (no indentation needed).
    pub fn http_key(mut self, line: &str) -> Self {
        self.http_extra.push(line.to_string());
        self
    }

    pub fn socks_key(mut self, line: &str) -> Self {
        self.socks_extra.push(line.to_string());
        self
    }

    pub fn escaper_key(mut self, line: &str) -> Self {
        self.escaper_extra.push(line.to_string());
        self
    }

    /// Extra top-level lines (e.g. a `runtime:` block).
    pub fn top(mut self, yaml: &str) -> Self {
        self.top_extra.push(yaml.to_string());
        self
    }

    /// Allow one more network in the egress filter (besides 127.0.0.1), e.g. `::1`.
    pub fn egress_allow(mut self, net: &str) -> Self {
        self.egress_allow.push(net.to_string());
        self
    }

    /// Turn UDP ASSOCIATE off (g3proxy then does its simplified UDP connect).
    pub fn no_udp_associate(mut self) -> Self {
        self.udp_associate = false;
        self
    }

    pub fn render(&self) -> String {
        let mut y = String::from("---\nlog: stdout\n");
        for t in &self.top_extra {
            y.push_str(t);
            if !t.ends_with('\n') {
                y.push('\n');
            }
        }
        y.push_str("\nresolver:\n");
        match &self.resolvers {
            Some(r) => {
                y.push_str(r);
                if !r.ends_with('\n') {
                    y.push('\n');
                }
            }
            None => {
                // without a test DNS server: a loopback port where nothing listens
                let port = self.dns_port.unwrap_or(9);
                y.push_str(&format!(
                    "  - name: default\n    type: c-ares\n    server: 127.0.0.1:{port}\n"
                ));
            }
        }
        let mut allow = vec!["127.0.0.1".to_string()];
        allow.extend(self.egress_allow.iter().map(|n| format!("\"{n}\"")));
        let allow = if allow.len() == 1 {
            allow[0].clone()
        } else {
            format!("[{}]", allow.join(", "))
        };
        y.push_str(&format!(
            "\nescaper:\n  - name: default\n    type: direct_fixed\n    resolver: default\n    \
             egress_network_filter:\n      default: allow\n      allow: {allow}\n      deny: 127.0.0.2\n",
        ));
        for l in &self.escaper_extra {
            y.push_str(&format!("    {l}\n"));
        }
        y.push_str("\nserver:\n");
        if let Some(p) = self.http {
            y.push_str(&format!(
                "  - name: http\n    type: http_proxy\n    escaper: default\n    listen: 127.0.0.1:{p}\n"
            ));
            for l in &self.http_extra {
                y.push_str(&format!("    {l}\n"));
            }
        }
        if let Some(p) = self.socks {
            y.push_str(&format!(
                "  - name: socks\n    type: socks_proxy\n    escaper: default\n    listen: 127.0.0.1:{p}\n"
            ));
            if self.udp_associate {
                y.push_str("    enable_udp_associate: true\n");
            }
            for l in &self.socks_extra {
                y.push_str(&format!("    {l}\n"));
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_servers() {
        let y = Standard::new()
            .http(1000)
            .socks(1001)
            .dns(53)
            .http_key("req_header_max_size: 4096")
            .render();
        assert!(y.contains("listen: 127.0.0.1:1000\n    req_header_max_size: 4096\n"));
        assert!(y.contains("type: socks_proxy"));
        assert!(y.contains("enable_udp_associate: true"));
        assert!(y.contains("server: 127.0.0.1:53"));
    }
}
