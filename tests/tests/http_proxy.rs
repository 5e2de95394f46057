//! http_proxy end to end: the real g3proxy, curl (`-x http://`, `--proxytunnel`), python
//! requests and raw sockets, against the loopback origin of the harness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use px_e2e::cmd::{self, curl, curl_http};
use px_e2e::config::Standard;
use px_e2e::daemon::Daemon;
use px_e2e::echo::TcpEcho;
use px_e2e::net::{self, Closed, RawConn};
use px_e2e::origin::HttpOrigin;
use px_e2e::{http_proxy_url, pattern};

fn start_proxy() -> (Daemon, u16) {
    let http = net::free_tcp_port();
    let d = Daemon::start(&Standard::new().http(http).render(), &[http]);
    (d, http)
}

#[test]
fn curl_get_and_head() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let px = http_proxy_url(http);

    let r = curl_http(&["-x", &px, &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(r.body, b"hello world\n", "{}", r.describe());

    let r = curl_http(&["-x", &px, "-I", &origin.url("/pattern/12345")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(
        r.header("content-length").as_deref(),
        Some("12345"),
        "{}",
        r.describe()
    );
    // with -I curl writes the head itself as the output: nothing may follow it
    let head_end = r
        .body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    assert_eq!(
        head_end,
        Some(r.body.len()),
        "HEAD must carry no body: {}",
        r.describe()
    );

    let r = curl_http(&["-x", &px, &origin.url("/chunked/100000")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, 100_000).unwrap();

    let r = curl_http(&["-x", &px, &origin.url("/status/404")]);
    assert_eq!(
        r.code,
        404,
        "upstream status passes through: {}",
        r.describe()
    );

    let methods: Vec<String> = origin.requests().iter().map(|q| q.method.clone()).collect();
    assert_eq!(methods, ["GET", "HEAD", "GET", "GET"]);
    // the origin gets origin-form targets
    assert_eq!(origin.requests()[0].target, "/hello");
}

#[test]
fn curl_post_content_length_chunked_and_expect_continue() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let px = http_proxy_url(http);
    let dir = tempfile::tempdir().unwrap();
    let data = pattern::make(200_000);
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &data).unwrap();
    let at_file = format!("@{}", file.display());
    let fnv = pattern::fnv1a_hex(&data);

    // Content-Length (curl's automatic Expect turned off)
    let r = curl_http(&[
        "-x",
        &px,
        "-H",
        "Expect:",
        "--data-binary",
        &at_file,
        &origin.url("/echo"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(
        r.header("x-body-fnv1a").as_deref(),
        Some(fnv.as_str()),
        "{}",
        r.describe()
    );
    pattern::check(&r.body, data.len()).unwrap();

    // chunked request body
    let r = curl_http(&[
        "-x",
        &px,
        "-H",
        "Expect:",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &at_file,
        &origin.url("/echo"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(
        r.header("x-body-len").as_deref(),
        Some("200000"),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.header("x-body-fnv1a").as_deref(),
        Some(fnv.as_str()),
        "{}",
        r.describe()
    );
    pattern::check(&r.body, data.len()).unwrap();

    // Expect: 100-continue; curl waits up to 10 s for the 100 before sending the body
    let r = curl_http(&[
        "-x",
        &px,
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "10",
        "--data-binary",
        &at_file,
        &origin.url("/echo"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert!(
        r.headers.contains(" 100 "),
        "curl got no 100 Continue through the proxy (it sent the body after its own timeout): {}",
        r.describe()
    );
    assert!(r.out.elapsed < Duration::from_secs(8), "{}", r.describe());
    assert_eq!(
        r.header("x-body-fnv1a").as_deref(),
        Some(fnv.as_str()),
        "{}",
        r.describe()
    );

    let seen = origin.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|q| q.body_len == data.len()), "{seen:?}");
}

#[test]
fn raw_expect_100_continue_arrives_before_the_body() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let mut c = RawConn::connect(http);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
        origin.url("/echo"),
        origin.addr()
    );
    c.send(head.as_bytes());
    let interim = c
        .read_until(b"\r\n\r\n")
        .expect("an interim 100 response before the body");
    let interim = String::from_utf8_lossy(&interim).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100"), "got {interim:?}");
    c.send(b"hello world");
    let r = c.read_response(false);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b"hello world");
}

#[test]
fn big_bodies_16mib_both_directions() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let px = http_proxy_url(http);
    let big = pattern::BIG;

    let r = curl_http(&["-x", &px, &origin.url(&format!("/pattern/{big}"))]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, big).unwrap();

    let r = curl_http(&["-x", &px, &origin.url(&format!("/chunked/{big}"))]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, big).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let data = pattern::make(big);
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let at_file = format!("@{}", file.display());
    let fnv = pattern::fnv1a_hex(&data);
    for chunked in [false, true] {
        let mut args = vec![
            "-x",
            px.as_str(),
            "-H",
            "Expect:",
            "--data-binary",
            &at_file,
        ];
        if chunked {
            args.extend(["-H", "Transfer-Encoding: chunked"]);
        }
        let url = origin.url("/echo");
        args.push(&url);
        let r = curl_http(&args);
        assert_eq!(r.code, 200, "chunked={chunked}: {}", r.describe());
        assert_eq!(
            r.header("x-body-fnv1a").as_deref(),
            Some(fnv.as_str()),
            "chunked={chunked}"
        );
        pattern::check(&r.body, big).unwrap();
    }
}

#[test]
fn close_delimited_response_then_next_request() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let px = http_proxy_url(http);
    // one curl, two URLs: the close-delimited body must end cleanly and the next
    // request must still be served (on a new upstream connection)
    let out = curl(&[
        "-x",
        &px,
        &origin.url("/close/300000"),
        &origin.url("/hello"),
    ]);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.len() == 300_000 + 12, "{}", out.describe());
    pattern::check(&out.stdout[..300_000], 300_000).unwrap();
    assert_eq!(&out.stdout[300_000..], b"hello world\n");
    assert_eq!(
        origin.connections(),
        2,
        "a closed upstream connection cannot be reused"
    );
}

#[test]
fn keep_alive_reuses_the_upstream_connection() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let px = http_proxy_url(http);
    let u = origin.url("/hello");
    let out = curl(&["-x", &px, &u, &u, &u]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout, b"hello world\n".repeat(3));
    assert_eq!(origin.request_count(), 3);
    assert_eq!(
        origin.connections(),
        1,
        "three requests on one client connection must share one upstream connection"
    );

    // by hand: GET, POST, HEAD on one client connection
    let origin2 = HttpOrigin::start();
    let mut c = RawConn::connect(http);
    let host = origin2.addr().to_string();
    c.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            origin2.url("/hello")
        )
        .as_bytes(),
    );
    let r1 = c.read_response(false);
    c.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\nabc",
            origin2.url("/echo")
        )
        .as_bytes(),
    );
    let r2 = c.read_response(false);
    c.send(
        format!(
            "HEAD {} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            origin2.url("/pattern/99")
        )
        .as_bytes(),
    );
    let r3 = c.read_response(true);
    assert_eq!((r1.status, r2.status, r3.status), (200, 200, 200));
    assert_eq!(r2.body, b"abc");
    assert_eq!(r3.header("content-length"), Some("99"));
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.header("x-conn-id"), Some("1"), "{}", r.head);
    }
    assert_eq!(r3.header("x-req-seq"), Some("3"));
    assert_eq!(origin2.connections(), 1);
}

