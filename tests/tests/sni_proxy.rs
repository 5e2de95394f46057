//! sni_proxy end to end: the real g3proxy with the user guide's SNI Proxy and "Listening on
//! Multiple Ports" blocks, names resolved by dnsmasq, a real TLS upstream (openssl s_server
//! -WWW) that the proxy never decrypts, and clients that split their ClientHello, send none, or
//! ask for a name that is not allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tls_support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use px_e2e::cmd::{self, curl_http};
use px_e2e::daemon::{Daemon, fill};
use px_e2e::dns::Dnsmasq;
use px_e2e::net::{self, Closed, RawConn};
use px_e2e::origin::HttpOrigin;
use tls_support::{Pki, Proc, assert_has, preamble, s_client};

/// The IP the TLS names resolve to; the TLS upstream listens there on the proxy's own port.
const TLS_IP: [u8; 4] = [127, 0, 0, 3];

/// The user guide's "SNI Proxy" block, on loopback.
const GUIDE_SNI: &str = r#"
server:
  - name: sni          # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default   # Required, can be any type of exit
    type: sni_proxy
    listen:
      address: "127.0.0.1:@PORT@" # Listen on port 443, but can also support both TLS & HTTP protocol traffic to this port
"#;

/// The served file and its content.
const FILE: &str = "hello.txt";
const CONTENT: &str = "hello through sni_proxy, never decrypted\n";

/// `openssl s_server -WWW` on TLS_IP:port serving FILE, with a certificate for the test names.
fn tls_upstream(pki: &Pki, port: u16) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE), CONTENT).unwrap();
    let addr = SocketAddr::from((TLS_IP, port));
    let mut c = Command::new("openssl");
    c.args(["s_server", "-quiet", "-WWW", "-accept", &addr.to_string()])
        .args([
            "-cert",
            &pki.path("upstream.crt"),
            "-key",
            &pki.path("upstream.key"),
        ])
        .current_dir(dir.path());
    let mut p = Proc::spawn(c);
    p.wait_addr(addr);
    // s_server reads the file per request: keep the dir for the test's life
    std::mem::forget(dir);
    p
}

struct Setup {
    pki: Pki,
    dns: Dnsmasq,
    origin: HttpOrigin,
}

fn setup() -> Setup {
    let pki = Pki::new();
    pki.ca("up");
    pki.leaf(
        "up",
        "upstream",
        &["tls.test", "*.alias.test", "denied.test"],
    );
    let dns = Dnsmasq::start(&[
        ("tls.test", "127.0.0.3"),
        ("alias.test", "127.0.0.3"),
        ("denied.test", "127.0.0.3"),
        ("http.test", "127.0.0.1"),
    ]);
    Setup {
        pki,
        dns,
        origin: HttpOrigin::start(),
    }
}

