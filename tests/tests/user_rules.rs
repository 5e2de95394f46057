//! Per-user rules end to end: `dst_port_filter`, `dst_host_filter_set` (exact, child, regex,
//! subnet), `resolve_redirection` (to an address, to another name, a child rewrite),
//! `resolve_strategy` and `explicit_sites`, each allowing what it should and refusing the rest
//! with the exact HTTP status or SOCKS reply. Names are served by a real dnsmasq.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod user_support;

use px_e2e::cmd::curl_http;
use px_e2e::daemon::Daemon;
use px_e2e::dns::Dnsmasq;
use px_e2e::echo::TcpEcho;
use px_e2e::net;
use px_e2e::origin::HttpOrigin;
use px_e2e::socks::Dst;
use user_support::*;

struct Setup {
    _d: Daemon,
    _dns: Dnsmasq,
    http: u16,
    socks: u16,
    origin: HttpOrigin,
}

fn setup(origin: HttpOrigin) -> Setup {
    let dns = Dnsmasq::start(&[
        ("exact.test", "127.0.0.1"),
        ("child.test", "127.0.0.1"),
        ("re42.test", "127.0.0.1"),
        ("other.test", "127.0.0.1"),
        ("dual.test", "127.0.0.1"),
        ("dual.test", "::1"),
        ("fixed.test", ""),
    ]);
    let port = origin.port();
    let lines = [
        "user_group:".to_string(),
        "  - name: default".to_string(),
        "    static_users:".to_string(),
        "      - name: ports".to_string(),
        format!("        token: {GUIDE_TOKEN}"),
        format!("        dst_port_filter: [{port}]"),
        "      - name: hosts".to_string(),
        format!("        token: {GUIDE_TOKEN}"),
        "        dst_host_filter_set:".to_string(),
        "          exact: [exact.test]".to_string(),
        "          child: [child.test]".to_string(),
        "          regex: ['^re[0-9]+[.]test$']".to_string(),
        "          subnet: [127.0.0.1/32]".to_string(),
        "      - name: redir".to_string(),
        format!("        token: {GUIDE_TOKEN}"),
        "        resolve_redirection:".to_string(),
        "          - {exact: fixed.test, to: 127.0.0.1}".to_string(),
        "          - {exact: alias.test, to: exact.test}".to_string(),
        "          - {child: old.test, to: child.test}".to_string(),
        "      - name: v6only".to_string(),
        format!("        token: {GUIDE_TOKEN}"),
        "        resolve_strategy: ipv6only".to_string(),
        "        explicit_sites:".to_string(),
        "          - id: v4-site".to_string(),
        "            child_match: v4.dual.test".to_string(),
        "            emit_stats: true".to_string(),
        "            resolve_strategy: {query: ipv4only}".to_string(),
    ];
    let group = lines.join("\n");
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = config(http, socks, &group)
        .dns(dns.port())
        .egress_allow("::1")
        .egress_allow("127.0.0.3")
        .render();
    let d = Daemon::start(&yaml, &[http, socks]);
    Setup {
        _d: d,
        _dns: dns,
        http,
        socks,
        origin,
    }
}

