//! direct_fixed: config parsing (every key, both spellings, errors with
//! positions), TCP connects on loopback, the default egress filter, and the
//! UDP relay against a loopback echo server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use px_core::{
    AddrFamily, Auditor, ConnectError, Escaper, Handle, Host, ModuleLookup, QueryStrategy,
    ResolveError, ResolveStrategy, Resolver, Server, TcpConnectRequest, UdpRelayRequest,
    UpstreamAddr, UpstreamStream, UserGroup,
};
use px_escapers::direct_fixed::DirectFixedConfig;
use px_escapers::{DirectFixed, build_direct_fixed};
use px_yaml::{ConfigError, Val};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Resolves `*.test` names from a fixed table; anything else is not found.
struct TestResolver;

#[async_trait]
impl Resolver for TestResolver {
    fn name(&self) -> &str {
        "default"
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn resolve_family(
        &self,
        domain: &str,
        family: AddrFamily,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let ips: &[&str] = match (domain, family) {
            ("loop.test", AddrFamily::Ipv4) => &["127.0.0.1"],
            ("loop.test", AddrFamily::Ipv6) => &["::1"],
            ("private.test", AddrFamily::Ipv4) => &["10.1.2.3"],
            _ => &[],
        };
        if ips.is_empty() {
            return Err(ResolveError::NotFound(domain.to_string()));
        }
        Ok(ips.iter().map(|s| s.parse().unwrap()).collect())
    }
}

struct Lookup {
    resolver: Arc<Handle<dyn Resolver>>,
}

impl Lookup {
    fn new() -> Self {
        Lookup {
            resolver: Arc::new(Handle::new(
                "default",
                Arc::new(TestResolver) as Arc<dyn Resolver>,
            )),
        }
    }
}

impl ModuleLookup for Lookup {
    fn resolver(&self, name: &str) -> Result<Arc<Handle<dyn Resolver>>, String> {
        if name == "default" {
            Ok(Arc::clone(&self.resolver))
        } else {
            Err(format!("resolver {name} not found"))
        }
    }
    fn escaper(&self, name: &str) -> Result<Arc<Handle<dyn Escaper>>, String> {
        Err(format!("escaper {name} not found"))
    }
    fn user_group(&self, name: &str) -> Result<Arc<Handle<dyn UserGroup>>, String> {
        Err(format!("user group {name} not found"))
    }
    fn auditor(&self, name: &str) -> Result<Arc<Handle<dyn Auditor>>, String> {
        Err(format!("auditor {name} not found"))
    }
    fn server(&self, name: &str) -> Result<Arc<Handle<dyn Server>>, String> {
        Err(format!("server {name} not found"))
    }
}

fn parse(yaml: &str) -> Result<DirectFixedConfig, ConfigError> {
    let node = px_yaml::load_str(yaml, Path::new("escaper.yaml")).unwrap();
    let map = Val::root(&node, "escaper[default]").map().unwrap();
    DirectFixedConfig::parse(map, &Lookup::new())
}

fn build(yaml: &str) -> Arc<dyn Escaper> {
    let node = px_yaml::load_str(yaml, Path::new("escaper.yaml")).unwrap();
    let map = Val::root(&node, "escaper[default]").map().unwrap();
    build_direct_fixed("default", map, &Lookup::new()).unwrap()
}

fn req(target: &str) -> TcpConnectRequest {
    TcpConnectRequest {
        target: UpstreamAddr::parse(target, None).unwrap(),
        client_addr: "127.0.0.1:1".parse().unwrap(),
        resolve_strategy: None,
    }
}

const LOOPBACK_OK: &str = "resolver: default\negress_network_filter:\n  default: allow\n  allow: [127.0.0.1, 127.0.0.2]\n";

#[test]
fn parses_every_key() {
    let cfg = parse(
        "resolver: default\n\
         resolve_strategy: {query: IPv6First, pick: random}\n\
         bind_ip: [192.0.2.1, '2001:db8::1']\n\
         egress_net_filter: {default: forbid, permit: 192.0.2.0/24}\n\
         tcp_connect: {max_retry: 4, each_timeout: 5s}\n\
         happy_eyeballs: {resolution_delay: 20ms, second_resolution_timeout: 1s, first_address_family_count: 2, connection_attempt_delay: 300ms}\n\
         tcp_sock_speed_limit: 10M/s\n\
         udp_relay_limit: {shift_millis: 8, upload_packets: 100}\n\
         tcp_keepalive: {enable: true, idle_time: 30s}\n\
         tcp_misc_opts: {no_delay: false, mark: 3}\n\
         udp_misc_opts: {ttl: 32}\n\
         no_ipv4: false\n\
         no-ipv6: false\n",
    )
    .unwrap();
    assert_eq!(cfg.resolve_strategy.query, QueryStrategy::Ipv6First);
    assert_eq!(cfg.bind_v4, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(cfg.bind_v6.len(), 1);
    assert!(
        cfg.egress_filter
            .check("192.0.2.9".parse().unwrap())
            .permits()
    );
    assert!(
        !cfg.egress_filter
            .check("8.8.8.8".parse().unwrap())
            .permits()
    );
    assert_eq!(cfg.egress.tcp_connect.max_retry, 4);
    assert_eq!(cfg.egress.tcp_connect.each_timeout, Duration::from_secs(5));
    assert_eq!(
        cfg.egress.happy_eyeballs.resolution_delay,
        Duration::from_millis(20)
    );
    assert_eq!(cfg.egress.happy_eyeballs.first_address_family_count, 2);
    assert_eq!(
        cfg.egress.happy_eyeballs.connection_attempt_delay,
        Duration::from_millis(300)
    );
    assert_eq!(cfg.tcp_speed_limit.upload, Some(10_240_000));
    assert_eq!(cfg.udp_speed_limit.upload_packets, Some(100));
    assert!(cfg.egress.keepalive.enable);
    assert_eq!(cfg.egress.misc.no_delay, Some(false));
    assert_eq!(cfg.udp_misc.ttl, Some(32));

    // the defaults
    let cfg = parse("resolver: default\n").unwrap();
    assert_eq!(cfg.resolve_strategy, ResolveStrategy::default());
    assert_eq!(cfg.egress.tcp_connect.max_retry, 2);
    assert_eq!(cfg.egress.tcp_connect.each_timeout, Duration::from_secs(30));
    assert_eq!(
        cfg.egress.happy_eyeballs.connection_attempt_delay,
        Duration::from_millis(250)
    );
    assert!(cfg.tcp_speed_limit.is_unlimited());
    assert!(
        !cfg.egress_filter
            .check("127.0.0.1".parse().unwrap())
            .permits()
    );
    assert!(
        cfg.egress_filter
            .check("1.1.1.1".parse().unwrap())
            .permits()
    );
}

#[test]
fn both_filter_spellings() {
    for key in [
        "egress_network_filter",
        "egress_net_filter",
        "egress-net-filter",
    ] {
        let cfg = parse(&format!(
            "resolver: default\n{key}: {{default: allow, allow: 127.0.0.1}}\n"
        ))
        .unwrap();
        assert!(
            cfg.egress_filter
                .check("127.0.0.1".parse().unwrap())
                .permits(),
            "{key}"
        );
        assert!(
            !cfg.egress_filter
                .check("127.0.0.3".parse().unwrap())
                .permits(),
            "{key}"
        );
    }
    let e = parse("resolver: default\negress_network_filter: {default: allow}\negress_net_filter: {default: allow}\n")
        .err()
        .unwrap();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("twice"), "{e}");
    // `{default: allow}` alone keeps loopback and private networks closed
    let cfg = parse("resolver: default\negress_network_filter: {default: allow}\n").unwrap();
    assert!(
        !cfg.egress_filter
            .check("127.0.0.1".parse().unwrap())
            .permits()
    );
    assert!(
        !cfg.egress_filter
            .check("192.168.1.1".parse().unwrap())
            .permits()
    );
    assert!(
        cfg.egress_filter
            .check("1.1.1.1".parse().unwrap())
            .permits()
    );
}

#[test]
fn errors_name_position_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "bind_ip: 1.2.3.4\n",
            1,
            "escaper[default]",
            "missing required key `resolver`",
        ),
        (
            "resolver: nope\n",
            1,
            "escaper[default].resolver",
            "not found",
        ),
        (
            "resolver: default\nbogus: 1\n",
            2,
            "escaper[default].bogus",
            "unknown key",
        ),
        (
            "resolver: default\nbind_ip: [1.2.3.4, x]\n",
            2,
            "escaper[default].bind_ip[1]",
            "invalid IP",
        ),
        (
            "resolver: default\ntcp_connect:\n  each_timeout: soon\n",
            3,
            "escaper[default].tcp_connect.each_timeout",
            "invalid duration",
        ),
        (
            "resolver: default\nresolve_strategy: IPv5\n",
            2,
            "escaper[default].resolve_strategy",
            "invalid resolve strategy",
        ),
        (
            "resolver: default\nuse_proxy_protocol: 2\n",
            2,
            "escaper[default].use_proxy_protocol",
            "not implemented",
        ),
        (
            "resolver: default\nno_ipv4: true\nresolve_strategy: IPv4Only\n",
            3,
            "escaper[default].resolve_strategy",
            "family",
        ),
        (
            "resolver: default\negress_network_filter: {allow: 10.0.0.0/33}\n",
            2,
            "escaper[default].egress_network_filter.allow",
            "invalid IP network",
        ),
        (
            "resolver: default\nhappy_eyeballs: {first_address_family_count: -1}\n",
            2,
            "escaper[default].happy_eyeballs.first_address_family_count",
            "integer",
        ),
    ];
    for (yaml, line, path, msg) in cases {
        let e = parse(yaml)
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"));
        assert_eq!(e.line, *line, "{yaml}: {e}");
        assert_eq!(e.key_path, *path, "{yaml}: {e}");
        assert!(e.message.contains(msg), "{yaml}: {e}");
        assert!(e.to_string().starts_with("escaper.yaml:"), "{e}");
    }
}

