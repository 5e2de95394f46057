//! tcp_stream and tls_stream end to end: the real g3proxy, the user guide's TCP Mapping, TLS
//! Offloading, TLS Encapsulation and mTLS Client blocks, upstream pick policies, and real TLS
//! peers (openssl s_server / s_client, curl, python's ssl) with certificates made at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tls_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use px_e2e::cmd::{self, curl_http};
use px_e2e::daemon::{Daemon, fill};
use px_e2e::echo::TcpEcho;
use px_e2e::net;
use px_e2e::origin::HttpOrigin;
use px_e2e::pattern;
use tls_support::{
    Pki, assert_has, counts, echo_via, lo, preamble, refused_via, s_client, s_server_rev, settle,
};

/// The user guide's "TCP Mapping" block, with loopback addresses.
const GUIDE_TCP_MAPPING: &str = r#"
server:
  - name: tcp           # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default    # Required, can be any type of exit
    type: tcp_stream
    listen:
      address: "127.0.0.1:@PORT@"
    proxy_pass:         # Target address, can be single/multiple
      - "127.0.0.1:@UP1@"
      - "127.0.0.1:@UP2@"
    upstream_pick_policy: rr # Load balancing algorithm, default is random
"#;

#[test]
fn guide_tcp_mapping_round_robin_two() {
    let (e1, e2) = (TcpEcho::start(), TcpEcho::start());
    let port = net::free_tcp_port();
    let yaml = preamble(None)
        + &fill(
            GUIDE_TCP_MAPPING,
            &[
                ("PORT", port.to_string()),
                ("UP1", e1.port().to_string()),
                ("UP2", e2.port().to_string()),
            ],
        );
    let _d = Daemon::start(&yaml, &[port]);
    settle();
    let base = (e1.connections(), e2.connections());
    let data = pattern::make(200_000);
    for _ in 0..4 {
        let back = echo_via(lo(1), port, &data);
        pattern::check(&back, data.len()).unwrap();
    }
    assert_eq!(
        (e1.connections() - base.0, e2.connections() - base.1),
        (2, 2)
    );
}

/// Which of the echoes got the last connection (by the connection counts before and after).
fn which(echoes: &[TcpEcho], before: &[usize]) -> usize {
    let after: Vec<usize> = echoes.iter().map(|e| e.connections()).collect();
    let hit: Vec<usize> = (0..echoes.len())
        .filter(|i| after[*i] != before[*i])
        .collect();
    assert_eq!(
        hit.len(),
        1,
        "exactly one upstream per connection: {before:?} -> {after:?}"
    );
    hit[0]
}

fn stream_server(name: &str, port: u16, ups: &[u16], extra: &str) -> String {
    let list: Vec<String> = ups.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "  - name: {name}\n    type: tcp_stream\n    escaper: default\n    listen: 127.0.0.1:{port}\n    \
         proxy_pass: [{}]\n{extra}",
        list.join(", ")
    )
}

#[test]
fn round_robin_spreads_evenly_over_three() {
    let echoes = [TcpEcho::start(), TcpEcho::start(), TcpEcho::start()];
    let ups: Vec<u16> = echoes.iter().map(|e| e.port()).collect();
    let port = net::free_tcp_port();
    let yaml = preamble(None)
        + "server:\n"
        + &stream_server("rr", port, &ups, "    upstream_pick_policy: round_robin\n");
    let _d = Daemon::start(&yaml, &[port]);
    settle();
    let base = counts(&echoes);
    let mut order = Vec::new();
    for i in 0..30u8 {
        let before = counts(&echoes);
        let msg = format!("message {i}\n");
        assert_eq!(echo_via(lo(1), port, msg.as_bytes()), msg.as_bytes());
        order.push(which(&echoes, &before));
    }
    let spread: Vec<usize> = counts(&echoes)
        .iter()
        .zip(&base)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(spread, vec![10, 10, 10], "{order:?}");
    // a rotation: no upstream twice in a row
    assert!(order.windows(2).all(|w| w[0] != w[1]), "{order:?}");
}

