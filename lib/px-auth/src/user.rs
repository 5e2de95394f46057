//! One user: how it authenticates and what it may do.
//!
//! The same keys serve static users (YAML), dynamic users (JSON from the source) and the
//! anonymous user:
//!
//! - `name` (required), `token` (see [`crate::token`]), `expire` (RFC 3339), `block_and_delay`
//!   (duration), `ingress_network_filter`;
//! - rules: `dst_port_filter`, `dst_host_filter_set`, `resolve_strategy`, `resolve_redirection`,
//!   `explicit_sites` (see [`crate::rules`]);
//! - limits: `tcp_sock_speed_limit`, `udp_sock_speed_limit`, `tcp_conn_rate_limit` (alias
//!   `connection_rate_limit`, `tcp_conn_limit_quota`), `request_rate_limit` (alias
//!   `request_limit_quota`), `request_max_alive` (alias `request_alive_max`).
//!
//! ```yaml
//! name: root
//! token: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}
//! dst_port_filter: [80, 443]
//! dst_host_filter_set: {exact: [ipinfo.io, 1.1.1.1], child: ipip.net, regex: "lum[a-z]*[.]com$"}
//! tcp_sock_speed_limit: 10M/s
//! request_rate_limit: 2000/s
//! request_max_alive: 2000
//! ```

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use px_core::value::{AclAction, HostAclSet, NetworkAcl, PortAcl, SpeedLimit, UdpSpeedLimit};
use px_core::{
    Host, PickStrategy, QueryStrategy, Redirect, RequestPermit, ResolveStrategy, TargetPlan,
    UpstreamAddr, UserKind, UserPolicy, UserRefusal,
};
use px_yaml::{ConfigError, Val, values};

use crate::limit::{AliveLimit, Quota, RateLimiter};
use crate::rules::{Redirection, Sites};
use crate::time::parse_rfc3339;
use crate::token::Token;

/// User keys g3proxy documents that this proxy does not implement yet.
const UNIMPLEMENTED: &[&str] = &[
    "proxy_request_filter",
    "http_user_agent_filter",
    "tcp_connect",
    "tcp_all_upload_speed_limit",
    "tcp_all_download_speed_limit",
    "udp_all_upload_speed_limit",
    "udp_all_download_speed_limit",
    "tcp_remote_keepalive",
    "tcp_remote_misc_opts",
    "udp_remote_misc_opts",
    "tcp_client_misc_opts",
    "udp_client_misc_opts",
    "http_upstream_keepalive",
    "http_rsp_header_recv_timeout",
    "log_rate_limit",
    "log_limit_quota",
    "log_uri_max_chars",
    "task_idle_max_count",
    "socks_use_udp_associate",
    "audit",
    "egress_path_id_map",
    "egress_path_value_map",
];

/// A user's rules and limits: what [`px_core::UserCtx::policy`] points at.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    port_filter: Option<PortAcl>,
    host_filter: Option<HostAclSet>,
    tcp_speed: SpeedLimit,
    udp_speed: UdpSpeedLimit,
    conn_rate: Option<RateLimiter>,
    request_rate: Option<RateLimiter>,
    alive: Option<AliveLimit>,
    resolve_strategy: Option<ResolveStrategy>,
    redirection: Redirection,
    sites: Sites,
}

/// Picks one of a redirection's addresses with the strategy (families first, then order).
fn pick_addr(addrs: &[IpAddr], strategy: ResolveStrategy) -> Option<IpAddr> {
    let v4: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv6).collect();
    let ordered: Vec<IpAddr> = match strategy.query {
        QueryStrategy::Ipv4Only if !v4.is_empty() => v4,
        QueryStrategy::Ipv6Only if !v6.is_empty() => v6,
        QueryStrategy::Ipv6First => v6.into_iter().chain(v4).collect(),
        _ => v4.into_iter().chain(v6).collect(),
    };
    match strategy.pick {
        PickStrategy::First => ordered.first().copied(),
        PickStrategy::Random => {
            use rand::seq::IndexedRandom;
            ordered.choose(&mut rand::rng()).copied()
        }
    }
}

