//! Per-user limits end to end, each measured: `tcp_sock_speed_limit` on 16 MiB transfers (HTTP
//! forward, CONNECT, SOCKS5 both ways) within 20% of the limit, `udp_sock_speed_limit` on a UDP
//! association, and `tcp_conn_rate_limit`, `request_rate_limit`, `request_max_alive` counted
//! at the boundary, with the exact refusals (HTTP 429, SOCKS5 0x02, SOCKS4 0x5B) and nothing
//! else of that user's or other users' traffic disturbed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod user_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use px_e2e::cmd::curl_http;
use px_e2e::daemon::Daemon;
use px_e2e::echo::{TcpEcho, UdpEcho};
use px_e2e::net::{self, RawConn};
use px_e2e::origin::HttpOrigin;
use px_e2e::pattern;
use px_e2e::socks::{Dst, UdpAssociation};
use user_support::*;

const MIB16: usize = 16 << 20;

fn start() -> (Daemon, u16, u16) {
    let lines = [
        "user_group:".to_string(),
        "  - name: default".to_string(),
        "    anonymous_user:".to_string(),
        "      name: udp".to_string(),
        "      udp_sock_speed_limit: {shift_millis: 7, upload_bytes: 32K, download_bytes: 32K}"
            .to_string(),
        "    static_users:".to_string(),
        format!("      - {{name: fast, token: {GUIDE_TOKEN}}}"),
        format!(
            "      - {{name: slow, token: {GUIDE_TOKEN}, \
             tcp_sock_speed_limit: {{shift_millis: 7, upload: 8MiB/s, download: 8MiB/s}}}}"
        ),
        format!("      - {{name: conns_h, token: {GUIDE_TOKEN}, tcp_conn_rate_limit: 3/m}}"),
        format!("      - {{name: conns_s, token: {GUIDE_TOKEN}, tcp_conn_rate_limit: 3/m}}"),
        format!("      - {{name: reqs, token: {GUIDE_TOKEN}, request_rate_limit: 4/m}}"),
        format!("      - {{name: alive, token: {GUIDE_TOKEN}, request_max_alive: 2}}"),
    ];
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = config(http, socks, &lines.join("\n"))
        .socks_key("socks4_user_id_auth: true")
        .render();
    (Daemon::start(&yaml, &[http, socks]), http, socks)
}

/// Seconds a 16 MiB transfer must take at 8 MiB/s, and the 20% band around it.
fn assert_rate(what: &str, took: Duration) {
    let secs = took.as_secs_f64();
    assert!(
        (1.6..=2.4).contains(&secs),
        "{what}: 16 MiB at 8 MiB/s took {secs:.2}s"
    );
}

#[test]
fn speed_limits_are_measured() {
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let (_d, http, socks) = start();
    let url = origin.url(&format!("/pattern/{MIB16}"));

    // the unlimited user is fast, so the limits below are the user's
    let t0 = Instant::now();
    let r = curl_http(&["-x", &http_proxy(http, "fast", "toor"), &url]);
    assert_eq!(r.code, 200);
    assert!(
        t0.elapsed() < Duration::from_millis(1300),
        "unlimited: {:?}",
        t0.elapsed()
    );

    for (what, args) in [
        (
            "http forward",
            vec!["-x".to_string(), http_proxy(http, "slow", "toor")],
        ),
        (
            "CONNECT",
            vec!["-p".into(), "-x".into(), http_proxy(http, "slow", "toor")],
        ),
        (
            "socks5",
            vec!["-x".into(), socks_proxy(socks, "slow", "toor")],
        ),
    ] {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.push(&url);
        let t0 = Instant::now();
        let r = curl_http(&a);
        let took = t0.elapsed();
        assert_eq!(r.code, 200, "{what}: {}", r.describe());
        pattern::check(&r.body, MIB16).unwrap();
        assert_rate(what, took);
    }

    // upload and download at once through SOCKS5 to an echo server
    let (c, reply) = socks5_connect(socks, "slow", "toor", &Dst::local(echo.port()));
    assert_eq!(reply.rep, 0);
    let mut reader = c.stream.try_clone().unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut writer = c.stream;
    let t0 = Instant::now();
    let w = std::thread::spawn(move || {
        let data = pattern::make(MIB16);
        writer.write_all(&data).unwrap();
        writer
    });
    let mut got = vec![0u8; MIB16];
    reader.read_exact(&mut got).unwrap();
    let took = t0.elapsed();
    drop(w.join().unwrap());
    pattern::check(&got, MIB16).unwrap();
    assert_rate("socks5 upload+echo", took);

    // UDP: 500 ping-pongs of 1000 bytes at 32 KB per 128 ms each way: 2.0 s
    let uecho = UdpEcho::start();
    let assoc = UdpAssociation::open(socks).expect("UDP ASSOCIATE as the anonymous user");
    let dst = Dst::local(uecho.port());
    let payload = vec![0x5Au8; 1000];
    let t0 = Instant::now();
    for _ in 0..500 {
        assoc.send(&dst, &payload);
        let (_, back) = assoc.recv().expect("echo through the relay");
        assert_eq!(back.len(), 1000);
    }
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        (1.6..=2.4).contains(&secs),
        "UDP 500 KB each way at 250 KB/s took {secs:.2}s"
    );
}