#[test]
fn hash_policies_keep_a_client_on_one_upstream() {
    let echoes = [TcpEcho::start(), TcpEcho::start(), TcpEcho::start()];
    let ups: Vec<u16> = echoes.iter().map(|e| e.port()).collect();
    let policies = ["ketama", "rendezvous", "jump_hash"];
    let ports: Vec<u16> = policies.iter().map(|_| net::free_tcp_port()).collect();
    let mut yaml = preamble(None) + "server:\n";
    for (p, port) in policies.iter().zip(&ports) {
        yaml += &stream_server(p, *port, &ups, &format!("    upstream_pick_policy: {p}\n"));
    }
    let _d = Daemon::start(&yaml, &ports);
    settle();
    for (policy, port) in policies.iter().zip(&ports) {
        let mut used = HashSet::new();
        for client in 10..22u8 {
            let mut first = None;
            for round in 0..3 {
                let before = counts(&echoes);
                let msg = format!("{policy} {client} {round}\n");
                assert_eq!(echo_via(lo(client), *port, msg.as_bytes()), msg.as_bytes());
                let got = which(&echoes, &before);
                match first {
                    None => first = Some(got),
                    Some(f) => assert_eq!(f, got, "{policy}: client 127.0.0.{client} moved"),
                }
            }
            used.extend(first);
        }
        assert!(
            used.len() >= 2,
            "{policy}: 12 clients all on one upstream: {used:?}"
        );
    }
}

#[test]
fn dead_upstream_is_skipped_within_a_bounded_delay() {
    let echoes = [TcpEcho::start(), TcpEcho::start()];
    // a port where nothing listens: connects are refused
    let dead = net::free_tcp_port();
    let (rr, random) = (net::free_tcp_port(), net::free_tcp_port());
    let ups = [echoes[0].port(), dead, echoes[1].port()];
    let yaml = preamble(None)
        + "server:\n"
        + &stream_server("rr", rr, &ups, "    upstream_pick_policy: rr\n")
        + &stream_server("random", random, &ups, "");
    let _d = Daemon::start(&yaml, &[rr, random]);
    settle();
    let base: usize = counts(&echoes).iter().sum();
    for port in [rr, random] {
        for i in 0..9u8 {
            let start = Instant::now();
            let msg = format!("still served {i}\n");
            assert_eq!(echo_via(lo(1), port, msg.as_bytes()), msg.as_bytes());
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "a dead upstream cost {:?}",
                start.elapsed()
            );
        }
    }
    assert_eq!(counts(&echoes).iter().sum::<usize>() - base, 18);
    assert!(
        counts(&echoes).iter().all(|c| *c >= 3),
        "{:?}",
        counts(&echoes)
    );
}

/// The user guide's "TLS Offloading" block, with loopback addresses.
const GUIDE_TLS_OFFLOADING: &str = r#"
server:
  - name: tcp           # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default    # Required, can be any type of exit
    type: tcp_stream
    listen: "127.0.0.1:@PORT@"
    proxy_pass: "127.0.0.1:@UP@"
    tls_client: {}      # Use TLS to connect to the target port, configure TLS parameters, such as CA certificate, client certificate (mTLS), etc.
"#;

#[test]
fn guide_tls_offloading_verifies_the_upstream() {
    let pki = Pki::new();
    pki.ca("up")
        .leaf("up", "upstream", &["upstream.test", "127.0.0.1"]);
    pki.leaf("up", "named", &["upstream.test"]);
    let (s1, s2) = (net::free_tcp_port(), net::free_tcp_port());
    let _ip = s_server_rev(&pki, net::local(s1), "upstream", None);
    let _named = s_server_rev(&pki, net::local(s2), "named", None);
    let ports: Vec<u16> = (0..4).map(|_| net::free_tcp_port()).collect();
    let ca = pki.path("up-ca.crt");
    // as written: the system roots, which do not know the test CA
    let mut yaml = preamble(None)
        + &fill(
            GUIDE_TLS_OFFLOADING,
            &[("PORT", ports[0].to_string()), ("UP", s1.to_string())],
        );
    // with the test CA
    yaml += &stream_server(
        "with_ca",
        ports[1],
        &[s1],
        &format!("    tls_client: {{ca_certificate: {ca}}}\n"),
    );
    // an upstream certificate without the IP: verified by upstream_tls_name only
    yaml += &stream_server(
        "no_name",
        ports[2],
        &[s2],
        &format!("    tls_client: {{ca_certificate: {ca}}}\n"),
    );
    yaml += &stream_server(
        "tls_name",
        ports[3],
        &[s2],
        &format!(
            "    tls_client:\n      ca_certificate: {ca}\n      no_session_cache: true\n    upstream_tls_name: upstream.test\n"
        ),
    );
    let d = Daemon::start(&yaml, &ports);
    assert_eq!(
        refused_via(lo(1), ports[0], b"hello\n"),
        b"",
        "unknown CA refused"
    );
    assert_eq!(echo_via(lo(1), ports[1], b"hello\n"), b"olleh\n");
    assert_eq!(
        refused_via(lo(1), ports[2], b"hello\n"),
        b"",
        "IP not in the certificate"
    );
    assert_eq!(echo_via(lo(1), ports[3], b"hello\n"), b"olleh\n");
    let logs = d.logs();
    assert!(logs.contains("TLS to upstream"), "{logs}");
}