#[tokio::test]
async fn connects_to_permitted_loopback_with_bind_and_limit() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let esc = build(&format!(
        "{LOOPBACK_OK}bind_ip: 127.0.0.2\ntcp_sock_speed_limit: 1M\n"
    ));
    assert_eq!(esc.kind(), "direct_fixed");
    let conn = esc
        .connect_tcp(&req(&format!("loop.test:{port}")))
        .await
        .unwrap();
    assert_eq!(conn.peer_addr, l.local_addr().unwrap());
    assert_eq!(conn.local_addr.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(conn.speed_limit.download, Some(1_000_000));
    let UpstreamStream::Tcp(mut s) = conn.stream else {
        panic!("not tcp")
    };
    let (mut acc, _) = l.accept().await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    acc.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");

    // a literal IP works too, and the per-request strategy is honoured
    let mut r = req(&format!("127.0.0.1:{port}"));
    r.resolve_strategy = Some(ResolveStrategy {
        query: QueryStrategy::Ipv4Only,
        ..Default::default()
    });
    assert!(esc.connect_tcp(&r).await.is_ok());
    // 127.0.0.3 is not in the user's rule: the built-in loopback record forbids it
    let e = esc
        .connect_tcp(&req(&format!("127.0.0.3:{port}")))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ConnectError::ForbiddenIp(_)), "{e:?}");
}