#[test]
fn rate_limits_and_max_alive_at_the_boundary() {
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let (_d, http, socks) = start();
    let hello = origin.url("/hello");

    // tcp_conn_rate_limit 3/m: three new connections, then 429 / 0x02
    let codes: Vec<u16> = (0..5)
        .map(|_| curl_status(&http_proxy(http, "conns_h", "toor"), &hello))
        .collect();
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    let r = curl_http(&["-x", &http_proxy(http, "conns_h", "toor"), &hello]);
    assert!(
        r.body_str().contains("connection rate limit"),
        "{}",
        r.describe()
    );
    // keep-alive requests of a counted connection are not new connections
    let out = px_e2e::cmd::curl(&[
        "-x",
        &http_proxy(http, "conns_s", "toor"),
        &hello,
        &hello,
        &hello,
        &hello,
    ]);
    assert_eq!(
        out.stdout_str().matches("hello world").count(),
        4,
        "{}",
        out.describe()
    );
    let replies: Vec<u8> = (0..3)
        .map(|_| {
            socks5_connect(socks, "conns_s", "toor", &Dst::local(echo.port()))
                .1
                .rep
        })
        .collect();
    assert_eq!(
        replies,
        [0x00, 0x00, 0x02],
        "one connection was counted by HTTP"
    );

    // request_rate_limit 4/m: four requests, then 429; SOCKS4 is refused with 0x5B
    let codes: Vec<u16> = (0..6)
        .map(|_| curl_status(&http_proxy(http, "reqs", "toor"), &hello))
        .collect();
    assert_eq!(codes, [200, 200, 200, 200, 429, 429]);
    let mut c = RawConn::connect(socks);
    let mut m = vec![0x04, 0x01];
    m.extend_from_slice(&echo.port().to_be_bytes());
    m.extend_from_slice(&[127, 0, 0, 1]);
    m.extend_from_slice(b"reqs:toor\0");
    c.send(&m);
    assert_eq!(c.read_exact_n(8)[1], 0x5B);
    // other users are not touched
    assert_eq!(curl_status(&http_proxy(http, "fast", "toor"), &hello), 200);

    // request_max_alive 2: two tunnels alive, the third is refused, the two keep working
    let target = format!("127.0.0.1:{}", echo.port());
    let (mut t1, s1) = http_connect(http, Some(("alive", "toor")), &target);
    let (mut t2, s2) = http_connect(http, Some(("alive", "toor")), &target);
    assert_eq!((s1, s2), (200, 200));
    let (_t3, s3) = http_connect(http, Some(("alive", "toor")), &target);
    assert_eq!(s3, 429);
    let (_c, reply) = socks5_connect(socks, "alive", "toor", &Dst::local(echo.port()));
    assert_eq!(reply.rep, 0x02);
    let r = curl_http(&["-x", &http_proxy(http, "alive", "toor"), &hello]);
    assert_eq!(r.code, 429, "{}", r.describe());
    assert!(
        r.body_str().contains("request_max_alive"),
        "{}",
        r.describe()
    );
    assert!(echo_roundtrip(&mut t1, b"one"));
    assert!(echo_roundtrip(&mut t2, b"two"));
    assert_eq!(curl_status(&http_proxy(http, "fast", "toor"), &hello), 200);
    // one tunnel closes: its slot is free again
    drop(t1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut t, s) = http_connect(http, Some(("alive", "toor")), &target);
        if s == 200 {
            assert!(echo_roundtrip(&mut t, b"three"));
            break;
        }
        assert!(Instant::now() < deadline, "the slot was not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(echo_roundtrip(&mut t2, b"still"));
}
