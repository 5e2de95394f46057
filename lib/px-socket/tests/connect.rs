//! Connect tests on loopback: refused, forbidden, literal IPs, domains through
//! an in-test resolver, attempt staggering and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use px_core::value::{AclAction, NetworkAcl};
use px_core::{
    AddrFamily, ConnectError, Host, QueryStrategy, ResolveError, ResolveStrategy, Resolver,
    UpstreamAddr,
};
use px_socket::{Bind, BindIp, EgressConfig, connect_tcp, happy_eyeballs_connect};
use tokio::net::{TcpListener, TcpStream};

/// A resolver answering from a table, each family after its own delay.
struct TableResolver {
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
    v4_delay: Duration,
    v6_delay: Duration,
}

#[async_trait]
impl Resolver for TableResolver {
    fn name(&self) -> &str {
        "table"
    }
    fn kind(&self) -> &'static str {
        "table"
    }
    async fn resolve_family(
        &self,
        domain: &str,
        family: AddrFamily,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let (ips, delay) = match family {
            AddrFamily::Ipv4 => (&self.v4, self.v4_delay),
            AddrFamily::Ipv6 => (&self.v6, self.v6_delay),
        };
        tokio::time::sleep(delay).await;
        if ips.is_empty() {
            return Err(ResolveError::NotFound(domain.to_string()));
        }
        Ok(ips.clone())
    }
}

fn table(v4: &[&str], v6: &[&str]) -> TableResolver {
    TableResolver {
        v4: v4.iter().map(|s| s.parse().unwrap()).collect(),
        v6: v6.iter().map(|s| s.parse().unwrap()).collect(),
        v4_delay: Duration::ZERO,
        v6_delay: Duration::ZERO,
    }
}

fn domain(port: u16) -> UpstreamAddr {
    UpstreamAddr::new(Host::Domain("target.test".into()), port)
}

fn strategy(q: QueryStrategy) -> ResolveStrategy {
    ResolveStrategy {
        query: q,
        ..Default::default()
    }
}

fn permit_all() -> NetworkAcl {
    NetworkAcl::permit_all()
}

async fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A listener whose accept queue is full: further connects get no answer.
async fn black_hole(ip: &str) -> (std::net::TcpListener, Vec<TcpStream>) {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let s = socket2::SockRef::from(&l);
    s.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(c)) => held.push(c),
            _ => return (l, held),
        }
    }
    panic!("accept queue never filled");
}

#[tokio::test]
async fn literal_ip_connects_and_binds() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = UpstreamAddr::from_socket_addr(l.local_addr().unwrap());
    let bind = Bind {
        v4: BindIp::Ip("127.0.0.2".parse().unwrap()),
        v6: BindIp::Any,
    };
    let r = table(&[], &[]);
    let (s, reached) = happy_eyeballs_connect(
        &r,
        &target,
        ResolveStrategy::default(),
        &permit_all(),
        &bind,
        &EgressConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(reached, l.local_addr().unwrap());
    assert_eq!(
        s.local_addr().unwrap().ip(),
        "127.0.0.2".parse::<IpAddr>().unwrap()
    );
    let (_acc, peer) = l.accept().await.unwrap();
    assert_eq!(peer.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    assert!(s.nodelay().unwrap());
}

#[tokio::test]
async fn refused_port_is_refused() {
    let port = refused_port().await;
    let target = UpstreamAddr::parse(&format!("127.0.0.1:{port}"), None).unwrap();
    let r = table(&[], &[]);
    let e = happy_eyeballs_connect(
        &r,
        &target,
        ResolveStrategy::default(),
        &permit_all(),
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ConnectError::Refused), "{e:?}");
    let e = connect_tcp(
        SocketAddr::new("127.0.0.1".parse().unwrap(), port),
        None,
        Duration::from_secs(1),
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ConnectError::Refused), "{e:?}");
}

