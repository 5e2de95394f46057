//! socks_proxy end to end: curl (`--socks4`, `--socks4a`, `--socks5`,
//! `--socks5-hostname`), python requests over `socks5h://`, PySocks UDP ASSOCIATE, and
//! raw SOCKS for the exact reply codes. Names resolve through the daemon's resolver,
//! pointed at a dnsmasq the test starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use px_e2e::cmd::{self, curl_http};
use px_e2e::config::Standard;
use px_e2e::daemon::Daemon;
use px_e2e::dns::Dnsmasq;
use px_e2e::echo::{TcpEcho, UdpEcho};
use px_e2e::net::{self, Closed};
use px_e2e::origin::HttpOrigin;
use px_e2e::socks::{self, Dst, UdpAssociation};
use px_e2e::{hostport, pattern};

struct Env {
    _dns: Dnsmasq,
    daemon: Daemon,
    socks: u16,
}

fn start() -> Env {
    let dns = Dnsmasq::start(&[("origin.test", "127.0.0.1"), ("denied.test", "127.0.0.2")]);
    let socks = net::free_tcp_port();
    let daemon = Daemon::start(
        &Standard::new().socks(socks).dns(dns.port()).render(),
        &[socks],
    );
    Env {
        _dns: dns,
        daemon,
        socks,
    }
}