/// The user guide's "mTLS Client" block, inside a tcp_stream.
const GUIDE_MTLS_CLIENT: &str = r#"
    tls_client:
      certificate: @CERT@  # Client certificate
      private_key: @KEY@  # Client private key
      ca_certificate: @CA@ # CA certificate, used to verify the server certificate (default to system CA certificate)
"#;

#[test]
fn guide_mtls_client_towards_the_upstream() {
    let pki = Pki::new();
    pki.ca("up").ca("clients").ca("other");
    pki.leaf("up", "upstream", &["127.0.0.1"]);
    pki.leaf("clients", "good", &["proxy.test"]);
    pki.leaf("other", "stranger", &["proxy.test"]);
    let s = net::free_tcp_port();
    let _srv = s_server_rev(&pki, net::local(s), "upstream", Some("clients-ca.crt"));
    let ports: Vec<u16> = (0..3).map(|_| net::free_tcp_port()).collect();
    let ca = pki.path("up-ca.crt");
    let block = |cert: &str| {
        fill(
            GUIDE_MTLS_CLIENT,
            &[
                ("CERT", pki.path(&format!("{cert}.crt"))),
                ("KEY", pki.path(&format!("{cert}.key"))),
                ("CA", ca.clone()),
            ],
        )
    };
    let yaml = preamble(None)
        + "server:\n"
        + &stream_server(
            "good",
            ports[0],
            &[s],
            block("good").trim_start_matches('\n'),
        )
        + &stream_server(
            "stranger",
            ports[1],
            &[s],
            block("stranger").trim_start_matches('\n'),
        )
        + &stream_server(
            "none",
            ports[2],
            &[s],
            &format!("    tls_client: {{ca_certificate: {ca}}}\n"),
        );
    let _d = Daemon::start(&yaml, &ports);
    assert_eq!(echo_via(lo(1), ports[0], b"mutual\n"), b"lautum\n");
    assert_eq!(
        refused_via(lo(1), ports[1], b"mutual\n"),
        b"",
        "another CA's certificate"
    );
    assert_eq!(
        refused_via(lo(1), ports[2], b"mutual\n"),
        b"",
        "no client certificate"
    );
    // the good one still works after the refusals
    assert_eq!(echo_via(lo(1), ports[0], b"again\n"), b"niaga\n");
}

/// The user guide's "TLS Encapsulation" block, with the test's certificate and loopback.
const GUIDE_TLS_ENCAPSULATION: &str = r#"
server:
  - name: tls           # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default    # Required, can be any type of exit
    type: tls_stream
    listen:
      address: "127.0.0.1:@PORT@"
    tls_server:                   # Configure TLS parameters
      cert_pairs:
        certificate: @CERT@
        private_key: @KEY@
      enable_client_auth: true    # Optional, enable mTLS
    proxy_pass:         # Target address, can be single/multiple
      - "127.0.0.1:@UP1@"
      - "127.0.0.1:@UP2@"
    upstream_pick_policy: rr # Load balancing algorithm, default is random
"#;

fn https_url(name: &str, port: u16, path: &str) -> (String, String) {
    (
        format!("https://{name}:{port}{path}"),
        format!("{name}:{port}:127.0.0.1"),
    )
}