#[tokio::test]
async fn forbidden_ip_is_skipped_or_reported() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let acl = NetworkAcl {
        missed: AclAction::Permit,
        records: vec![("127.0.0.0/8".parse().unwrap(), AclAction::Forbid)],
    };
    // a literal forbidden IP
    let r = table(&["127.0.0.1"], &[]);
    let e = happy_eyeballs_connect(
        &r,
        &UpstreamAddr::from_socket_addr(l.local_addr().unwrap()),
        ResolveStrategy::default(),
        &acl,
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ConnectError::ForbiddenIp(_)), "{e:?}");
    // a domain whose only addresses are forbidden
    let e = happy_eyeballs_connect(
        &r,
        &domain(port),
        ResolveStrategy::default(),
        &acl,
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ConnectError::ForbiddenIp(ip) if ip == "127.0.0.1".parse::<IpAddr>().unwrap()),
        "{e:?}"
    );
    assert!(e.is_forbidden());
    // a forbidden address is skipped when another one is allowed
    let acl = NetworkAcl {
        missed: AclAction::Permit,
        records: vec![("127.0.0.9/32".parse().unwrap(), AclAction::Forbid)],
    };
    let r = table(&["127.0.0.9", "127.0.0.1"], &[]);
    let (s, peer) = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv4Only),
        &acl,
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(peer, s.peer_addr().unwrap());
    assert_eq!(peer, l.local_addr().unwrap());
}

#[tokio::test]
async fn domain_resolves_and_falls_back_across_families() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    // IPv6 preferred but nothing listens there: refused, then IPv4 at once
    let r = table(&["127.0.0.1"], &["::1"]);
    let start = Instant::now();
    let (s, peer) = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv6First),
        &permit_all(),
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(peer, s.peer_addr().unwrap());
    assert!(peer.is_ipv4());
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn resolution_delay_waits_for_preferred_family() {
    let l6 = match TcpListener::bind("[::1]:0").await {
        Ok(l) => l,
        Err(_) => return, // no IPv6 loopback
    };
    let port = l6.local_addr().unwrap().port();
    let Ok(_l4) = TcpListener::bind(("127.0.0.1", port)).await else {
        return;
    };
    // IPv4 answers at once, IPv6 (preferred) 20ms later: within the 50ms delay
    let mut r = table(&["127.0.0.1"], &["::1"]);
    r.v6_delay = Duration::from_millis(20);
    let (s, peer) = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv6First),
        &permit_all(),
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(peer, s.peer_addr().unwrap());
    assert!(peer.is_ipv6());
    // IPv6 answers after 300ms: IPv4 is used after the resolution delay
    r.v6_delay = Duration::from_millis(300);
    let (s, peer) = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv6First),
        &permit_all(),
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(peer, s.peer_addr().unwrap());
    assert!(peer.is_ipv4());
}

#[tokio::test]
async fn stalled_attempt_is_raced_after_attempt_delay() {
    let (hole, _held) = black_hole("127.0.0.2").await;
    let port = hole.local_addr().unwrap().port();
    let Ok(good) = TcpListener::bind(("127.0.0.3", port)).await else {
        return;
    };
    let r = table(&["127.0.0.2", "127.0.0.3"], &[]);
    let mut cfg = EgressConfig::default();
    cfg.happy_eyeballs.connection_attempt_delay = Duration::from_millis(100);
    let start = Instant::now();
    let (s, peer) = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv4Only),
        &permit_all(),
        &Bind::default(),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(peer, s.peer_addr().unwrap());
    let took = start.elapsed();
    assert_eq!(peer, good.local_addr().unwrap());
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_millis(600),
        "{took:?}"
    );

    // only the black hole: each attempt times out
    let r = table(&["127.0.0.2"], &[]);
    cfg.tcp_connect.each_timeout = Duration::from_millis(200);
    let start = Instant::now();
    let e = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv4Only),
        &permit_all(),
        &Bind::default(),
        &cfg,
    )
    .await
    .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(start.elapsed() < Duration::from_millis(800));
    // an overall timeout bounds it too
    cfg.tcp_connect.each_timeout = Duration::from_secs(30);
    cfg.overall_timeout = Some(Duration::from_millis(150));
    let e = happy_eyeballs_connect(
        &r,
        &domain(port),
        strategy(QueryStrategy::Ipv4Only),
        &permit_all(),
        &Bind::default(),
        &cfg,
    )
    .await
    .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
}

#[tokio::test]
async fn resolve_failures_and_unavailable_family() {
    let r = table(&[], &[]);
    let e = happy_eyeballs_connect(
        &r,
        &domain(80),
        ResolveStrategy::default(),
        &permit_all(),
        &Bind::default(),
        &EgressConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ConnectError::Resolve(ResolveError::NotFound(_))),
        "{e:?}"
    );

    let port = refused_port().await;
    let r = table(&[], &["::1"]);
    let bind = Bind {
        v4: BindIp::Any,
        v6: BindIp::Unavailable,
    };
    let e = happy_eyeballs_connect(
        &r,
        &domain(port),
        ResolveStrategy::default(),
        &permit_all(),
        &bind,
        &EgressConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ConnectError::NetworkUnreachable), "{e:?}");
}