#[test]
fn http10_client_gets_its_connection_closed() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let mut c = RawConn::connect(http);
    c.send(format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/hello")).as_bytes());
    let r = c.read_response(false);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(c.wait_closed(Duration::from_secs(5)), Closed::Eof);
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let mut c = RawConn::connect(http);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\
         Proxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\nTE: trailers\r\nX-End: kept\r\n\r\n",
        origin.url("/hello"),
        origin.addr()
    );
    c.send(req.as_bytes());
    let r = c.read_response(false);
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = &origin.requests()[0];
    for h in [
        "x-hop",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(
            seen.header(h).is_none(),
            "{h} reached the origin: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-end"), Some("kept"), "{:?}", seen.headers);
}

#[test]
fn connect_tunnels() {
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let (_d, http) = start_proxy();
    let px = http_proxy_url(http);

    let r = curl_http(&["--proxytunnel", "-x", &px, &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert_eq!(r.body, b"hello world\n");
    assert!(
        r.headers.starts_with("HTTP/1.1 200") || r.headers.starts_with("HTTP/1.0 200"),
        "{}",
        r.describe()
    );

    let mut c = RawConn::connect(http);
    c.send(format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", echo.addr()).as_bytes());
    let r = c.read_response(true);
    assert_eq!(r.status, 200, "{}", r.head);
    let data = pattern::make(256 * 1024);
    let mut c2 = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        c2.write_all(&data).unwrap();
    });
    let back = c.read_exact_n(256 * 1024);
    writer.join().unwrap();
    pattern::check(&back, 256 * 1024).unwrap();
    c.shutdown_write();
    assert_eq!(
        c.wait_closed(Duration::from_secs(5)),
        Closed::Eof,
        "half-close passes through"
    );
}

const REQUESTS_SCRIPT: &str = r#"
import sys, requests
proxy, base = sys.argv[1], sys.argv[2]
proxies = {"http": proxy, "https": proxy}
s = requests.Session()
r = s.get(base + "/hello", proxies=proxies, timeout=10)
assert r.status_code == 200 and r.content == b"hello world\n", (r.status_code, r.content[:200])
r = s.head(base + "/pattern/4321", proxies=proxies, timeout=10)
assert r.status_code == 200 and r.headers["Content-Length"] == "4321" and r.content == b"", (r.status_code, dict(r.headers))
body = bytes(range(256)) * 1000
r = s.post(base + "/echo", data=body, proxies=proxies, timeout=10)
assert r.status_code == 200 and r.content == body, (r.status_code, len(r.content))
def gen():
    for i in range(10):
        yield bytes([i]) * 5000
expected = b"".join(bytes([i]) * 5000 for i in range(10))
r = s.post(base + "/echo", data=gen(), proxies=proxies, timeout=10)
assert r.status_code == 200 and r.content == expected, (r.status_code, len(r.content))
r = s.get(base + "/chunked/1000000", proxies=proxies, timeout=10)
assert r.status_code == 200 and len(r.content) == 1000000, (r.status_code, len(r.content))
print("OK")
"#;

#[test]
fn python_requests_through_http_proxy() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let out = cmd::python(
        REQUESTS_SCRIPT,
        &[http_proxy_url(http), format!("http://{}", origin.addr())],
        Duration::from_secs(60),
    );
    assert!(
        out.success() && out.stdout_str().contains("OK"),
        "{}",
        out.describe()
    );
    let seen = origin.requests();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[3].body_len, 50_000);
}

