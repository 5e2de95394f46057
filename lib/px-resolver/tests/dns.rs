//! End-to-end: `c-ares`, `hickory`, `fail_over` and `deny_all` against a real
//! dnsmasq on a loopback port, silent servers and closed ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use px_core::{AddrFamily, QueryStrategy, ResolveError, Resolver};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `base` lines whose key `extra` does not set, then `extra`.
fn merge(base: &str, extra: &str) -> String {
    let keys: Vec<&str> = extra.lines().filter_map(|l| l.split(':').next()).collect();
    let mut out: String = base
        .lines()
        .filter(|l| l.split(':').next().is_none_or(|k| !keys.contains(&k)))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(extra);
    out
}

fn cares_yaml(servers: &str, extra: &str) -> String {
    let base =
        format!("name: ca\ntype: c-ares\nserver: {servers}\neach_timeout: 300\neach_tries: 1\n");
    merge(&base, extra)
}

fn hickory_yaml(servers: &str, extra: &str) -> String {
    let base = format!(
        "name: hi\ntype: hickory\nserver: {servers}\nrequest_timeout: 300ms\neach_tries: 1\n\
         each_timeout: 500ms\nretry_interval: 200ms\n"
    );
    merge(&base, extra)
}

/// A, AAAA, both families by strategy, NXDOMAIN, IP literals.
async fn check_answers(r: &dyn Resolver) {
    assert_eq!(
        r.resolve_family(A_NAME, AddrFamily::Ipv4).await.unwrap(),
        vec![ip(A_ADDR)]
    );
    assert_eq!(
        r.resolve_family(AAAA_NAME, AddrFamily::Ipv6).await.unwrap(),
        vec![ip(AAAA_ADDR)]
    );
    // dnsmasq has no AAAA for test.local: both-family strategies keep the A
    assert_eq!(
        r.resolve("Test.Local.", QueryStrategy::Ipv6First)
            .await
            .unwrap(),
        vec![ip(A_ADDR)]
    );
    for family in [AddrFamily::Ipv4, AddrFamily::Ipv6] {
        assert_eq!(
            r.resolve_family(NX_NAME, family).await,
            Err(ResolveError::NotFound(NX_NAME.to_string()))
        );
    }
    assert_eq!(
        r.resolve_family("192.0.2.9", AddrFamily::Ipv4)
            .await
            .unwrap(),
        vec![ip("192.0.2.9")]
    );
}

#[tokio::test]
async fn cares_resolves_a_aaaa_and_nxdomain() {
    let dns = Dnsmasq::start();
    let extra = "bind_ipv4: 127.0.0.1\nround_robin: true\nsocket_send_buffer_size: 64K\n\
                 socket_recv_buffer_size: 64K\nudp_max_queries: 10\nmax_timeout: 1000\n";
    let r = build(
        &cares_yaml(&dns.addr.to_string(), extra),
        &Lookup::default(),
    );
    assert_eq!((r.name(), r.kind()), ("ca", "c-ares"));
    check_answers(r.as_ref()).await;
}

#[tokio::test]
async fn hickory_resolves_a_aaaa_and_nxdomain() {
    let dns = Dnsmasq::start();
    let extra = format!(
        "server_port: {}\nbind_ip: 127.0.0.1\nconnect_timeout: 1s\n",
        dns.addr.port()
    );
    let r = build(&hickory_yaml("127.0.0.1", &extra), &Lookup::default());
    assert_eq!((r.name(), r.kind()), ("hi", "hickory"));
    check_answers(r.as_ref()).await;
}