#[test]
fn guide_tls_encapsulation_with_mtls() {
    let pki = Pki::new();
    pki.ca("srv").ca("clients").ca("other");
    pki.leaf("srv", "server", &["tls.test"]);
    pki.leaf("clients", "good", &["client.test"]);
    pki.leaf("other", "stranger", &["client.test"]);
    let (o1, o2) = (HttpOrigin::start(), HttpOrigin::start());
    let (guide, with_ca) = (net::free_tcp_port(), net::free_tcp_port());
    let vars = |port: u16| {
        vec![
            ("PORT", port.to_string()),
            ("CERT", pki.path("server.crt")),
            ("KEY", pki.path("server.key")),
            ("UP1", o1.port().to_string()),
            ("UP2", o2.port().to_string()),
        ]
    };
    let second = fill(GUIDE_TLS_ENCAPSULATION, &vars(with_ca))
        .replace("name: tls ", "name: tls_ca ")
        .replace("server:\n  - name", "  - name")
        .replace(
            "      enable_client_auth: true    # Optional, enable mTLS\n",
            &format!(
                "      enable_client_auth: true\n      ca_certificate: {}\n",
                pki.path("clients-ca.crt")
            ),
        );
    let yaml = preamble(None) + &fill(GUIDE_TLS_ENCAPSULATION, &vars(guide)) + &second;
    let _d = Daemon::start(&yaml, &[guide, with_ca]);
    let cacert = pki.path("srv-ca.crt");
    let curl = |port: u16, cert: Option<&str>| {
        let (url, resolve) = https_url("tls.test", port, "/hello");
        let mut args = vec![
            "--cacert".to_string(),
            cacert.clone(),
            "--resolve".into(),
            resolve,
            url,
        ];
        if let Some(c) = cert {
            args.extend([
                "--cert".into(),
                pki.path(&format!("{c}.crt")),
                "--key".into(),
                pki.path(&format!("{c}.key")),
            ]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        curl_http(&a)
    };
    // as written, client certificates are checked against the system roots: the test's are not
    for cert in [None, Some("good")] {
        let r = curl(guide, cert);
        assert_ne!(r.code, 200, "{}", r.describe());
    }
    // with ca_certificate: no certificate and another CA's are refused, the right one passes
    for cert in [None, Some("stranger")] {
        let r = curl(with_ca, cert);
        assert_ne!(r.code, 200, "{cert:?}: {}", r.describe());
    }
    for _ in 0..2 {
        let r = curl(with_ca, Some("good"));
        assert_eq!(r.code, 200, "{}", r.describe());
        assert_eq!(r.body, b"hello world\n");
    }
    assert_eq!(
        (o1.request_count(), o2.request_count()),
        (1, 1),
        "rr over both origins"
    );
    // openssl s_client without a certificate: the server asks for one and refuses
    let out = s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{with_ca}"),
            "-servername",
            "tls.test",
            "-CAfile",
            &cacert,
        ],
        b"GET /hello HTTP/1.0\r\n\r\n",
        Duration::from_millis(500),
    );
    assert!(
        !out.stdout_str().contains("hello world"),
        "{}",
        out.describe()
    );
    assert_has(&out, "alert");
}