#[test]
fn python_requests_session_reuses_upstream() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let script = r#"
import sys, requests
proxy, url = sys.argv[1], sys.argv[2]
s = requests.Session()
for _ in range(4):
    r = s.get(url, proxies={"http": proxy}, timeout=10)
    assert r.status_code == 200 and r.content == b"hello world\n", r.status_code
print("OK")
"#;
    let out = cmd::python(
        script,
        &[http_proxy_url(http), origin.url("/hello")],
        Duration::from_secs(60),
    );
    assert!(
        out.success() && out.stdout_str().contains("OK"),
        "{}",
        out.describe()
    );
    assert_eq!(origin.request_count(), 4);
    assert_eq!(origin.connections(), 1, "4 requests, 1 upstream connection");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = HttpOrigin::start();
    let (_d, http) = start_proxy();
    let host = origin.addr().to_string();
    let mut c = RawConn::connect(http);
    let mut batch = String::new();
    for path in ["/pattern/10", "/hello", "/pattern/20"] {
        batch.push_str(&format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            origin.url(path)
        ));
    }
    c.send(batch.as_bytes());
    let a = c.read_response(false);
    let b = c.read_response(false);
    let d = c.read_response(false);
    assert_eq!((a.status, b.status, d.status), (200, 200, 200));
    pattern::check(&a.body, 10).unwrap();
    assert_eq!(b.body, b"hello world\n");
    pattern::check(&d.body, 20).unwrap();
    assert_eq!(origin.request_count(), 3);
}

#[test]
fn upstream_closing_without_a_response_gets_502() {
    let origin = HttpOrigin::start();
    let (mut d, http) = start_proxy();
    let px = http_proxy_url(http);
    let r = curl_http(&["-x", &px, &origin.url("/drop")]);
    assert_eq!(r.code, 502, "{}", r.describe());
    let r = curl_http(&["-x", &px, &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    assert!(d.is_running());
}

#[test]
fn server_speed_limit_paces_a_download() {
    let origin = HttpOrigin::start();
    let http = net::free_tcp_port();
    let yaml = Standard::new()
        .http(http)
        .http_key("tcp_sock_speed_limit: 1M/s")
        .render();
    let _d = Daemon::start(&yaml, &[http]);
    let size = 2 * 1024 * 1024;
    let r = curl_http(&[
        "-x",
        &http_proxy_url(http),
        &origin.url(&format!("/pattern/{size}")),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, size).unwrap();
    assert!(
        r.out.elapsed >= Duration::from_millis(1200),
        "2 MiB at 1M/s took only {:?}",
        r.out.elapsed
    );
}
