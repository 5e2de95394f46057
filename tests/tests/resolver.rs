//! Name resolution through the daemon, against a dnsmasq the test starts: the `c-ares`
//! and `hickory` resolvers, and `fail_over` taking over from a dead or silent primary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use px_e2e::cmd::curl_http;
use px_e2e::config::Standard;
use px_e2e::daemon::Daemon;
use px_e2e::dns::{Dnsmasq, SilentDns};
use px_e2e::net;
use px_e2e::origin::HttpOrigin;
use px_e2e::socks::{self, Dst};
use px_e2e::{hostport, http_proxy_url};

fn records() -> Vec<(&'static str, &'static str)> {
    vec![("origin.test", "127.0.0.1"), ("nx.test", "")]
}

/// Start a daemon with `resolvers` (which must define `default`), check that curl through
/// both the http and the socks server reaches `origin.test`, and that dnsmasq was asked.
fn resolves_through(resolvers: &str, dns: &Dnsmasq) -> Daemon {
    let origin = HttpOrigin::start();
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = Standard::new()
        .http(http)
        .socks(socks)
        .resolvers(resolvers)
        .render();
    let d = Daemon::start(&yaml, &[http, socks]);
    let before = dns.queries_for("origin.test");
    let url = origin.url_with_host("origin.test", "/hello");

    let r = curl_http(&["-x", &http_proxy_url(http), &url]);
    assert_eq!(
        r.code,
        200,
        "{}\n{}\n--- dnsmasq ---\n{}",
        r.describe(),
        d.describe(),
        dns.log()
    );
    assert_eq!(r.body, b"hello world\n");
    let r = curl_http(&["--socks5-hostname", &hostport(socks), &url]);
    assert_eq!(r.code, 200, "{}\n{}", r.describe(), d.describe());
    assert!(
        dns.queries_for("origin.test") > before,
        "dnsmasq was never asked for origin.test:\n{}",
        dns.log()
    );
    assert_eq!(origin.request_count(), 2);
    d
}

#[test]
fn c_ares_resolves_through_dnsmasq() {
    let dns = Dnsmasq::start(&records());
    let resolvers = format!(
        "  - name: default\n    type: c-ares\n    server: 127.0.0.1:{}\n",
        dns.port()
    );
    resolves_through(&resolvers, &dns);
}

#[test]
fn hickory_resolves_through_dnsmasq() {
    let dns = Dnsmasq::start(&records());
    let resolvers = format!(
        "  - name: default\n    type: hickory\n    server: 127.0.0.1\n    server_port: {}\n",
        dns.port()
    );
    resolves_through(&resolvers, &dns);
}

#[test]
fn fail_over_takes_over_from_a_dead_primary() {
    let dns = Dnsmasq::start(&records());
    let dead = net::free_udp_port();
    let resolvers = format!(
        "  - name: default\n    type: fail_over\n    primary: dead\n    standby: live\n\
         \x20 - name: dead\n    type: c-ares\n    server: 127.0.0.1:{dead}\n\
         \x20 - name: live\n    type: c-ares\n    server: 127.0.0.1:{}\n",
        dns.port()
    );
    resolves_through(&resolvers, &dns);
}

#[test]
fn fail_over_takes_over_from_a_silent_primary() {
    let dns = Dnsmasq::start(&records());
    let silent = SilentDns::start();
    let resolvers = format!(
        "  - name: default\n    type: fail_over\n    primary: silent\n    standby: live\n\
         \x20 - name: silent\n    type: hickory\n    server: 127.0.0.1\n    server_port: {}\n\
         \x20 - name: live\n    type: hickory\n    server: 127.0.0.1\n    server_port: {}\n",
        silent.port(),
        dns.port()
    );
    let started = std::time::Instant::now();
    resolves_through(&resolvers, &dns);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the standby should answer after the fallback delay, not after the primary's timeouts"
    );
}

#[test]
fn unknown_name_fails_cleanly_then_a_known_one_works() {
    let dns = Dnsmasq::start(&records());
    let origin = HttpOrigin::start();
    let (http, socks_port) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = Standard::new()
        .http(http)
        .socks(socks_port)
        .dns(dns.port())
        .render();
    let mut d = Daemon::start(&yaml, &[http, socks_port]);

    let r = curl_http(&[
        "-x",
        &http_proxy_url(http),
        &origin.url_with_host("nx.test", "/hello"),
    ]);
    assert!(
        r.code == 502 || r.code == 504,
        "NXDOMAIN through the http proxy: want 502 or 504: {}",
        r.describe()
    );
    let (_c, rep) = socks::connect5(socks_port, &Dst::Name("nx.test".into(), origin.port()));
    assert_eq!(rep.rep, 0x04, "NXDOMAIN through SOCKS5 is host unreachable");

    let r = curl_http(&[
        "-x",
        &http_proxy_url(http),
        &origin.url_with_host("origin.test", "/hello"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert!(d.is_running());
}

#[test]
fn resolve_timeout_gets_504() {
    let silent = SilentDns::start();
    let origin = HttpOrigin::start();
    let (http, socks_port) = (net::free_tcp_port(), net::free_tcp_port());
    let resolvers = format!(
        "  - name: default\n    type: c-ares\n    server: 127.0.0.1:{}\n    each_timeout: 300\n    each_tries: 1\n",
        silent.port()
    );
    let yaml = Standard::new()
        .http(http)
        .socks(socks_port)
        .resolvers(&resolvers)
        .render();
    let mut d = Daemon::start(&yaml, &[http, socks_port]);
    let started = std::time::Instant::now();
    let r = curl_http(&[
        "-x",
        &http_proxy_url(http),
        &origin.url_with_host("slow.test", "/hello"),
    ]);
    assert_eq!(
        r.code,
        504,
        "a resolve timeout is 504: {}\n{}",
        r.describe(),
        d.describe()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (_c, rep) = socks::connect5(socks_port, &Dst::Name("slow2.test".into(), origin.port()));
    assert!(
        rep.rep == 0x04 || rep.rep == 0x06,
        "a resolve timeout through SOCKS5: host unreachable or TTL expired, got {:#x}",
        rep.rep
    );
    // a literal IP needs no resolver and still works
    let r = curl_http(&["-x", &http_proxy_url(http), &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert!(d.is_running());
}