#[test]
fn tls_stream_sni_alpn_and_versions() {
    let pki = Pki::new();
    pki.ca("srv");
    pki.leaf("srv", "a", &["a.test"])
        .leaf("srv", "b", &["b.test", "*.b.test"]);
    let echo = TcpEcho::start();
    let (p12, p13) = (net::free_tcp_port(), net::free_tcp_port());
    let server = |name: &str, port: u16, extra: &str| {
        format!(
            "  - name: {name}\n    type: tls_stream\n    escaper: default\n    listen: 127.0.0.1:{port}\n    \
             proxy_pass: 127.0.0.1:{}\n    tls_server:\n      cert_pairs:\n        - {{certificate: {}, private_key: {}}}\n        \
             - {{certificate: {}, private_key: {}}}\n      alpn_protocols: [h2, http/1.1]\n{extra}",
            echo.port(),
            pki.path("a.crt"),
            pki.path("a.key"),
            pki.path("b.crt"),
            pki.path("b.key"),
        )
    };
    let yaml = preamble(None)
        + "server:\n"
        + &server("tls12", p12, "      max_tls_version: tls1.2\n")
        + &server("tls13", p13, "      min_tls_version: 1.3\n");
    let _d = Daemon::start(&yaml, &[p12, p13]);
    let ca = pki.path("srv-ca.crt");
    let connect12 = format!("127.0.0.1:{p12}");
    for (sni, cn) in [
        ("a.test", "CN = a.test"),
        ("b.test", "CN = b.test"),
        ("x.b.test", "CN = b.test"),
    ] {
        let out = s_client(
            &[
                "-connect",
                &connect12,
                "-servername",
                sni,
                "-CAfile",
                &ca,
                "-alpn",
                "h2",
            ],
            b"ping through\n",
            Duration::from_millis(500),
        );
        assert_has(&out, &format!("subject={cn}"));
        assert_has(&out, "Verify return code: 0 (ok)");
        assert_has(&out, "ALPN protocol: h2");
        assert_has(&out, "TLSv1.2");
        assert_has(&out, "ping through");
    }
    // a TLS 1.2-only client cannot reach the 1.3-only server
    let out = s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{p13}"),
            "-servername",
            "a.test",
            "-CAfile",
            &ca,
            "-tls1_2",
        ],
        b"x\n",
        Duration::from_millis(200),
    );
    assert_has(&out, "alert");
    // python's ssl: TLS 1.3, http/1.1 chosen from its offer, 300 KB echoed back intact
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.set_alpn_protocols(["http/1.1"])
data = bytes((i * 7 + 3) % 251 for i in range(300000))
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="a.test") as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        print(s.version(), s.selected_alpn_protocol(), got == data, len(got))
"#;
    let out = cmd::python(
        script,
        &[ca.clone(), p13.to_string()],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout_str().trim(), "TLSv1.3 http/1.1 True 300000");
}

/// The user guide's "HTTP Proxy" block, on loopback.
const GUIDE_HTTP_PROXY: &str = r#"
server:
  - name: http       # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default # Required, can be any type of exit
    type: http_proxy
    listen:
      address: "127.0.0.1:@PORT@"
    tls_client: {}   # Open 7th layer https forward forwarding support
"#;

/// `openssl s_server -WWW` on 127.0.0.1:port serving `hello.txt`.
fn https_origin(
    pki: &Pki,
    port: u16,
    cert: &str,
    verify_ca: Option<&str>,
) -> (tls_support::Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello over https\n").unwrap();
    let mut c = std::process::Command::new("openssl");
    c.args([
        "s_server",
        "-quiet",
        "-WWW",
        "-accept",
        &format!("127.0.0.1:{port}"),
    ])
    .args(["-cert", &pki.path(&format!("{cert}.crt"))])
    .args(["-key", &pki.path(&format!("{cert}.key"))])
    .current_dir(dir.path());
    if let Some(ca) = verify_ca {
        c.args([
            "-Verify",
            "2",
            "-verify_return_error",
            "-CAfile",
            &pki.path(ca),
        ]);
    }
    let mut p = tls_support::Proc::spawn(c);
    p.wait_addr(net::local(port));
    (p, dir)
}

/// `GET https://localhost:{origin}/hello.txt` sent in plain HTTP to the proxy on `proxy`.
fn https_forward(proxy: u16, origin: u16) -> net::RawResponse {
    let mut c = net::RawConn::connect(proxy);
    c.send(
        format!(
            "GET https://localhost:{origin}/hello.txt HTTP/1.1\r\nHost: localhost:{origin}\r\n\r\n"
        )
        .as_bytes(),
    );
    c.read_response(false)
}

#[test]
fn guide_http_proxy_https_forward() {
    let pki = Pki::new();
    pki.ca("web").ca("clients");
    pki.leaf("web", "origin", &["localhost"]);
    pki.leaf("clients", "proxy_client", &["proxy.test"]);
    let (o1, o2) = (net::free_tcp_port(), net::free_tcp_port());
    let _plain = https_origin(&pki, o1, "origin", None);
    let _mtls = https_origin(&pki, o2, "origin", Some("clients-ca.crt"));
    let (guide, with_ca, with_cert) = (
        net::free_tcp_port(),
        net::free_tcp_port(),
        net::free_tcp_port(),
    );
    let ca = pki.path("web-ca.crt");
    let http = |name: &str, port: u16, tls: &str| {
        format!(
            "  - name: {name}\n    type: http_proxy\n    escaper: default\n    listen: 127.0.0.1:{port}\n    tls_client: {tls}\n"
        )
    };
    let yaml = preamble(None)
        + &fill(GUIDE_HTTP_PROXY, &[("PORT", guide.to_string())])
        + &http("with_ca", with_ca, &format!("{{ca_certificate: {ca}}}"))
        + &http(
            "with_cert",
            with_cert,
            &format!(
                "{{ca_certificate: {ca}, certificate: {}, private_key: {}}}",
                pki.path("proxy_client.crt"),
                pki.path("proxy_client.key")
            ),
        );
    let _d = Daemon::start(&yaml, &[guide, with_ca, with_cert]);
    // as written: the origin's CA is not among the system roots
    let r = https_forward(guide, o1);
    assert_eq!(r.status, 502, "{}", r.head);
    // with the CA: the proxy makes the TLS connection itself
    let r = https_forward(with_ca, o1);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "hello over https\n"),
        "{}",
        r.head
    );
    // an origin that wants a client certificate: only the proxy that has one gets through
    let r = https_forward(with_ca, o2);
    assert_ne!(r.status, 200, "{}", r.head);
    let r = https_forward(with_cert, o2);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "hello over https\n"),
        "{}",
        r.head
    );
}