#[tokio::test]
async fn default_filter_refuses_local_targets() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let esc = build("resolver: default\n");
    for target in [
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("loop.test:{port}"),
        "private.test:80".to_string(),
        "10.0.0.1:80".to_string(),
        "169.254.169.254:80".to_string(),
        "[::ffff:127.0.0.1]:80".to_string(),
    ] {
        let e = esc.connect_tcp(&req(&target)).await.err().unwrap();
        assert!(e.is_forbidden(), "{target}: {e:?}");
    }
    let e = esc
        .connect_tcp(&req("missing.test:80"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, ConnectError::Resolve(ResolveError::NotFound(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn udp_relay_to_loopback_echo() {
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = echo.recv_from(&mut buf).await else {
                return;
            };
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    let esc = build(&format!("{LOOPBACK_OK}udp_sock_speed_limit: 1M\n"));
    let relay = esc
        .open_udp(&UdpRelayRequest {
            client_addr: "127.0.0.1:1".parse().unwrap(),
            resolve_strategy: None,
        })
        .await
        .unwrap();
    assert_eq!(relay.speed_limit().upload_bytes, Some(1_000_000));

    // a receiver waiting before any socket exists is woken when the first one is made
    let relay: Arc<dyn px_core::UdpRelay> = Arc::from(relay);
    let r2 = Arc::clone(&relay);
    let waiter = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let (n, from) = r2.recv_from(&mut buf).await.unwrap();
        (buf[..n].to_vec(), from)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    relay
        .send_to(b"hello", &UpstreamAddr::from_socket_addr(echo_addr))
        .await
        .unwrap();
    let (got, from) = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(from, echo_addr);

    // by domain
    relay
        .send_to(
            b"by-name",
            &UpstreamAddr::new(Host::Domain("loop.test".into()), echo_addr.port()),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"by-name");
    assert_eq!(from, echo_addr);

    // a forbidden target fails that datagram only
    let forbidden: SocketAddr = "127.0.0.9:9".parse().unwrap();
    let e = relay
        .send_to(b"x", &UpstreamAddr::from_socket_addr(forbidden))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ConnectError::ForbiddenIp(_)), "{e:?}");
    let e = relay
        .send_to(
            b"x",
            &"10.0.0.1:53"
                .parse::<SocketAddr>()
                .map(UpstreamAddr::from_socket_addr)
                .unwrap(),
        )
        .await
        .err()
        .unwrap();
    assert!(e.is_forbidden());
    relay
        .send_to(b"again", &UpstreamAddr::from_socket_addr(echo_addr))
        .await
        .unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"again");
}

#[tokio::test]
async fn udp_relay_uses_both_families() {
    let Ok(echo6) = UdpSocket::bind("[::1]:0").await else {
        return;
    };
    let echo4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (a4, a6) = (echo4.local_addr().unwrap(), echo6.local_addr().unwrap());
    for echo in [echo4, echo6] {
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
    }
    let esc = build(
        "resolver: default\negress_network_filter: {default: allow, allow: [127.0.0.1, '::1']}\n",
    );
    let relay = esc
        .open_udp(&UdpRelayRequest {
            client_addr: "127.0.0.1:1".parse().unwrap(),
            resolve_strategy: None,
        })
        .await
        .unwrap();
    relay
        .send_to(b"four", &UpstreamAddr::from_socket_addr(a4))
        .await
        .unwrap();
    relay
        .send_to(b"six", &UpstreamAddr::from_socket_addr(a6))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        seen.push((buf[..n].to_vec(), from));
    }
    seen.sort();
    assert_eq!(seen, vec![(b"four".to_vec(), a4), (b"six".to_vec(), a6)]);
}

#[test]
fn escaper_exposes_config() {
    let node = px_yaml::load_str(
        "resolver: default\nbind_ip: 127.0.0.2\n",
        Path::new("e.yaml"),
    )
    .unwrap();
    let map = Val::root(&node, "e").map().unwrap();
    let esc = DirectFixed::new("x", DirectFixedConfig::parse(map, &Lookup::new()).unwrap());
    // IPv6 has no bind IP: the family is unusable, strategies narrow to IPv4
    assert!(!esc.config().ipv6_usable());
    assert_eq!(
        esc.config().strategy_for(None).query,
        QueryStrategy::Ipv4Only
    );
}