#[test]
fn curl_socks4_socks4a_socks5_socks5_hostname() {
    let origin = HttpOrigin::start();
    let env = start();
    let sp = hostport(env.socks);
    let by_ip = origin.url("/hello");
    let by_name = origin.url_with_host("origin.test", "/hello");
    for (flag, url) in [
        ("--socks4", &by_ip),
        ("--socks4a", &by_name),
        ("--socks5", &by_ip),
        ("--socks5-hostname", &by_name),
    ] {
        let r = curl_http(&[flag, &sp, url]);
        assert_eq!(
            r.code,
            200,
            "{flag} {url}: {}\n{}",
            r.describe(),
            env.daemon.describe()
        );
        assert_eq!(r.body, b"hello world\n", "{flag}");
    }
    // HEAD, a POST and a 16 MiB download through socks5-hostname
    let r = curl_http(&[
        "--socks5-hostname",
        &sp,
        "-I",
        &origin.url_with_host("origin.test", "/pattern/777"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(r.header("content-length").as_deref(), Some("777"));
    let r = curl_http(&[
        "--socks5-hostname",
        &sp,
        "--data-binary",
        "posted through socks",
        &origin.url_with_host("origin.test", "/echo"),
    ]);
    assert_eq!(r.body, b"posted through socks", "{}", r.describe());
    let big = pattern::BIG;
    let r = curl_http(&[
        "--socks5-hostname",
        &sp,
        &origin.url_with_host("origin.test", &format!("/pattern/{big}")),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, big).unwrap();
}

#[test]
fn python_requests_over_socks5h() {
    let origin = HttpOrigin::start();
    let env = start();
    let script = r#"
import sys, requests
proxy, base = sys.argv[1], sys.argv[2]
proxies = {"http": proxy, "https": proxy}
r = requests.get(base + "/hello", proxies=proxies, timeout=10)
assert r.status_code == 200 and r.content == b"hello world\n", (r.status_code, r.content[:200])
r = requests.head(base + "/pattern/55", proxies=proxies, timeout=10)
assert r.status_code == 200 and r.headers["Content-Length"] == "55", dict(r.headers)
body = b"socks5h body " * 1000
r = requests.post(base + "/echo", data=body, proxies=proxies, timeout=10)
assert r.status_code == 200 and r.content == body, (r.status_code, len(r.content))
print("OK")
"#;
    let out = cmd::python(
        script,
        &[
            format!("socks5h://127.0.0.1:{}", env.socks),
            format!("http://origin.test:{}", origin.port()),
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.success() && out.stdout_str().contains("OK"),
        "{}\n{}",
        out.describe(),
        env.daemon.describe()
    );
    assert_eq!(origin.request_count(), 3);
}

const PYSOCKS_UDP: &str = r#"
import sys, socket, socks
ph, pp, th, tp, rdns = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, ph, pp, rdns=rdns)
s.settimeout(5)
for i in range(5):
    msg = b"udp-%d-" % i + bytes(range(256)) * 4
    s.sendto(msg, (th, tp))
    data, addr = s.recvfrom(65535)
    assert data == msg, (i, data[:40])
s.close()
print("OK")
"#;

fn pysocks_udp(env: &Env, echo: &UdpEcho, target: &str, rdns: bool) {
    let out = cmd::python(
        PYSOCKS_UDP,
        &[
            "127.0.0.1".into(),
            env.socks.to_string(),
            target.into(),
            echo.port().to_string(),
            if rdns { "1" } else { "0" }.into(),
        ],
        Duration::from_secs(30),
    );
    assert!(
        out.success() && out.stdout_str().contains("OK"),
        "target {target}: {}\n{}",
        out.describe(),
        env.daemon.describe()
    );
}

/// PySocks announces `0.0.0.0:<its port>` in UDP ASSOCIATE and sends to an IPv4 target.
#[test]
fn pysocks_udp_associate_relays_to_udp_echo() {
    let echo = UdpEcho::start();
    let env = start();
    pysocks_udp(&env, &echo, "127.0.0.1", false);
    assert_eq!(echo.datagrams(), 5);
}

/// With remote DNS PySocks sends datagrams for a domain target (the daemon resolves
/// it), and announces its own address as the domain "0" in UDP ASSOCIATE.
#[test]
fn pysocks_udp_associate_with_remote_dns() {
    let echo = UdpEcho::start();
    let env = start();
    pysocks_udp(&env, &echo, "origin.test", true);
    assert_eq!(echo.datagrams(), 5);
}

#[test]
fn raw_udp_associate_is_bound_to_its_control_connection() {
    let echo = UdpEcho::start();
    let env = start();
    let assoc = UdpAssociation::open(env.socks).unwrap_or_else(|rep| {
        panic!(
            "UDP ASSOCIATE refused with {rep:#x}\n{}",
            env.daemon.describe()
        )
    });
    for i in 0..3u8 {
        let payload = vec![i; 1000];
        assoc.send(&Dst::local(echo.port()), &payload);
        let (from, back) = assoc.recv().expect("a datagram back through the relay");
        assert_eq!(back, payload);
        assert_eq!(
            from,
            echo.addr(),
            "the relay names the echo server as the source"
        );
    }
    assert_eq!(echo.datagrams(), 3);
    // closing the control connection ends the association
    let UdpAssociation {
        control,
        relay,
        sock,
    } = assoc;
    drop(control);
    std::thread::sleep(Duration::from_millis(500));
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let _ = sock.send_to(&socks::udp_wrap(&Dst::local(echo.port()), b"late"), relay);
    let mut buf = [0u8; 2048];
    let late = sock.recv_from(&mut buf);
    assert!(
        late.is_err(),
        "a datagram was relayed after the control connection closed"
    );
    assert_eq!(echo.datagrams(), 3, "the late datagram reached the target");
}

#[test]
fn raw_socks5_connect_reply_codes() {
    let echo = TcpEcho::start();
    let env = start();

    // IPv4 target: granted, and the tunnel works
    let (mut c, r) = socks::connect5(env.socks, &Dst::local(echo.port()));
    assert_eq!(r.rep, 0x00, "{}", env.daemon.describe());
    c.send(b"ping");
    assert_eq!(c.read_exact_n(4), b"ping");
    drop(c);

    // domain target resolved by the daemon
    let (mut c, r) = socks::connect5(env.socks, &Dst::Name("origin.test".into(), echo.port()));
    assert_eq!(r.rep, 0x00);
    c.send(b"pong");
    assert_eq!(c.read_exact_n(4), b"pong");
    drop(c);

    // nothing listens there: connection refused
    let dead = net::free_tcp_port();
    let (_c, r) = socks::connect5(env.socks, &Dst::local(dead));
    assert_eq!(r.rep, 0x05, "refused target must answer 0x05");

    // IPv6 loopback: the egress filter refuses loopback by default
    let (_c, r) = socks::connect5(env.socks, &Dst::V6(Ipv6Addr::LOCALHOST, echo.port()));
    assert_eq!(
        r.rep, 0x02,
        "[::1] is loopback, not allowed by the egress filter"
    );

    // SOCKS4 too
    let (mut c, rep) = socks::connect4(env.socks, Ipv4Addr::LOCALHOST, echo.port(), None);
    assert_eq!(rep, 90);
    c.send(b"four");
    assert_eq!(c.read_exact_n(4), b"four");
    let (mut c, rep) = socks::connect4(
        env.socks,
        Ipv4Addr::UNSPECIFIED,
        echo.port(),
        Some("origin.test"),
    );
    assert_eq!(rep, 90, "SOCKS4a");
    c.send(b"4a4a");
    assert_eq!(c.read_exact_n(4), b"4a4a");
    c.shutdown_write();
    assert_eq!(c.wait_closed(Duration::from_secs(5)), Closed::Eof);
    assert_eq!(echo.connections(), 4);
}

#[test]
fn domain_resolving_to_a_denied_ip_is_not_allowed() {
    let env = start();
    let denied_echo = TcpEcho::start_on(px_e2e::config::DENIED_IP);
    let (_c, r) = socks::connect5(
        env.socks,
        &Dst::Name("denied.test".into(), denied_echo.port()),
    );
    assert_eq!(
        r.rep, 0x02,
        "the egress filter applies to resolved addresses"
    );
    assert_eq!(denied_echo.connections(), 0);
}

#[test]
fn transmute_udp_echo_ip_changes_the_announced_relay_ip() {
    let echo = UdpEcho::start();
    let socks = net::free_tcp_port();
    let yaml = Standard::new()
        .socks(socks)
        .socks_key("transmute_udp_echo_ip:")
        .socks_key("  \"127.0.0.1\": \"127.0.0.9\"")
        .render();
    let d = Daemon::start(&yaml, &[socks]);
    let mut control = net::RawConn::connect(socks);
    socks::greet5(&mut control);
    socks::request5(&mut control, 0x03, &Dst::V4(Ipv4Addr::UNSPECIFIED, 0));
    let r = socks::read_reply5(&mut control);
    assert_eq!(r.rep, 0, "{}", d.describe());
    let bind = r.bind.expect("an IPv4 relay address");
    assert_eq!(bind.ip(), std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
    // the relay itself still listens on the real address
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let relay = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, bind.port()));
    sock.send_to(&socks::udp_wrap(&Dst::local(echo.port()), b"mapped"), relay)
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("an answer through the relay");
    let (_, payload) = socks::udp_unwrap(&buf[..n]).unwrap();
    assert_eq!(payload, b"mapped");
    drop(control);
}

#[test]
fn ipv6_targets_when_the_egress_filter_allows_them() {
    let origin = HttpOrigin::start_on(Ipv6Addr::LOCALHOST);
    let echo = TcpEcho::start_on(Ipv6Addr::LOCALHOST);
    let (http, socks_port) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = Standard::new()
        .http(http)
        .socks(socks_port)
        .egress_allow("::1")
        .render();
    let d = Daemon::start(&yaml, &[http, socks_port]);

    let (mut c, r) = socks::connect5(socks_port, &Dst::V6(Ipv6Addr::LOCALHOST, echo.port()));
    assert_eq!(r.rep, 0x00, "SOCKS5 to [::1]: {}", d.describe());
    c.send(b"six");
    assert_eq!(c.read_exact_n(3), b"six");

    let url = origin.url("/hello");
    assert!(url.starts_with("http://[::1]:"), "{url}");
    let r = curl_http(&["-x", &px_e2e::http_proxy_url(http), &url]);
    assert_eq!(r.code, 200, "{}", r.describe());
    let r = curl_http(&["--socks5", &hostport(socks_port), &url]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(origin.request_count(), 2);
}
