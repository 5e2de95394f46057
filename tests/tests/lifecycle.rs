//! Process lifecycle: SIGTERM and SIGINT make the daemon exit 0; a task running when
//! the signal arrives keeps working until it ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use px_e2e::cmd::curl_http;
use px_e2e::config::Standard;
use px_e2e::daemon::Daemon;
use px_e2e::echo::TcpEcho;
use px_e2e::http_proxy_url;
use px_e2e::net::{self, Closed, RawConn};
use px_e2e::origin::HttpOrigin;

/// How long a stopping daemon may take when nothing is running.
const STOP_BOUND: Duration = Duration::from_secs(20);

fn start() -> (Daemon, u16, u16) {
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let d = Daemon::start(
        &Standard::new().http(http).socks(socks).render(),
        &[http, socks],
    );
    (d, http, socks)
}

fn exits_zero_on(sig: &str) {
    let origin = HttpOrigin::start();
    let (mut d, http, socks) = start();
    let r = curl_http(&["-x", &http_proxy_url(http), &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());
    d.signal(sig);
    let st = d.wait_exit(STOP_BOUND).unwrap_or_else(|| {
        panic!(
            "still running {STOP_BOUND:?} after SIG{sig}\n{}",
            d.describe()
        )
    });
    assert_eq!(
        st.code(),
        Some(0),
        "exit status after SIG{sig}: {st}\n{}",
        d.describe()
    );
    assert!(
        !net::port_accepts(http),
        "the http port still accepts after exit"
    );
    assert!(
        !net::port_accepts(socks),
        "the socks port still accepts after exit"
    );
}

#[test]
fn sigterm_exits_zero() {
    exits_zero_on("TERM");
}

#[test]
fn sigint_exits_zero() {
    exits_zero_on("INT");
}

#[test]
fn running_tunnel_survives_sigterm_until_it_ends() {
    let echo = TcpEcho::start();
    let (mut d, http, socks) = start();

    // an HTTP CONNECT tunnel and a SOCKS5 tunnel, both open when the signal comes
    let mut t1 = RawConn::connect(http);
    t1.send(format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", echo.addr()).as_bytes());
    assert_eq!(t1.read_response(true).status, 200);
    let (mut t2, r) = px_e2e::socks::connect5(socks, &px_e2e::socks::Dst::local(echo.port()));
    assert_eq!(r.rep, 0);

    d.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        d.is_running(),
        "exited with tasks still running\n{}",
        d.describe()
    );
    t1.send(b"still there?");
    assert_eq!(t1.read_exact_n(12), b"still there?");
    t2.send(b"socks too");
    assert_eq!(t2.read_exact_n(9), b"socks too");

    // the clients finish; the daemon then exits 0
    t1.shutdown_write();
    t2.shutdown_write();
    assert_ne!(t1.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
    assert_ne!(t2.wait_closed(Duration::from_secs(5)), Closed::StillOpen);
    drop((t1, t2));
    let st = d
        .wait_exit(STOP_BOUND)
        .unwrap_or_else(|| panic!("still running after its last task ended\n{}", d.describe()));
    assert_eq!(st.code(), Some(0), "{st}\n{}", d.describe());
}

/// The README's example (`examples/http_socks_proxy`) on free ports instead of 8080/1080,
/// serving the README's curl lines against a local origin.
#[test]
fn readme_example_serves_the_readme_curl_lines() {
    let example = px_e2e::workspace_root().join("examples/http_socks_proxy");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&example)
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()))
        .flatten()
    {
        let p = entry.path();
        if p.is_file() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read_to_string(&p).unwrap_or_default()));
        }
    }
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let mut found = (false, false);
    for (_, text) in files.iter_mut() {
        found.0 |= text.contains("127.0.0.1:8080");
        found.1 |= text.contains("127.0.0.1:1080");
        *text = text
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
            .replace("127.0.0.1:1080", &format!("127.0.0.1:{socks}"));
    }
    assert!(
        found.0 && found.1,
        "the example no longer listens on 8080 and 1080 as the README says"
    );
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut d = Daemon::start_files(&refs, "", &[http, socks]);

    let origin = HttpOrigin::start();
    let px = http_proxy_url(http);
    let sp = format!("127.0.0.1:{socks}");
    let by_ip = origin.url("/hello");
    let by_localhost = origin.url_with_host("localhost", "/hello");
    for args in [
        vec!["-x", px.as_str(), by_ip.as_str()],
        vec!["--proxytunnel", "-x", px.as_str(), by_ip.as_str()],
        vec!["--socks5-hostname", sp.as_str(), by_localhost.as_str()],
        vec!["--socks4a", sp.as_str(), by_ip.as_str()],
    ] {
        let r = curl_http(&args);
        assert_eq!(
            r.code,
            200,
            "curl {args:?}: {}\n{}",
            r.describe(),
            d.describe()
        );
        assert_eq!(r.body, b"hello world\n");
    }
    assert_eq!(
        d.stop(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0)
    );
}