impl UserPolicy for Rules {
    fn check_target(&self, target: &UpstreamAddr) -> Result<(), UserRefusal> {
        if let Some(p) = &self.port_filter
            && !p.check(target.port).permits()
        {
            return Err(UserRefusal::Port(target.port));
        }
        if let Some(h) = &self.host_filter
            && !h.check(&target.host).permits()
        {
            return Err(UserRefusal::Host(target.host.to_string()));
        }
        Ok(())
    }

    fn plan(&self, target: &UpstreamAddr) -> TargetPlan {
        let site = self.sites.find(&target.host);
        let resolve_strategy = site
            .and_then(|s| s.resolve_strategy)
            .or(self.resolve_strategy);
        let connect_to = match &target.host {
            Host::Domain(d) if !self.redirection.is_empty() => {
                self.redirection.lookup(d).and_then(|r| match r {
                    Redirect::Name(n) => Some(UpstreamAddr::new(Host::Domain(n), target.port)),
                    Redirect::Addrs(a) => pick_addr(&a, resolve_strategy.unwrap_or_default())
                        .map(|ip| UpstreamAddr::new(Host::Ip(ip), target.port)),
                })
            }
            _ => None,
        };
        TargetPlan {
            connect_to,
            resolve_strategy,
            site: site.map(|s| Arc::clone(&s.id)),
            site_emit_stats: site.is_some_and(|s| s.emit_stats),
        }
    }

    fn resolve_strategy(&self) -> Option<ResolveStrategy> {
        self.resolve_strategy
    }

    fn tcp_sock_speed_limit(&self) -> SpeedLimit {
        self.tcp_speed
    }

    fn udp_sock_speed_limit(&self) -> UdpSpeedLimit {
        self.udp_speed
    }

    fn acquire_connection(&self) -> Result<(), UserRefusal> {
        match &self.conn_rate {
            Some(l) if !l.try_take() => Err(UserRefusal::ConnectionRate),
            _ => Ok(()),
        }
    }

    fn acquire_request(&self) -> Result<RequestPermit, UserRefusal> {
        if let Some(l) = &self.request_rate
            && !l.try_take()
        {
            return Err(UserRefusal::RequestRate);
        }
        match &self.alive {
            Some(a) => a.try_acquire().map_err(UserRefusal::MaxAlive),
            None => Ok(RequestPermit::unlimited()),
        }
    }
}

/// A user as the group keeps it.
pub(crate) struct User {
    /// The name.
    pub(crate) name: Arc<str>,
    /// Static, dynamic or anonymous.
    pub(crate) kind: UserKind,
    /// The password token.
    pub(crate) token: Token,
    /// `expire`.
    pub(crate) expire: Option<SystemTime>,
    /// `block_and_delay`.
    pub(crate) block_and_delay: Option<Duration>,
    /// `ingress_network_filter`.
    pub(crate) ingress: Option<NetworkAcl>,
    /// The document it was read from, to keep the same object (and its limiter state) when a
    /// dynamic refresh brings the same user again.
    pub(crate) fingerprint: String,
    /// Rules and limits.
    pub(crate) rules: Arc<Rules>,
    /// Keyed digest of the last password that verified, so costly tokens are checked once.
    verified: Mutex<Option<[u8; 32]>>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("token", &self.token)
            .finish()
    }
}