#[test]
fn port_and_host_filters() {
    let origin = HttpOrigin::start();
    let other = HttpOrigin::start();
    let far = HttpOrigin::start_on([127, 0, 0, 3]);
    let echo = TcpEcho::start();
    let s = setup(origin);
    let (http, socks) = (s.http, s.socks);
    let p = s.origin.port();
    let url = |host: &str| format!("http://{host}:{p}/hello");

    // dst_port_filter: the origin's port only
    let px = http_proxy(http, "ports", "toor");
    assert_eq!(curl_status(&px, &url("127.0.0.1")), 200);
    let r = curl_http(&["-x", &px, &other.url("/hello")]);
    assert_eq!(r.code, 403, "{}", r.describe());
    assert!(
        r.body_str().contains(&format!(
            "port {} is not allowed for this user",
            other.port()
        )),
        "{}",
        r.describe()
    );
    let r = curl_http(&["-p", "-x", &px, &other.url("/hello")]);
    assert_eq!(r.code, 403, "CONNECT: {}", r.describe());
    let (_c, reply) = socks5_connect(socks, "ports", "toor", &Dst::local(echo.port()));
    assert_eq!(reply.rep, 0x02, "SOCKS5 to a refused port");
    let (_c, reply) = socks5_connect(socks, "ports", "toor", &Dst::local(p));
    assert_eq!(reply.rep, 0x00);
    // another user is not bound by it
    assert_eq!(
        curl_status(&http_proxy(http, "redir", "toor"), &other.url("/hello")),
        200
    );

    // dst_host_filter_set
    let px = http_proxy(http, "hosts", "toor");
    let spx = socks_proxy(socks, "hosts", "toor");
    for host in [
        "exact.test",
        "www.child.test",
        "child.test",
        "re42.test",
        "127.0.0.1",
    ] {
        assert_eq!(curl_status(&px, &url(host)), 200, "http {host}");
        assert_eq!(curl_status(&spx, &url(host)), 200, "socks {host}");
    }
    for host in ["other.test", "www.exact.test", "re42x.test", "xchild.test"] {
        let r = curl_http(&["-x", &px, &url(host)]);
        assert_eq!(r.code, 403, "{host}: {}", r.describe());
        assert!(r.body_str().contains("not allowed for this user"));
        let (_c, reply) = socks5_connect(socks, "hosts", "toor", &Dst::Name(host.into(), p));
        assert_eq!(reply.rep, 0x02, "socks {host}");
    }
    // subnet: 127.0.0.1/32 only; 127.0.0.3 exists and the escaper allows it
    let r = curl_http(&["-x", &px, &far.url("/hello")]);
    assert_eq!(r.code, 403, "{}", r.describe());
    assert_eq!(
        curl_status(&http_proxy(http, "redir", "toor"), &far.url("/hello")),
        200
    );
}

#[test]
fn redirection_strategy_and_sites() {
    let origin = HttpOrigin::start();
    let s = setup(origin);
    let (http, socks) = (s.http, s.socks);
    let p = s.origin.port();
    let url = |host: &str| format!("http://{host}:{p}/hello");
    let px = http_proxy(http, "redir", "toor");
    let spx = socks_proxy(socks, "redir", "toor");

    // fixed.test does not resolve: 502 without the redirection
    let r = curl_http(&["-x", &http_proxy(http, "hosts", "toor"), &url("fixed.test")]);
    assert_eq!(
        r.code,
        403,
        "hosts may not go there at all: {}",
        r.describe()
    );
    let r = curl_http(&[
        "-x",
        &http_proxy(http, "v6only", "toor"),
        &url("fixed.test"),
    ]);
    assert_eq!(r.code, 502, "{}", r.describe());
    let before = s.origin.request_count();
    for host in ["fixed.test", "alias.test", "www.old.test", "old.test"] {
        assert_eq!(curl_status(&px, &url(host)), 200, "http {host}");
        assert_eq!(curl_status(&spx, &url(host)), 200, "socks {host}");
        let r = curl_http(&["-p", "-x", &px, &url(host)]);
        assert_eq!(r.code, 200, "CONNECT {host}: {}", r.describe());
    }
    // the request keeps its Host
    let reqs = s.origin.requests();
    assert_eq!(reqs.len(), before + 12);
    assert_eq!(
        reqs[before].header("host"),
        Some(format!("fixed.test:{p}").as_str())
    );
    // a name that no rule covers still resolves normally, a missing one fails
    assert_eq!(curl_status(&px, &url("exact.test")), 200);
    assert_eq!(curl_status(&px, &url("nowhere.old-test")), 502);

    // resolve_strategy ipv6only: dual.test goes to ::1, where nothing listens
    let px6 = http_proxy(http, "v6only", "toor");
    let r = curl_http(&["-x", &px6, &url("dual.test")]);
    assert_eq!(r.code, 502, "{}", r.describe());
    let (_c, reply) = socks5_connect(socks, "v6only", "toor", &Dst::Name("dual.test".into(), p));
    assert_eq!(reply.rep, 0x05, "connection refused on ::1");
    // ...but the explicit site v4.dual.test says ipv4only
    assert_eq!(curl_status(&px6, &url("v4.dual.test")), 200);
    assert_eq!(
        curl_status(
            &socks_proxy(socks, "v6only", "toor"),
            &url("www.v4.dual.test")
        ),
        200
    );
    // and a user without a strategy gets the escaper's (IPv4 first)
    assert_eq!(curl_status(&px, &url("dual.test")), 200);
}
