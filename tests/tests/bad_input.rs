//! Bad input, each case followed by a successful request on the same daemon: malformed
//! request lines (400), a head over `req_header_max_size` (431, as g3proxy answers), a
//! silent client (closed after `req_header_recv_timeout` / `negotiation_timeout`), a
//! truncated SOCKS greeting, unsupported SOCKS commands (0x07) and address types (0x08),
//! targets refused by the egress filter (HTTP 403, SOCKS5 0x02, SOCKS4 91) and a refused
//! upstream (HTTP 502).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use px_e2e::cmd::curl_http;
use px_e2e::config::{DENIED_IP, Standard};
use px_e2e::daemon::Daemon;
use px_e2e::echo::TcpEcho;
use px_e2e::net::{self, Closed, RawConn};
use px_e2e::origin::HttpOrigin;
use px_e2e::socks::{self, Dst};
use px_e2e::{hostport, http_proxy_url};

struct Env {
    daemon: Daemon,
    http: u16,
    socks: u16,
    origin: HttpOrigin,
    echo: TcpEcho,
}

fn start() -> Env {
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = Standard::new()
        .http(http)
        .socks(socks)
        .http_key("req_header_max_size: 4096")
        .http_key("req_header_recv_timeout: 1s")
        .socks_key("negotiation_timeout: 1s")
        .render();
    Env {
        daemon: Daemon::start(&yaml, &[http, socks]),
        http,
        socks,
        origin: HttpOrigin::start(),
        echo: TcpEcho::start(),
    }
}

impl Env {
    /// A good request through each server, and the daemon still running.
    fn assert_still_serving(&mut self) {
        let r = curl_http(&["-x", &http_proxy_url(self.http), &self.origin.url("/hello")]);
        assert_eq!(r.code, 200, "{}\n{}", r.describe(), self.daemon.describe());
        assert_eq!(r.body, b"hello world\n");
        let r = curl_http(&[
            "--socks5",
            &hostport(self.socks),
            &self.origin.url("/hello"),
        ]);
        assert_eq!(r.code, 200, "{}\n{}", r.describe(), self.daemon.describe());
        assert!(self.daemon.is_running(), "{}", self.daemon.describe());
    }

    fn status_of(&self, raw: &[u8]) -> String {
        let mut c = RawConn::connect(self.http);
        c.send(raw);
        let line = c.read_until(b"\r\n").unwrap_or_else(|| {
            panic!(
                "no status line for {:?} (got {:?})\n{}",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(c.pending()),
                self.daemon.describe()
            )
        });
        String::from_utf8_lossy(&line).trim_end().to_string()
    }
}

fn assert_status(line: &str, code: u16, what: &str) {
    let ok = (line.starts_with("HTTP/1.1 ") || line.starts_with("HTTP/1.0 "))
        && line[9..].starts_with(&code.to_string());
    assert!(ok, "{what}: want {code}, got status line {line:?}");
}

#[test]
fn http_malformed_request_lines_get_400() {
    let mut env = start();
    let target = env.origin.url("/hello");
    let cases: Vec<(String, &str)> = vec![
        ("NOT A REQUEST\r\n\r\n".to_string(), "garbage request line"),
        ("GET\r\n\r\n".to_string(), "method only"),
        (
            format!("GET {target} HTTP/1.1 extra\r\n\r\n"),
            "four fields",
        ),
        (
            format!("GET {target} HTTQ/1.1\r\n\r\n"),
            "bad version token",
        ),
        (
            format!("GET {target} HTTP/1.1\r\nno colon here\r\n\r\n"),
            "header without a colon",
        ),
        (
            format!("GET {target} HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
            "bad content-length",
        ),
    ];
    for (raw, what) in cases {
        let line = env.status_of(raw.as_bytes());
        assert_status(&line, 400, what);
    }
    assert_eq!(
        env.origin.request_count(),
        0,
        "nothing malformed reaches the origin"
    );
    env.assert_still_serving();
}

#[test]
fn http_head_over_the_size_limit() {
    let mut env = start();
    let target = env.origin.url("/hello");
    // under the 4096-byte limit: served
    let small = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let mut c = RawConn::connect(env.http);
    c.send(small.as_bytes());
    let r = c.read_response(false);
    assert_eq!(r.status, 200, "a 2 KB head is within the limit: {}", r.head);
    drop(c);
    // over it: 431 Request Header Fields Too Large (g3proxy's answer)
    let big = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(8000)
    );
    let line = env.status_of(big.as_bytes());
    assert_status(&line, 431, "head over req_header_max_size");
    // a single line over the limit too (no CRLF within the limit)
    let long_line = format!("GET {target}?{} HTTP/1.1\r\n\r\n", "q".repeat(6000));
    let line = env.status_of(long_line.as_bytes());
    assert_status(&line, 431, "request line over req_header_max_size");
    assert_eq!(env.origin.request_count(), 1);
    env.assert_still_serving();
}

/// Wait for the daemon to close a connection it gave up on; returns how long it took.
fn closed_within(c: &mut RawConn, max: Duration) -> Duration {
    let t = Instant::now();
    let how = c.wait_closed(max);
    assert_ne!(
        how,
        Closed::StillOpen,
        "the daemon kept a silent client for more than {max:?}"
    );
    t.elapsed()
}