#[test]
fn http_proxy_with_tls_server_is_an_https_proxy() {
    let pki = Pki::new();
    pki.ca("srv").ca("clients").ca("other");
    pki.leaf("srv", "proxy", &["proxy.test", "127.0.0.1"]);
    pki.leaf("clients", "good", &["client.test"]);
    pki.leaf("other", "stranger", &["client.test"]);
    let origin = HttpOrigin::start();
    let (open, mtls) = (net::free_tcp_port(), net::free_tcp_port());
    let server = |name: &str, port: u16, extra: &str| {
        format!(
            "  - name: {name}\n    type: http_proxy\n    escaper: default\n    listen: 127.0.0.1:{port}\n    \
             tls_server:\n      cert_pairs: {{certificate: {}, private_key: {}}}\n{extra}",
            pki.path("proxy.crt"),
            pki.path("proxy.key")
        )
    };
    let yaml = preamble(None)
        + "server:\n"
        + &server("https", open, "")
        + &server(
            "https_mtls",
            mtls,
            &format!(
                "      enable_client_auth: true\n      ca_certificate: {}\n",
                pki.path("clients-ca.crt")
            ),
        );
    let _d = Daemon::start(&yaml, &[open, mtls]);
    let ca = pki.path("srv-ca.crt");
    let via = |port: u16, extra: &[&str], url: &str| {
        let proxy = format!("https://proxy.test:{port}");
        let resolve = format!("proxy.test:{port}:127.0.0.1");
        let mut a = vec![
            "-x",
            proxy.as_str(),
            "--proxy-cacert",
            ca.as_str(),
            "--resolve",
            resolve.as_str(),
        ];
        a.extend_from_slice(extra);
        a.push(url);
        curl_http(&a)
    };
    let r = via(open, &[], &origin.url("/pattern/120000"));
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, 120_000).unwrap();
    let r = via(open, &["-p"], &origin.url("/hello"));
    assert_eq!(r.body, b"hello world\n", "{}", r.describe());
    // mTLS on the proxy's own port
    let (good_crt, good_key) = (pki.path("good.crt"), pki.path("good.key"));
    let (bad_crt, bad_key) = (pki.path("stranger.crt"), pki.path("stranger.key"));
    let r = via(
        mtls,
        &["--proxy-cert", &good_crt, "--proxy-key", &good_key],
        &origin.url("/hello"),
    );
    assert_eq!(r.body, b"hello world\n", "{}", r.describe());
    let r = via(
        mtls,
        &["--proxy-cert", &bad_crt, "--proxy-key", &bad_key],
        &origin.url("/hello"),
    );
    assert_ne!(r.code, 200, "{}", r.describe());
    let r = via(mtls, &[], &origin.url("/hello"));
    assert_ne!(r.code, 200, "{}", r.describe());
    // python requests through the HTTPS proxy
    let out = cmd::python(
        "import requests, sys\n\
         r = requests.get(sys.argv[1], proxies={'http': sys.argv[2]}, verify=sys.argv[3], timeout=10)\n\
         print(r.status_code, r.text.strip())",
        &[
            origin.url("/hello"),
            format!("https://127.0.0.1:{open}"),
            ca.clone(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(
        out.stdout_str().trim(),
        "200 hello world",
        "{}",
        out.describe()
    );
}
