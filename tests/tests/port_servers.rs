//! Port servers end to end: plain_tcp_port (PROXY protocol v1/v2 from haproxy and from raw
//! sockets, the ingress filter on the socket address, the header timeout), plain_tls_port (in
//! front of tcp_stream and of http_proxy, with mTLS) and intelli_proxy (HTTP, SOCKS4a, SOCKS5
//! and garbage on one port), each with the user guide's YAML.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tls_support;

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use px_e2e::cmd::{self, CurlResponse, curl_http};
use px_e2e::daemon::{Daemon, fill};
use px_e2e::echo::TcpEcho;
use px_e2e::net::{self, Closed, RawConn};
use px_e2e::origin::HttpOrigin;
use px_e2e::{pattern, socks};
use tls_support::{Pki, Proc, connect_from, lo, preamble, settle};

/// The user guide's "TLS Encapsulation" second block: a plain_tls_port in front of a tcp_stream.
const GUIDE_PLAIN_TLS_PORT: &str = r#"
server:
  - name: tcp
    escaper: default
    type: tcp_stream
    proxy_pass:         # Target address, can be single/multiple
      - "127.0.0.1:@UP1@"
      - "127.0.0.1:@UP2@"
    upstream_pick_policy: rr # Load balancing algorithm, default is random
  - name: tls
    type: plain_tls_port
    listen:
      address: "127.0.0.1:@PORT@"
    tls_server:                   # Configure TLS parameters
      cert_pairs:
        certificate: @CERT@
        private_key: @KEY@
      enable_client_auth: true    # Optional, enable mTLS
    server: tcp    # Point to tcp stream service
"#;

/// A python TLS client: sends argv[4] bytes of the pattern and prints whether the echo matched.
const PY_TLS_ECHO: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
if sys.argv[5] != "-":
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
n = int(sys.argv[4])
data = bytes((i * 7 + 3) % 251 for i in range(n))
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sys.argv[3]) as s:
            s.sendall(data)
            got = b""
            while len(got) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            print("echo", got == data, len(got))
except (ssl.SSLError, ConnectionError, OSError) as e:
    print("refused", type(e).__name__)
"#;