/// A python client that sends its ClientHello in `pieces` TCP writes 50 ms apart (or with no
/// SNI when the name is `-`), then GETs FILE; prints the body, or `error: ...`.
const PY_SPLIT_HELLO: &str = r#"
import socket, ssl, sys, time
ca, port, name, pieces = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
if name == "-":
    ctx.check_hostname = False
    name = None
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname=name)
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
try:
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    step = len(hello) // pieces + 1
    for i in range(0, len(hello), step):
        sock.sendall(hello[i:i + step])
        time.sleep(0.05)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                sock.sendall(pending)
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            inc.write(chunk)
    obj.write(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    sock.sendall(out.read())
    resp = b""
    while True:
        try:
            data = obj.read(65536)
            if not data:
                break  # close_notify
            resp += data
            continue
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        inc.write(chunk)
    sys.stdout.write(resp.split(b"\r\n\r\n", 1)[1].decode())
except Exception as e:
    print("error:", type(e).__name__, e)
"#;

fn py_split(s: &Setup, port: u16, name: &str, pieces: usize) -> String {
    let out = cmd::python(
        PY_SPLIT_HELLO,
        &[
            s.pki.path("up-ca.crt"),
            port.to_string(),
            name.to_string(),
            pieces.to_string(),
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    out.stdout_str()
}

fn curl_tls(s: &Setup, port: u16, name: &str) -> cmd::CurlResponse {
    curl_http(&[
        "--cacert",
        &s.pki.path("up-ca.crt"),
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        &format!("https://{name}:{port}/{FILE}"),
    ])
}

/// curl to `http.test:ORIGIN_PORT/hello`, connecting to the proxy's `port` instead.
fn curl_host(s: &Setup, port: u16, host: &str) -> cmd::CurlResponse {
    let o = s.origin.port();
    curl_http(&[
        "--connect-to",
        &format!("{host}:{o}:127.0.0.1:{port}"),
        &format!("http://{host}:{o}/hello"),
    ])
}

#[test]
fn guide_sni_proxy_routes_tls_and_http() {
    let s = setup();
    let port = net::free_tcp_port();
    let yaml = preamble(Some(s.dns.port())) + &fill(GUIDE_SNI, &[("PORT", port.to_string())]);
    let _d = Daemon::start(&yaml, &[port]);
    let _up = tls_upstream(&s.pki, port);
    // curl: the certificate is the upstream's own, verified end to end
    let r = curl_tls(&s, port, "tls.test");
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(r.body_str(), CONTENT);
    // openssl s_client
    let out = s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "tls.test",
            "-CAfile",
            &s.pki.path("up-ca.crt"),
            "-quiet",
        ],
        format!("GET /{FILE} HTTP/1.0\r\n\r\n").as_bytes(),
        Duration::from_millis(800),
    );
    assert_has(&out, CONTENT.trim());
    // python, ClientHello in 6 TCP segments
    assert_eq!(py_split(&s, port, "tls.test", 6), CONTENT);
    // plain HTTP routed by Host (with its port)
    let r = curl_host(&s, port, "http.test");
    assert_eq!(
        (r.code, r.body_str().as_str()),
        (200, "hello world\n"),
        "{}",
        r.describe()
    );
    assert_eq!(
        s.origin.requests()[0].header("host"),
        Some(&*format!("http.test:{}", s.origin.port()))
    );
}

#[test]
fn missing_sni_and_denied_names_are_refused() {
    let s = setup();
    let (open, strict) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = preamble(Some(s.dns.port()))
        + &format!(
            "server:\n  - name: open\n    type: sni_proxy\n    escaper: default\n    listen: 127.0.0.1:{open}\n  \
             - name: strict\n    type: sni_proxy\n    escaper: default\n    listen: 127.0.0.1:{strict}\n    \
             allowed_hosts:\n      - exact_match: tls.test\n        redirect_port: {open}\n      \
             - child_match: alias.test\n        redirect_host: tls.test\n        redirect_port: {open}\n      \
             - exact_match: http.test\n"
        );
    let _d = Daemon::start(&yaml, &[open, strict]);
    let _up = tls_upstream(&s.pki, open);
    // no SNI: a handshake_failure alert
    let got = py_split(&s, open, "-", 1);
    assert!(got.contains("HANDSHAKE_FAILURE"), "{got}");
    let out = s_client(
        &["-connect", &format!("127.0.0.1:{open}"), "-noservername"],
        b"",
        Duration::from_millis(300),
    );
    assert_has(&out, "handshake failure");
    // allowed, redirected to the port where the upstream listens
    assert_eq!(py_split(&s, strict, "tls.test", 3), CONTENT);
    assert_eq!(py_split(&s, strict, "www.alias.test", 1), CONTENT);
    // not allowed: unrecognized_name, in TLS; 403 in HTTP
    let got = py_split(&s, strict, "denied.test", 2);
    assert!(got.contains("UNRECOGNIZED_NAME"), "{got}");
    let r = curl_host(&s, strict, "denied.test");
    assert_eq!(r.code, 403, "{}", r.describe());
    let r = curl_host(&s, strict, "http.test");
    assert_eq!(r.code, 200, "{}", r.describe());
    // a name that leads back to the proxy's own socket: refused, not looped
    let r = curl_http(&[
        "-H",
        &format!("Host: http.test:{open}"),
        &format!("http://127.0.0.1:{open}/"),
    ]);
    assert_eq!(r.code, 508, "{}", r.describe());
    // HTTP without Host: 400
    let mut c = RawConn::connect(strict);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 400);
    // neither TLS nor HTTP: closed without a reply
    let mut c = RawConn::connect(open);
    c.send(b"\x00\x01garbage");
    assert_ne!(c.wait_closed(Duration::from_secs(3)), Closed::StillOpen);
    assert!(c.pending().is_empty());
}