impl User {
    /// True when the user's `expire` time has passed.
    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        self.expire.is_some_and(|e| now >= e)
    }

    /// True when the user's ingress filter lets this client in.
    pub(crate) fn client_allowed(&self, ip: IpAddr) -> bool {
        self.ingress
            .as_ref()
            .is_none_or(|acl| acl.check(ip).permits())
    }

    /// True when `digest` is the one remembered for the last good password.
    pub(crate) fn verified_before(&self, digest: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        let guard = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_some_and(|d| bool::from(d.ct_eq(digest)))
    }

    /// Remembers the digest of a password that verified.
    pub(crate) fn remember(&self, digest: [u8; 32]) {
        *self.verified.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest);
    }

    /// Reads one user map.
    pub(crate) fn parse(v: &Val<'_>, kind: UserKind) -> Result<User, ConfigError> {
        let mut m = v.map()?;
        let name = match m.get("name") {
            Some(name_val) => {
                let name = name_val.as_text()?;
                if name.is_empty() || name.len() > 255 {
                    return Err(name_val.err("a user name is 1 to 255 bytes"));
                }
                if name.contains(':') {
                    return Err(
                        name_val.err("a user name cannot contain `:` (HTTP Basic splits on it)")
                    );
                }
                name
            }
            None if kind == UserKind::Anonymous => "anonymous".to_string(),
            None => return Err(m.err("missing required key `name`")),
        };
        // no token (or null): the user never passes a password check
        let token = match m.get("token") {
            Some(t) => Token::parse(&t)?,
            None => Token::Disabled,
        };
        let expire = match m.get("expire") {
            Some(e) => {
                let s = e.as_text()?;
                Some(
                    parse_rfc3339(&s)
                        .ok_or_else(|| e.err(format!("invalid RFC 3339 date-time {s:?}")))?,
                )
            }
            None => None,
        };
        let block_and_delay = m
            .get("block_and_delay")
            .map(|d| values::duration(&d))
            .transpose()?;
        let ingress = m
            .get("ingress_network_filter")
            .map(|x| values::network_acl(&x, AclAction::Forbid))
            .transpose()?;
        let mut rules = Rules {
            port_filter: m
                .get("dst_port_filter")
                .map(|x| values::port_acl(&x))
                .transpose()?,
            host_filter: m
                .get("dst_host_filter_set")
                .map(|x| values::host_acl_set(&x))
                .transpose()?,
            ..Rules::default()
        };
        if let Some(x) = m.get_any(&[
            "tcp_sock_speed_limit",
            "tcp_conn_speed_limit",
            "tcp_conn_limit",
        ]) {
            rules.tcp_speed = values::tcp_speed_limit(&x)?;
        }
        if let Some(x) = m.get_any(&[
            "udp_sock_speed_limit",
            "udp_relay_speed_limit",
            "udp_relay_limit",
        ]) {
            rules.udp_speed = values::udp_speed_limit(&x)?;
        }
        if let Some(x) = m.get_any(&[
            "tcp_conn_rate_limit",
            "connection_rate_limit",
            "tcp_conn_limit_quota",
        ]) {
            rules.conn_rate = Some(RateLimiter::new(Quota::parse(&x)?));
        }
        if let Some(x) = m.get_any(&["request_rate_limit", "request_limit_quota"]) {
            rules.request_rate = Some(RateLimiter::new(Quota::parse(&x)?));
        }
        if let Some(x) = m.get_any(&["request_max_alive", "request_alive_max"]) {
            let n: usize = x.as_int()?;
            if n == 0 {
                return Err(x.err("request_max_alive must be at least 1"));
            }
            rules.alive = Some(AliveLimit::new(n));
        }
        if let Some(x) = m.get("resolve_strategy") {
            rules.resolve_strategy = Some(values::resolve_strategy(&x)?);
        }
        if let Some(x) = m.get("resolve_redirection") {
            rules.redirection = Redirection::parse(&x)?;
        }
        if let Some(x) = m.get("explicit_sites") {
            rules.sites = Sites::parse(&x)?;
        }
        m.unimplemented(UNIMPLEMENTED)?;
        m.finish()?;
        Ok(User {
            name: Arc::from(name.as_str()),
            kind,
            token,
            expire,
            block_and_delay,
            ingress,
            fingerprint: v.node().fingerprint(),
            rules: Arc::new(rules),
            verified: Mutex::new(None),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    pub(crate) fn user(yaml: &str) -> Result<User, ConfigError> {
        let n = px_yaml::load_str(yaml, Path::new("u.yaml")).unwrap();
        User::parse(&Val::root(&n, "user"), UserKind::Static)
    }

    fn target(s: &str) -> UpstreamAddr {
        UpstreamAddr::parse(s, None).unwrap()
    }

    #[test]
    fn the_user_guide_user() {
        let u = user(
            "name: root\ntoken: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}\n\
             dst_port_filter: [80, 443]\ndst_host_filter_set:\n  exact: [ipinfo.io, 1.1.1.1]\n  child: [\"ipip.net\"]\n  regex: [\"lum[a-z]*[.]com$\"]\n",
        )
        .unwrap();
        assert!(u.token.verify(b"toor"));
        let r = &u.rules;
        assert!(r.check_target(&target("ipinfo.io:443")).is_ok());
        assert!(r.check_target(&target("1.1.1.1:80")).is_ok());
        assert!(r.check_target(&target("myip.ipip.net:80")).is_ok());
        assert!(r.check_target(&target("lumtest.com:443")).is_ok());
        assert_eq!(
            r.check_target(&target("ipinfo.io:22")),
            Err(UserRefusal::Port(22))
        );
        assert_eq!(
            r.check_target(&target("example.com:80")),
            Err(UserRefusal::Host("example.com".into()))
        );
    }

    #[test]
    fn limits_and_plan() {
        let u = user(
            "name: a\ntoken: ~\ntcp_sock_speed_limit: 10M/s\nudp_sock_speed_limit: 1M\n\
             tcp_conn_rate_limit: 2/m\nrequest_rate_limit: {rate: 3/m}\nrequest_max_alive: 1\n\
             resolve_strategy: ipv6first\nresolve_redirection:\n  - exact: a.test\n    to: [127.0.0.1, \"::1\"]\n\
             explicit_sites:\n  - id: s\n    exact_match: a.test\n    resolve_strategy: ipv4only\n",
        )
        .unwrap();
        let r = &u.rules;
        assert!(r.tcp_sock_speed_limit().download.is_some());
        assert_eq!(r.udp_sock_speed_limit().upload_bytes, Some(1_000_000));
        assert!(r.acquire_connection().is_ok() && r.acquire_connection().is_ok());
        assert_eq!(r.acquire_connection(), Err(UserRefusal::ConnectionRate));
        let p = r.acquire_request().unwrap();
        assert!(matches!(r.acquire_request(), Err(UserRefusal::MaxAlive(1))));
        drop(p);
        let _p = r.acquire_request().unwrap();
        drop(_p);
        assert!(matches!(r.acquire_request(), Err(UserRefusal::RequestRate)));
        let plan = r.plan(&target("a.test:80"));
        assert_eq!(plan.site.as_deref(), Some("s"));
        assert_eq!(
            plan.connect_to,
            Some(target("127.0.0.1:80")),
            "the site says ipv4only"
        );
        let plan = r.plan(&target("b.test:80"));
        assert_eq!(plan.connect_to, None);
        assert_eq!(
            plan.resolve_strategy.map(|s| s.query),
            Some(QueryStrategy::Ipv6First)
        );
    }

    #[test]
    fn expire_block_and_errors() {
        let u = user("name: a\nexpire: 2000-01-01T00:00:00Z\nblock_and_delay: 2s\n").unwrap();
        assert!(u.is_expired(SystemTime::now()));
        assert_eq!(u.block_and_delay, Some(Duration::from_secs(2)));
        assert!(!u.token.verify(b""), "no token: never passes");
        for bad in [
            "token: ~\n",
            "name: ''\n",
            "name: 'a:b'\n",
            "name: a\nexpire: tomorrow\n",
            "name: a\naudit: {}\n",
            "name: a\nbogus: 1\n",
            "name: a\nrequest_max_alive: 0\n",
        ] {
            assert!(user(bad).is_err(), "{bad}");
        }
        let e = user("name: a\nsocks_use_udp_associate: true\n")
            .err()
            .unwrap();
        assert!(e.message.contains("not implemented"), "{e}");
    }

    #[test]
    fn ingress_filter() {
        let u = user("name: a\ningress_network_filter: {default: forbid, allow: 10.0.0.0/8}\n")
            .unwrap();
        assert!(u.client_allowed("10.1.1.1".parse().unwrap()));
        assert!(!u.client_allowed("192.168.1.1".parse().unwrap()));
    }
}