fn py_tls_echo(pki: &Pki, port: u16, name: &str, n: usize, cert: Option<&str>) -> String {
    let (c, k) = match cert {
        Some(c) => (pki.path(&format!("{c}.crt")), pki.path(&format!("{c}.key"))),
        None => ("-".to_string(), "-".to_string()),
    };
    let out = cmd::python(
        PY_TLS_ECHO,
        &[
            pki.path("srv-ca.crt"),
            port.to_string(),
            name.to_string(),
            n.to_string(),
            c,
            k,
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    out.stdout_str().trim().to_string()
}

#[test]
fn guide_plain_tls_port_in_front_of_tcp_stream() {
    let pki = Pki::new();
    pki.ca("srv").ca("clients").ca("other");
    pki.leaf("srv", "server", &["tls.test"]);
    pki.leaf("clients", "good", &["client.test"]);
    pki.leaf("other", "stranger", &["client.test"]);
    let echoes = [TcpEcho::start(), TcpEcho::start()];
    let (guide, with_ca) = (net::free_tcp_port(), net::free_tcp_port());
    let vars = |port: u16| {
        vec![
            ("PORT", port.to_string()),
            ("CERT", pki.path("server.crt")),
            ("KEY", pki.path("server.key")),
            ("UP1", echoes[0].port().to_string()),
            ("UP2", echoes[1].port().to_string()),
        ]
    };
    // the block as written, and a copy whose client certificates are checked against the test CA
    let copy = fill(GUIDE_PLAIN_TLS_PORT, &vars(with_ca))
        .replace("server:\n  - name: tcp\n", "  - name: tcp2\n")
        .replace("  - name: tls\n", "  - name: tls2\n")
        .replace("server: tcp ", "server: tcp2 ")
        .replace(
            "      enable_client_auth: true    # Optional, enable mTLS\n",
            &format!(
                "      enable_client_auth: true\n      ca_certificate: {}\n",
                pki.path("clients-ca.crt")
            ),
        );
    let yaml = preamble(None) + &fill(GUIDE_PLAIN_TLS_PORT, &vars(guide)) + &copy;
    let _d = Daemon::start(&yaml, &[guide, with_ca]);
    // as written: client certificates are verified against the system roots
    assert!(py_tls_echo(&pki, guide, "tls.test", 10, Some("good")).starts_with("refused"));
    assert!(py_tls_echo(&pki, with_ca, "tls.test", 10, None).starts_with("refused"));
    assert!(py_tls_echo(&pki, with_ca, "tls.test", 10, Some("stranger")).starts_with("refused"));
    settle();
    let base: Vec<usize> = echoes.iter().map(|e| e.connections()).collect();
    for _ in 0..2 {
        assert_eq!(
            py_tls_echo(&pki, with_ca, "tls.test", 250_000, Some("good")),
            "echo True 250000"
        );
    }
    let delta: Vec<usize> = echoes
        .iter()
        .zip(&base)
        .map(|(e, b)| e.connections() - b)
        .collect();
    assert_eq!(delta, vec![1, 1], "round robin behind the TLS port");
}

/// The user guide's "Listening on Multiple Ports" second block: plain and TLS ports of one
/// HTTP proxy.
const GUIDE_HTTP_TWO_PORTS: &str = r#"
server:
  - name: http       # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default # Required, can be any type of exit
    type: http_proxy
    listen: "127.0.0.1:@HTTP@"
    tls_client: {}   # Open 7th layer https forward forwarding support
  - name: tls
    type: plain_tls_port
    listen: "127.0.0.1:@TLS@"
    server: http
    tls_server:
      cert_pairs:
        certificate: @CERT@
        private_key: @KEY@
      enable_client_auth: true            # Optional, enable mTLS
      ca_certificate: @CLIENT_CA@
"#;

#[test]
fn guide_http_proxy_on_plain_and_tls_ports() {
    let pki = Pki::new();
    pki.ca("srv").ca("clients");
    pki.leaf("srv", "server", &["proxy.test", "127.0.0.1"]);
    pki.leaf("clients", "good", &["client.test"]);
    let origin = HttpOrigin::start();
    let (http, tls) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = preamble(None)
        + &fill(
            GUIDE_HTTP_TWO_PORTS,
            &[
                ("HTTP", http.to_string()),
                ("TLS", tls.to_string()),
                ("CERT", pki.path("server.crt")),
                ("KEY", pki.path("server.key")),
                ("CLIENT_CA", pki.path("clients-ca.crt")),
            ],
        );
    let _d = Daemon::start(&yaml, &[http, tls]);
    let r = curl_http(&[
        "-x",
        &format!("http://127.0.0.1:{http}"),
        &origin.url("/hello"),
    ]);
    assert_eq!(
        (r.code, r.body_str().as_str()),
        (200, "hello world\n"),
        "{}",
        r.describe()
    );
    let https_proxy = format!("https://proxy.test:{tls}");
    let resolve = format!("proxy.test:{tls}:127.0.0.1");
    let ca = pki.path("srv-ca.crt");
    let (crt, key) = (pki.path("good.crt"), pki.path("good.key"));
    let with_cert = |extra: &[&str]| -> CurlResponse {
        let mut a = vec![
            "-x",
            https_proxy.as_str(),
            "--proxy-cacert",
            ca.as_str(),
            "--resolve",
            resolve.as_str(),
        ];
        a.extend_from_slice(extra);
        curl_http(&a)
    };
    let url = origin.url("/pattern/100000");
    let r = with_cert(&["--proxy-cert", &crt, "--proxy-key", &key, &url]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, 100_000).unwrap();
    // CONNECT through the TLS port too
    let r = with_cert(&[
        "--proxy-cert",
        &crt,
        "--proxy-key",
        &key,
        "-p",
        &origin.url("/hello"),
    ]);
    assert_eq!(
        (r.code, r.body_str().as_str()),
        (200, "hello world\n"),
        "{}",
        r.describe()
    );
    // no client certificate: refused by the TLS port
    let r = with_cert(&[&origin.url("/hello")]);
    assert_ne!(r.code, 200, "{}", r.describe());
    // the IP address in the proxy certificate works as well
    let r = curl_http(&[
        "-x",
        &format!("https://127.0.0.1:{tls}"),
        "--proxy-cacert",
        &ca,
        "--proxy-cert",
        &crt,
        "--proxy-key",
        &key,
        &origin.url("/hello"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
}

/// The user guide's "Enabling PROXY Protocol on Listening Ports" block.
const GUIDE_PROXY_PROTOCOL: &str = r#"
server:
  - name: real_http
    listen: "[127.0.0.1]:@REAL@" # Optional
    type: http_proxy
    ingress_network_filter: {} # Configure the filter rule for extracting the source address for PROXY Protocol
    escaper: default
    # ... Other configurations
  - name: pp_for_http
    type: plain_tcp_port
    listen: "127.0.0.1:@PP@"
    server: real_http
    proxy_protocol: @VERSION@
    ingress_network_filter: {} # Configure the filter rule for the original socket source address
"#;

/// haproxy in TCP mode on `front`, sending the PROXY protocol (`send-proxy` or
/// `send-proxy-v2`) to `127.0.0.1:back`.
fn haproxy(front: u16, back: u16, send: &str) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 200\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
             timeout client 30s\n    timeout server 30s\nfrontend fe\n    bind 127.0.0.1:{front}\n    \
             default_backend be\nbackend be\n    server s1 127.0.0.1:{back} {send}\n"
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("haproxy is missing: `apt-get install haproxy`"));
    let mut c = Command::new(bin);
    c.arg("-db").arg("-f").arg(&cfg);
    let mut p = Proc::spawn(c);
    p.wait_addr(net::local(front));
    // the config file must outlive the start only
    drop(dir);
    p
}

fn curl_from(src: Ipv4Addr, proxy: u16, url: &str) -> CurlResponse {
    curl_http(&[
        "--interface",
        &src.to_string(),
        "-x",
        &format!("http://127.0.0.1:{proxy}"),
        url,
    ])
}

fn proxy_protocol_through_haproxy(version: &str, send: &str) {
    let origin = HttpOrigin::start();
    let (real, pp, front) = (
        net::free_tcp_port(),
        net::free_tcp_port(),
        net::free_tcp_port(),
    );
    let yaml = preamble(None)
        + &fill(
            GUIDE_PROXY_PROTOCOL,
            &[
                ("REAL", real.to_string()),
                ("PP", pp.to_string()),
                ("VERSION", version.to_string()),
            ],
        );
    let _d = Daemon::start(&yaml, &[real, pp]);
    let _h = haproxy(front, pp, send);
    let url = origin.url("/hello");
    // haproxy connects from 127.0.0.1 (allowed by the port's filter) and carries the client's
    // own address, which real_http's filter ({}: loopback 127.0.0.1 only) decides on
    let r = curl_from(Ipv4Addr::new(127, 0, 0, 1), front, &url);
    assert_eq!(
        (r.code, r.body_str().as_str()),
        (200, "hello world\n"),
        "{}",
        r.describe()
    );
    let r = curl_from(Ipv4Addr::new(127, 0, 0, 5), front, &url);
    assert_eq!(
        r.code,
        403,
        "the original address 127.0.0.5 is refused: {}",
        r.describe()
    );
    // the same client straight at real_http is refused by its socket address
    let r = curl_from(Ipv4Addr::new(127, 0, 0, 5), real, &url);
    assert_eq!(r.code, 403, "{}", r.describe());
    // straight at the PROXY port without a header: dropped, no HTTP answer
    let r = curl_from(Ipv4Addr::new(127, 0, 0, 1), pp, &url);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn guide_proxy_protocol_v2_from_haproxy() {
    proxy_protocol_through_haproxy("v2", "send-proxy-v2");
}

#[test]
fn guide_proxy_protocol_v1_from_haproxy() {
    proxy_protocol_through_haproxy("v1", "send-proxy");
}

#[test]
fn proxy_protocol_from_the_harness_and_port_filters() {
    let origin = HttpOrigin::start();
    let pp = net::free_tcp_port();
    let yaml = preamble(None)
        + &format!(
            "server:\n  - name: real_http\n    type: http_proxy\n    escaper: default\n    \
             ingress_network_filter: {{default: forbid, allow: 192.0.2.0/24}}\n  \
             - name: pp\n    type: plain_tcp_port\n    listen: 127.0.0.1:{pp}\n    server: real_http\n    \
             proxy_protocol: 1\n    proxy_protocol_read_timeout: 1s\n    \
             ingress_network_filter: {{default: allow, deny: 127.0.0.7}}\n"
        );
    let _d = Daemon::start(&yaml, &[pp]);
    let request = |src: u8, claimed: &str| -> String {
        let mut s = connect_from(lo(src), pp);
        let msg = format!(
            "PROXY TCP4 {claimed} 127.0.0.1 40000 {pp}\r\nGET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            origin.url("/hello")
        );
        s.write_all(msg.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // the next server's ACL decides on the carried address, not the socket's
    assert!(request(1, "192.0.2.44").starts_with("HTTP/1.1 200"));
    assert!(request(1, "198.51.100.1").starts_with("HTTP/1.1 403"));
    // the port's own filter decides on the socket address, whatever the header says
    assert_eq!(request(7, "192.0.2.44"), "");
    // a header that never comes: closed after proxy_protocol_read_timeout
    let mut c = RawConn::connect(pp);
    let start = Instant::now();
    assert_ne!(c.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // garbage instead of a header
    let mut c = RawConn::connect(pp);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_ne!(c.wait_closed(Duration::from_secs(3)), Closed::StillOpen);
    assert!(c.pending().is_empty());
}

/// The user guide's "Multiprotocol Entry Reuse" block; the guide leaves out `escaper`, which
/// both proxies require, so `escaper: default` is added to them.
const GUIDE_INTELLI: &str = r#"
server:
  - name: intelli
    type: intelli_proxy
    listen: "127.0.0.1:@PORT@"
    http_server: http        # Directly send HTTP requests to the http server for processing
    socks_server: socks      # Directly send socks requests to the socks server for processing
  - name: http
    type: HttpProxy
    escaper: default
    listen: "127.0.0.1:@HTTP@" # Listen on the local address to prevent abuse, it will not be used itself
  - name: socks
    type: SocksProxy
    escaper: default
    listen: "127.0.0.1:@SOCKS@" # Listen on the local address to prevent abuse, it will not be used itself
"#;

#[test]
fn guide_intelli_proxy_http_socks_and_garbage() {
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let (port, http, socks_port, quick) = (
        net::free_tcp_port(),
        net::free_tcp_port(),
        net::free_tcp_port(),
        net::free_tcp_port(),
    );
    let yaml = preamble(None)
        + &fill(
            GUIDE_INTELLI,
            &[
                ("PORT", port.to_string()),
                ("HTTP", http.to_string()),
                ("SOCKS", socks_port.to_string()),
            ],
        )
        + &format!(
            "  - name: quick\n    type: intelli_proxy\n    listen: 127.0.0.1:{quick}\n    \
             http_server: http\n    socks_server: socks\n    protocol_detection_timeout: 1s\n"
        );
    let _d = Daemon::start(&yaml, &[port, http, socks_port, quick]);
    let url = origin.url("/pattern/50000");
    for proxy in [
        format!("http://127.0.0.1:{port}"),
        format!("socks4a://127.0.0.1:{port}"),
        format!("socks5://127.0.0.1:{port}"),
        format!("socks5h://127.0.0.1:{port}"),
    ] {
        let r = curl_http(&["-x", &proxy, &url]);
        assert_eq!(r.code, 200, "{proxy}: {}", r.describe());
        pattern::check(&r.body, 50_000).unwrap();
    }
    // CONNECT over the HTTP side
    let r = curl_http(&[
        "-p",
        "-x",
        &format!("http://127.0.0.1:{port}"),
        &origin.url("/hello"),
    ]);
    assert_eq!(r.body, b"hello world\n", "{}", r.describe());
    // raw SOCKS4a with a name and SOCKS5 to the echo, bytes checked
    let (mut c, code) =
        socks::connect4(port, Ipv4Addr::UNSPECIFIED, echo.port(), Some("localhost"));
    assert_eq!(code, 90);
    c.send(b"socks4a bytes");
    assert_eq!(c.read_exact_n(13), b"socks4a bytes");
    let (mut c, rep) = socks::connect5(port, &socks::Dst::local(echo.port()));
    assert_eq!(rep.rep, 0);
    c.send(b"socks5 bytes");
    assert_eq!(c.read_exact_n(12), b"socks5 bytes");
    // python requests through the HTTP side
    let out = cmd::python(
        "import requests, sys\nr = requests.get(sys.argv[1], proxies={'http': sys.argv[2]}, timeout=10)\nprint(r.status_code, r.text.strip())",
        &[origin.url("/hello"), format!("http://127.0.0.1:{port}")],
        Duration::from_secs(30),
    );
    assert_eq!(
        out.stdout_str().trim(),
        "200 hello world",
        "{}",
        out.describe()
    );
    // garbage: a TLS record, a NUL, lower-case text: closed at once without a reply
    for junk in [
        &b"\x16\x03\x01\x00\x05hello"[..],
        b"\x00\x00\x00",
        b"get / http/1.1\r\n\r\n",
    ] {
        let mut c = RawConn::connect(port);
        c.send(junk);
        let start = Instant::now();
        assert_eq!(
            c.wait_closed(Duration::from_secs(3)),
            Closed::Eof,
            "{junk:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(c.pending().is_empty(), "{junk:?}");
    }
    // silence: closed after protocol_detection_timeout
    let mut c = RawConn::connect(quick);
    let start = Instant::now();
    assert_ne!(c.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// The user guide's "Guomi TLCP Protocol Encapsulation" block, with the test's files. TLCP needs
/// the `vendored-tongsuo` build; this build refuses the block with a message saying so.
const GUIDE_TLCP: &str = r#"
server:
  - name: real_http
    listen: "[127.0.0.1]:@REAL@" # Optional
    type: http_proxy
    escaper: default
    # ... Other configurations
  - name: tlcp
    type: native_tls_port
    listen: "127.0.0.1:@PORT@"
    tls_server:
      tlcp_cert_pairs:         # Enable Guomi TLCP protocol
        sign_certificate: @CERT@
        sign_private_key: @KEY@
        enc_certificate: @CERT@
        enc_private_key: @KEY@
      enable_client_auth: true # Optional, enable mTLS
    server: real_http
    proxy_protocol: v2         # Optional, enable PROXY Protocol
"#;

#[test]
fn native_tls_port_with_mtls_and_proxy_protocol() {
    let pki = Pki::new();
    pki.ca("srv").ca("clients").ca("other");
    pki.leaf("srv", "server", &["proxy.test"]);
    pki.leaf("clients", "good", &["client.test"]);
    pki.leaf("other", "stranger", &["client.test"]);
    let origin = HttpOrigin::start();
    let (real, native, front, plain_native) = (
        net::free_tcp_port(),
        net::free_tcp_port(),
        net::free_tcp_port(),
        net::free_tcp_port(),
    );
    let port = |name: &str, port: u16, extra: &str| {
        format!(
            "  - name: {name}\n    type: native_tls_port\n    listen: 127.0.0.1:{port}\n    server: real_http\n    \
             tls_server:\n      cert_pairs: {{certificate: {}, private_key: {}}}\n      enable_client_auth: true\n      \
             ca_certificate: {}\n{extra}",
            pki.path("server.crt"),
            pki.path("server.key"),
            pki.path("clients-ca.crt")
        )
    };
    let yaml = preamble(None)
        + &format!(
            "server:\n  - name: real_http\n    type: http_proxy\n    escaper: default\n    listen: 127.0.0.1:{real}\n    \
             ingress_network_filter: {{}}\n"
        )
        + &port("pp", native, "    proxy_protocol: v2\n")
        + &port("direct", plain_native, "");
    let _d = Daemon::start(&yaml, &[real, native, plain_native]);
    let _h = haproxy(front, native, "send-proxy-v2");
    let ca = pki.path("srv-ca.crt");
    let curl = |src: &str, port: u16, cert: Option<&str>| {
        let proxy = format!("https://proxy.test:{port}");
        let resolve = format!("proxy.test:{port}:127.0.0.1");
        let (c, k) = match cert {
            Some(c) => (pki.path(&format!("{c}.crt")), pki.path(&format!("{c}.key"))),
            None => (String::new(), String::new()),
        };
        let url = origin.url("/hello");
        let mut a = vec![
            "--interface",
            src,
            "-x",
            &proxy,
            "--proxy-cacert",
            &ca,
            "--resolve",
            &resolve,
        ];
        if cert.is_some() {
            a.extend(["--proxy-cert", c.as_str(), "--proxy-key", k.as_str()]);
        }
        a.push(&url);
        curl_http(&a)
    };
    // through haproxy (TCP mode, PROXY v2) into the OpenSSL port, then the HTTP proxy
    let r = curl("127.0.0.1", front, Some("good"));
    assert_eq!(
        (r.code, r.body_str().as_str()),
        (200, "hello world\n"),
        "{}",
        r.describe()
    );
    let r = curl("127.0.0.5", front, Some("good"));
    assert_eq!(r.code, 403, "the carried address decides: {}", r.describe());
    // mTLS refusals on the OpenSSL port
    for cert in [None, Some("stranger")] {
        let r = curl("127.0.0.1", plain_native, cert);
        assert_ne!(r.code, 200, "{cert:?}: {}", r.describe());
    }
    let r = curl("127.0.0.1", plain_native, Some("good"));
    assert_eq!(r.code, 200, "{}", r.describe());
    // a big body through the OpenSSL stream
    let r = curl_http(&[
        "-x",
        &format!("https://proxy.test:{plain_native}"),
        "--proxy-cacert",
        &ca,
        "--resolve",
        &format!("proxy.test:{plain_native}:127.0.0.1"),
        "--proxy-cert",
        &pki.path("good.crt"),
        "--proxy-key",
        &pki.path("good.key"),
        &origin.url("/pattern/2000000"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, 2_000_000).unwrap();
    // openssl s_client: the handshake is refused without a client certificate
    let out = tls_support::s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{plain_native}"),
            "-CAfile",
            &ca,
            "-servername",
            "proxy.test",
        ],
        b"",
        Duration::from_millis(300),
    );
    tls_support::assert_has(&out, "alert");
}

#[test]
fn guide_tlcp_block_needs_the_tongsuo_build() {
    let pki = Pki::new();
    pki.ca("srv").leaf("srv", "server", &["proxy.test"]);
    let yaml = preamble(None)
        + &fill(
            GUIDE_TLCP,
            &[
                ("REAL", net::free_tcp_port().to_string()),
                ("PORT", net::free_tcp_port().to_string()),
                ("CERT", pki.path("server.crt")),
                ("KEY", pki.path("server.key")),
            ],
        );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("g3proxy.yaml");
    std::fs::write(&f, yaml).unwrap();
    let (status, text) = px_e2e::daemon::check_config(&f);
    assert!(!status.success(), "{text}");
    assert!(text.contains("vendored-tongsuo"), "{text}");
    assert!(text.contains("tlcp_cert_pairs"), "{text}");
}