#[test]
fn http_silent_client_is_closed_after_the_header_timeout() {
    let mut env = start();
    let mut c = RawConn::connect(env.http);
    // a head that never ends
    c.send(format!("GET {} HTTP/1.1\r\nHost: x\r\n", env.origin.url("/hello")).as_bytes());
    let took = closed_within(&mut c, Duration::from_secs(8));
    assert!(
        took >= Duration::from_millis(500),
        "closed too early ({took:?}) for a 1s timeout"
    );
    let got = String::from_utf8_lossy(c.pending()).into_owned();
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408") || got.starts_with("HTTP/1.0 408"),
        "only a 408 may precede the close, got {got:?}"
    );
    assert_eq!(env.origin.request_count(), 0);
    env.assert_still_serving();
}

#[test]
fn socks_silent_client_is_closed_after_the_negotiation_timeout() {
    let mut env = start();
    let mut c = RawConn::connect(env.socks);
    let took = closed_within(&mut c, Duration::from_secs(8));
    assert!(
        took >= Duration::from_millis(500),
        "closed too early ({took:?}) for a 1s timeout"
    );
    assert!(
        c.pending().is_empty(),
        "nothing to say to a silent client: {:?}",
        c.pending()
    );
    env.assert_still_serving();
}

#[test]
fn socks_truncated_greeting() {
    let mut env = start();
    // the greeting announces two methods and sends one, then the client half-closes
    let mut c = RawConn::connect(env.socks);
    c.send(&[0x05, 0x02, 0x00]);
    c.shutdown_write();
    let took = closed_within(&mut c, Duration::from_secs(3));
    assert!(took < Duration::from_secs(3));
    assert!(
        c.pending().is_empty(),
        "no method selection for an incomplete greeting: {:?}",
        c.pending()
    );
    // a version byte alone, then silence: closed at the negotiation timeout
    let mut c = RawConn::connect(env.socks);
    c.send(&[0x05]);
    closed_within(&mut c, Duration::from_secs(8));
    // a full greeting, then half a request
    let mut c = RawConn::connect(env.socks);
    socks::greet5(&mut c);
    c.send(&[0x05, 0x01, 0x00, 0x01, 127]);
    c.shutdown_write();
    closed_within(&mut c, Duration::from_secs(3));
    assert!(
        c.pending().is_empty() || c.pending()[0] == 0x05,
        "{:?}",
        c.pending()
    );
    env.assert_still_serving();
}

#[test]
fn socks_unsupported_command_and_address_type() {
    let mut env = start();
    let dst = Dst::local(env.echo.port());
    for cmd in [0x02u8, 0x09] {
        let mut c = RawConn::connect(env.socks);
        socks::greet5(&mut c);
        socks::request5(&mut c, cmd, &dst);
        let r = socks::read_reply5(&mut c);
        assert_eq!(r.rep, 0x07, "command {cmd:#x} is not supported: reply 0x07");
        assert_ne!(
            c.wait_closed(Duration::from_secs(3)),
            Closed::StillOpen,
            "closed after the error reply"
        );
    }
    // address type 0x05 does not exist
    let mut c = RawConn::connect(env.socks);
    socks::greet5(&mut c);
    let mut m = vec![0x05, 0x01, 0x00, 0x05, 127, 0, 0, 1];
    m.extend_from_slice(&env.echo.port().to_be_bytes());
    c.send(&m);
    let r = socks::read_reply5(&mut c);
    assert_eq!(r.rep, 0x08, "unknown address type: reply 0x08");
    // an unknown SOCKS version
    let mut c = RawConn::connect(env.socks);
    c.send(&[0x06, 0x01, 0x00]);
    closed_within(&mut c, Duration::from_secs(3));
    assert_eq!(env.echo.connections(), 0);
    env.assert_still_serving();
}

#[test]
fn egress_filter_refuses_the_denied_target() {
    let mut env = start();
    // a live target on the denied IP, so only the filter can make these fail
    let denied = HttpOrigin::start_on(DENIED_IP);
    let denied_echo = TcpEcho::start_on(DENIED_IP);

    let r = curl_http(&["-x", &http_proxy_url(env.http), &denied.url("/hello")]);
    assert_eq!(r.code, 403, "forward to a denied IP: {}", r.describe());
    let r = curl_http(&[
        "--proxytunnel",
        "-x",
        &http_proxy_url(env.http),
        &denied.url("/hello"),
    ]);
    assert_eq!(r.code, 403, "CONNECT to a denied IP: {}", r.describe());

    let (_c, r) = socks::connect5(env.socks, &Dst::V4(DENIED_IP, denied_echo.port()));
    assert_eq!(r.rep, 0x02, "SOCKS5 to a denied IP: not allowed by ruleset");
    let (_c, rep) = socks::connect4(env.socks, DENIED_IP, denied_echo.port(), None);
    assert_eq!(rep, 91, "SOCKS4 to a denied IP: rejected");

    assert_eq!(denied.connections(), 0, "the denied origin was contacted");
    assert_eq!(
        denied_echo.connections(),
        0,
        "the denied echo was contacted"
    );
    env.assert_still_serving();
}

#[test]
fn http_refused_upstream_gets_502() {
    let mut env = start();
    let dead = net::free_tcp_port();
    let r = curl_http(&[
        "-x",
        &http_proxy_url(env.http),
        &format!("http://127.0.0.1:{dead}/x"),
    ]);
    assert_eq!(r.code, 502, "{}", r.describe());
    let r = curl_http(&[
        "--proxytunnel",
        "-x",
        &http_proxy_url(env.http),
        &format!("http://127.0.0.1:{dead}/x"),
    ]);
    assert_eq!(r.code, 502, "CONNECT to a refused port: {}", r.describe());
    env.assert_still_serving();
}