#[test]
fn first_bytes_timeouts() {
    let s = setup();
    let port = net::free_tcp_port();
    let yaml = preamble(Some(s.dns.port()))
        + &format!(
            "server:\n  - name: sni\n    type: sni_proxy\n    escaper: default\n    listen: 127.0.0.1:{port}\n    \
             request_wait_timeout: 1s\n    request_recv_timeout: 1s\n"
        );
    let _d = Daemon::start(&yaml, &[port]);
    // nothing at all
    let mut c = RawConn::connect(port);
    let start = Instant::now();
    assert_ne!(c.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // the start of a ClientHello, then silence
    let mut c = RawConn::connect(port);
    c.send(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ]);
    let start = Instant::now();
    assert_ne!(c.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // half an HTTP head, then silence
    let mut c = RawConn::connect(port);
    c.send(b"GET / HTTP/1.1\r\nHost: http.test\r\n");
    assert_ne!(c.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
}

/// The user guide's "Listening on Multiple Ports" first block. The guide's port points at
/// `server: sni_proxy`, a name no server has; it is `sni` here, the name of the sni_proxy.
const GUIDE_SNI_TWO_PORTS: &str = r#"
server:
  - name: sni          # The name needs to be unique, not conflicting with other entries, and should be used for logging & monitoring
    escaper: default   # Required, can be any type of exit
    type: sni_proxy
    listen:
      address: "127.0.0.1:@PORT@" # Listen on port 443, but can also support both TLS & HTTP traffic to this port
  - name: port80
    type: plain_tcp_port
    listen: "127.0.0.1:@PORT80@"  # Listen on port 80
    server: sni  # All connections are handled by the sni_proxy server
"#;

#[test]
fn guide_sni_proxy_on_two_ports() {
    let s = setup();
    let (port, port80) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = preamble(Some(s.dns.port()))
        + &fill(
            GUIDE_SNI_TWO_PORTS,
            &[("PORT", port.to_string()), ("PORT80", port80.to_string())],
        );
    let _d = Daemon::start(&yaml, &[port, port80]);
    // TLS on either port goes to the name on the port the client connected to
    let _up = tls_upstream(&s.pki, port80);
    let r = curl_tls(&s, port80, "tls.test");
    assert_eq!(r.body_str(), CONTENT, "{}", r.describe());
    for p in [port, port80] {
        let r = curl_host(&s, p, "http.test");
        assert_eq!(
            (r.code, r.body_str().as_str()),
            (200, "hello world\n"),
            "{}",
            r.describe()
        );
    }
    // the guide's own spelling names no server: a config error at that key
    let bad = preamble(None)
        + &fill(
            GUIDE_SNI_TWO_PORTS,
            &[("PORT", port.to_string()), ("PORT80", port80.to_string())],
        )
        .replace("server: sni  #", "server: sni_proxy  #");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("g3proxy.yaml");
    std::fs::write(&f, bad).unwrap();
    let (status, text) = px_e2e::daemon::check_config(&f);
    assert!(!status.success());
    assert!(text.contains("sni_proxy"), "{text}");
}