/// Answers cached while the server was up are served after it is gone;
/// a name not asked before then fails.
async fn check_cache_outlives_server(r: &dyn Resolver, dns: &mut Dnsmasq) {
    assert_eq!(
        r.resolve_family(A_NAME, AddrFamily::Ipv4).await.unwrap(),
        vec![ip(A_ADDR)]
    );
    assert!(r.resolve_family(NX_NAME, AddrFamily::Ipv4).await.is_err());
    dns.stop();
    for _ in 0..3 {
        assert_eq!(
            r.resolve_family(A_NAME, AddrFamily::Ipv4).await.unwrap(),
            vec![ip(A_ADDR)]
        );
        assert_eq!(
            r.resolve_family(NX_NAME, AddrFamily::Ipv4).await,
            Err(ResolveError::NotFound(NX_NAME.to_string()))
        );
    }
    let started = Instant::now();
    let gone = r.resolve_family(AAAA_NAME, AddrFamily::Ipv6).await;
    assert!(
        matches!(
            gone,
            Err(ResolveError::Timeout | ResolveError::ServerFailure(_))
        ),
        "{gone:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn cares_cache_answers_without_the_server() {
    let mut dns = Dnsmasq::start();
    let r = build(&cares_yaml(&dns.addr.to_string(), ""), &Lookup::default());
    check_cache_outlives_server(r.as_ref(), &mut dns).await;
}

#[tokio::test]
async fn hickory_cache_answers_without_the_server() {
    let mut dns = Dnsmasq::start();
    let r = build(&hickory_yaml(&dns.addr.to_string(), ""), &Lookup::default());
    check_cache_outlives_server(r.as_ref(), &mut dns).await;
}

async fn timed(r: &dyn Resolver) -> (Result<Vec<IpAddr>, ResolveError>, Duration) {
    let started = Instant::now();
    let res = r.resolve_family(A_NAME, AddrFamily::Ipv4).await;
    (res, started.elapsed())
}

#[tokio::test]
async fn dead_servers_time_out_within_the_bound() {
    let silent = Silent::start();
    let lookup = Lookup::default();
    let addr = silent.addr.to_string();

    // c-ares: 300 ms, one try
    let r = build(&cares_yaml(&addr, ""), &lookup);
    let (res, took) = timed(r.as_ref()).await;
    assert_eq!(res, Err(ResolveError::Timeout));
    assert!(took < Duration::from_secs(2), "{took:?}");

    // c-ares with long retries is cut by protective_query_timeout
    let yaml = format!(
        "name: ca\ntype: c-ares\nserver: {addr}\neach_timeout: 5000\nprotective_query_timeout: 400ms\n"
    );
    let r = build(&yaml, &lookup);
    let (res, took) = timed(r.as_ref()).await;
    assert_eq!(res, Err(ResolveError::Timeout));
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // hickory: two silent servers, 200 ms apart, 500 ms each
    let r = build(&hickory_yaml(&format!("{addr} {addr}"), ""), &lookup);
    let (res, took) = timed(r.as_ref()).await;
    assert_eq!(res, Err(ResolveError::Timeout));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // hickory cut by protective_query_timeout
    let r = build(
        &hickory_yaml(
            &addr,
            "each_timeout: 10s\nrequest_timeout: 10s\nprotective_query_timeout: 300ms\n",
        ),
        &lookup,
    );
    let (res, took) = timed(r.as_ref()).await;
    assert_eq!(res, Err(ResolveError::Timeout));
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn next_server_answers_when_the_first_is_dead() {
    let dns = Dnsmasq::start();
    let silent = Silent::start();
    let servers = format!("{} {}", silent.addr, dns.addr);
    let lookup = Lookup::default();
    for yaml in [cares_yaml(&servers, ""), hickory_yaml(&servers, "")] {
        let r = build(&yaml, &lookup);
        let (res, took) = timed(r.as_ref()).await;
        assert_eq!(res.unwrap(), vec![ip(A_ADDR)], "{yaml}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // a closed port fails at once: the next server is asked without waiting
    let servers = format!("{} {}", closed_addr(), dns.addr);
    let r = build(&hickory_yaml(&servers, "retry_interval: 5s\n"), &lookup);
    let (res, took) = timed(r.as_ref()).await;
    assert_eq!(res.unwrap(), vec![ip(A_ADDR)]);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn fail_over_takes_over_from_a_dead_primary() {
    let dns = Dnsmasq::start();
    let silent = Silent::start();
    let lookup = Lookup::default();
    let dead = build(
        &format!(
            "name: dead\ntype: c-ares\nserver: {}\neach_timeout: 3000\n",
            silent.addr
        ),
        &lookup,
    );
    let primary = lookup.add("primary", dead);
    let working = build(&hickory_yaml(&dns.addr.to_string(), ""), &lookup);
    let standby = lookup.add("standby", Arc::clone(&working));
    let fo = build(
        "name: virtual\ntype: fail_over\nprimary: primary\nstandby: standby\nfallback_delay: 100ms\n",
        &lookup,
    );
    assert_eq!(fo.kind(), "fail_over");

    let (res, took) = timed(fo.as_ref()).await;
    assert_eq!(res.unwrap(), vec![ip(A_ADDR)]);
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        fo.resolve_family(AAAA_NAME, AddrFamily::Ipv6)
            .await
            .unwrap(),
        vec![ip(AAAA_ADDR)]
    );

    // a closed primary fails at once: no need to wait for the delay
    let refused = build(
        &format!("name: refused\ntype: c-ares\nserver: {}\n", closed_addr()),
        &lookup,
    );
    primary.store(refused);
    let (res, _) = timed(fo.as_ref()).await;
    assert_eq!(res.unwrap(), vec![ip(A_ADDR)]);

    // reloads are seen: a working primary answers alone
    primary.store(Arc::clone(&working));
    standby.store(build("name: standby\ntype: deny_all\n", &lookup));
    assert_eq!(
        fo.resolve_family(A_NAME, AddrFamily::Ipv4).await.unwrap(),
        vec![ip(A_ADDR)]
    );
    // both fail: the last error comes back
    primary.store(build("name: primary\ntype: deny_all\n", &lookup));
    assert_eq!(
        fo.resolve_family(AAAA_NAME, AddrFamily::Ipv6).await,
        Err(ResolveError::Refused)
    );
}

#[tokio::test]
async fn deny_all_refuses() {
    let r = build("name: no\ntype: denyall\n", &Lookup::default());
    assert_eq!(r.kind(), "deny_all");
    assert_eq!(
        r.resolve(A_NAME, QueryStrategy::Ipv4First).await,
        Err(ResolveError::Refused)
    );
    let e = try_build(
        "name: no\ntype: deny_all\nserver: 1.1.1.1\n",
        &Lookup::default(),
    )
    .err()
    .unwrap();
    assert_eq!((e.line, e.key_path.as_str()), (3, "resolver[no].server"));
}

#[tokio::test]
async fn cares_without_server_uses_resolv_conf() {
    // which servers /etc/resolv.conf names is not ours to control: building
    // works and literals need no server
    let r = build("name: sys\ntype: c-ares\n", &Lookup::default());
    assert_eq!(
        r.resolve_family("::1", AddrFamily::Ipv6).await.unwrap(),
        vec![ip("::1")]
    );
}

#[test]
fn config_errors_name_file_line_and_key() {
    let lookup = Lookup::default();
    let e = try_build(
        "name: x\ntype: c-ares\nserver: 1.2.3.4\n\neach_tries: many\n",
        &lookup,
    )
    .err()
    .unwrap();
    assert_eq!(e.file.to_str(), Some("resolver.yaml"));
    assert_eq!((e.line, e.key_path.as_str()), (5, "resolver[x].each_tries"));
    let e = try_build("name: x\ntype: hickory\nserver_port: 53\n", &lookup)
        .err()
        .unwrap();
    assert!(e.message.contains("`server`"), "{e}");
    let e = try_build(
        "name: x\ntype: hickory\nserver: 1.1.1.1\ntcp_misc_opts: {}\n",
        &lookup,
    )
    .err()
    .unwrap();
    assert_eq!(
        (e.line, e.key_path.as_str()),
        (4, "resolver[x].tcp_misc_opts")
    );
    assert!(e.message.contains("not implemented"));
    let e = try_build(
        "name: x\ntype: fail_over\nprimary: a\nstandby: b\n",
        &lookup,
    )
    .err()
    .unwrap();
    assert_eq!((e.line, e.key_path.as_str()), (3, "resolver[x].primary"));
}
