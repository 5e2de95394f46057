//! `g3proxy-ctl` against the real daemon: every subcommand, failed reloads that
//! change nothing, reloads of a server, an escaper, a resolver and a user group under load
//! (HTTP and SOCKS requests, CONNECT tunnels moving data), re-binding only on
//! a new listen address, SIGHUP, `direct_float` publish seen by a target, and
//! control clients that send garbage or hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ctl_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ctl_support::{Group, Load, Tunnel, http_get, socks_echo};
use px_e2e::daemon::fill;
use px_e2e::dns::Dnsmasq;
use px_e2e::echo::TcpEcho;
use px_e2e::net::{free_tcp_port, port_accepts};
use px_e2e::origin::HttpOrigin;

const CONFIG: &str = "\
log: stdout
controller:
  local:
    recv_timeout: @RECV@
resolver:
  - name: default
    type: c-ares
    server: 127.0.0.1:@DNS@
escaper:
  - name: default
    type: direct_fixed
    resolver: default
    egress_network_filter: {default: allow, allow: 127.0.0.1}
@ESCAPER_EXTRA@
user_group:
  - name: users
    static_users:
      - name: root
        token: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}
    anonymous_user: {name: guest}
server:
  - name: http
    type: http_proxy
    escaper: default
    user_group: users
    listen: 127.0.0.1:@HTTP@
  - name: socks
    type: socks_proxy
    escaper: default
    user_group: users
    listen: 127.0.0.1:@SOCKS@
";

struct Ports {
    dns: u16,
    http: u16,
    socks: u16,
}

fn render(p: &Ports, escaper_extra: &str) -> String {
    fill(
        CONFIG,
        &[
            ("RECV", "30".into()),
            ("DNS", p.dns.to_string()),
            ("HTTP", p.http.to_string()),
            ("SOCKS", p.socks.to_string()),
            ("ESCAPER_EXTRA", escaper_extra.to_string()),
        ],
    )
}

fn ports(dns: &Dnsmasq) -> Ports {
    Ports {
        dns: dns.port(),
        http: free_tcp_port(),
        socks: free_tcp_port(),
    }
}

#[test]
fn every_subcommand() {
    let dns = Dnsmasq::start(&[("ctl.test", "127.0.0.1")]);
    let p = ports(&dns);
    let g = Group::new(&render(&p, ""));
    let mut d = g.start();

    assert_eq!(g.ctl_ok(&["version"]).trim(), env!("CARGO_PKG_VERSION"));
    let status = g.ctl_ok(&["status"]);
    assert!(
        status.contains(&format!("pid: {}", d.pid())),
        "status: {status}"
    );
    assert!(status.contains("offline: false"), "status: {status}");
    // -p names the daemon; the group link finds the same one
    let by_pid = g.ctl_to(Some(d.pid()), &["version"]);
    assert!(by_pid.success(), "{}", by_pid.describe());

    assert_eq!(g.ctl_ok(&["list", "server"]), "http\nsocks\n");
    assert_eq!(g.ctl_ok(&["list", "escaper"]), "default\n");
    assert_eq!(g.ctl_ok(&["list", "resolver"]), "default\n");
    assert_eq!(g.ctl_ok(&["list", "user-group"]), "users\n");
    assert_eq!(g.ctl_ok(&["list", "auditor"]), "");

    assert!(g.ctl_ok(&["reload-server", "http"]).contains("reloaded"));
    assert!(
        g.ctl_ok(&["reload-escaper", "default"])
            .contains("reloaded")
    );
    assert!(
        g.ctl_ok(&["reload-resolver", "default"])
            .contains("reloaded")
    );
    assert!(
        g.ctl_ok(&["reload-user-group", "users"])
            .contains("reloaded")
    );
    for (cmd, name) in [
        ("reload-user-group", "nosuch"),
        ("reload-auditor", "audit"),
        ("reload-server", "nosuch"),
    ] {
        let out = g.ctl(&[cmd, name]);
        assert_eq!(out.code(), Some(1), "{cmd}: {}", out.describe());
        assert!(out.stderr.contains(name), "{cmd}: {}", out.describe());
    }

    let q = g.ctl_ok(&["resolver", "default", "query", "ctl.test"]);
    assert_eq!(q.trim(), "127.0.0.1");
    let q = g.ctl_ok(&[
        "resolver",
        "default",
        "query",
        "ctl.test",
        "--strategy",
        "ipv4-only",
    ]);
    assert_eq!(q.trim(), "127.0.0.1");
    let out = g.ctl(&["resolver", "nosuch", "query", "ctl.test"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());

    // direct_fixed takes no published data: a clear refusal
    let out = g.ctl(&["escaper", "default", "publish", r#"{"ipv4": "127.0.0.1"}"#]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("does not support publish"),
        "{}",
        out.describe()
    );
    assert_eq!(
        g.ctl_ok(&["user-group", "users", "list-static-user"]),
        "root\n"
    );
    assert_eq!(g.ctl_ok(&["user-group", "users", "list-dynamic-user"]), "");
    let out = g.ctl(&["user-group", "nosuch", "list-static-user"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("no user group named `nosuch`"),
        "{}",
        out.describe()
    );

    // shell completion needs no daemon
    let mut c = std::process::Command::new(ctl_support::ctl_bin());
    c.args(["--completion", "bash"]);
    let out = px_e2e::cmd::run(&mut c, Duration::from_secs(10));
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout_str().contains("reload-escaper"));

    // no daemon there: a clear error, exit 3
    let mut c = std::process::Command::new(ctl_support::ctl_bin());
    c.args(["-G", "nosuch-group", "--control-dir"])
        .arg(&g.ctl_dir)
        .arg("version");
    let out = px_e2e::cmd::run(&mut c, Duration::from_secs(10));
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert!(
        out.stderr.contains("cannot connect to control socket"),
        "{}",
        out.describe()
    );

    // traffic still flows after all that
    let origin = HttpOrigin::start();
    http_get(p.http, origin.addr()).unwrap();

    // offline: the daemon stops listening (after its hand-over wait), then exits 0
    let out = g.ctl_ok(&["offline"]);
    assert!(out.contains("going offline"), "{out}");
    let st = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after offline:\n{}", d.logs()));
    assert_eq!(st.code(), Some(0), "{}", d.logs());
    assert!(!port_accepts(p.http));
    assert!(
        !ctl_support::exists(&g.ctl_dir.join(format!("{}_{}.sock", g.name, d.pid()))),
        "control socket left behind"
    );
}

#[test]
fn failed_reload_changes_nothing_and_says_why() {
    let dns = Dnsmasq::start(&[]);
    let p = ports(&dns);
    let good = render(&p, "");
    let g = Group::new(&good);
    let mut d = g.start();
    let origin = HttpOrigin::start();

    // broken YAML
    g.write_config(&format!("{good}\n  - name: [unclosed\n"));
    let out = g.ctl(&["reload-escaper", "default"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("g3proxy.yaml:"), "{}", out.describe());
    http_get(p.http, origin.addr()).unwrap();

    // valid YAML, a bad key: file:line, key path and reason
    let bad_key = render(&p, "    tcp_keepalive: {enable: true, bogus: 1}");
    g.write_config(&bad_key);
    let out = g.ctl(&["reload-escaper", "default"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let line = bad_key
        .lines()
        .position(|l| l.contains("bogus"))
        .map(|i| i + 1)
        .unwrap();
    assert!(
        out.stderr.contains(&format!("g3proxy.yaml:{line}")),
        "want line {line}: {}",
        out.describe()
    );
    assert!(out.stderr.contains("bogus"), "{}", out.describe());

    // a server whose new listen address is taken: nothing changes
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let busy = taken.local_addr().unwrap().port();
    g.write_config(&good.replace(&format!(":{}", p.http), &format!(":{busy}")));
    let out = g.ctl(&["reload-server", "http"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("cannot listen"), "{}", out.describe());
    http_get(p.http, origin.addr()).unwrap();

    // SIGHUP on a broken file keeps serving too
    g.write_config(&format!("{good}\n  - name: [unclosed\n"));
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("SIGHUP reload failed", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    http_get(p.http, origin.addr()).unwrap();
    assert!(d.try_exit().is_none());
}

#[test]
fn reloads_under_load_lose_nothing() {
    let dns = Dnsmasq::start(&[]);
    let p = ports(&dns);
    let g = Group::new(&render(&p, ""));
    let d = g.start();
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();

    let tunnels: Vec<Tunnel> = (0..3).map(|_| Tunnel::open(p.http, echo.addr())).collect();
    let load = Load::start(p.http, p.socks, origin.addr(), echo.addr(), 4, 900);
    load.wait_done(200, Duration::from_secs(10));
    for round in 0..3 {
        // a changed escaper (a new object), then the unchanged modules
        let extra = format!("    tcp_keepalive: {}s", 30 + round);
        g.write_config(&render(&p, &extra));
        g.ctl_ok(&["reload-escaper", "default"]);
        g.ctl_ok(&["reload-resolver", "default"]);
        g.ctl_ok(&["reload-user-group", "users"]);
        g.ctl_ok(&["reload-server", "http"]);
        g.ctl_ok(&["reload-server", "socks"]);
        std::thread::sleep(Duration::from_millis(150));
    }
    load.wait_done(3000, Duration::from_secs(25));
    for t in &tunnels {
        assert!(
            t.wait_progress(64 * 1024, Duration::from_secs(5)),
            "a tunnel stalled after the reloads"
        );
    }
    let report = load.finish();
    for t in tunnels {
        let moved = t.close().unwrap_or_else(|e| panic!("tunnel: {e}"));
        assert!(moved > 0);
    }
    assert!(
        report.failures.is_empty(),
        "{} failures, first: {:?}\n{}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)],
        d.logs()
    );
    assert!(
        report.http_ok + report.socks_ok >= 2000,
        "only {} http + {} socks requests ran",
        report.http_ok,
        report.socks_ok
    );
    // the listeners were never re-bound: the same sockets served throughout
    assert!(!d.logs().contains("stopped listening"), "{}", d.logs());
}

#[test]
fn server_reload_rebinds_only_on_a_new_address() {
    let dns = Dnsmasq::start(&[]);
    let p = ports(&dns);
    let good = render(&p, "");
    let g = Group::new(&good);
    let d = g.start();
    let echo = TcpEcho::start();

    let tunnel = Tunnel::open(p.http, echo.addr());
    let new_port = free_tcp_port();
    g.write_config(&good.replace(&format!(":{}", p.http), &format!(":{new_port}")));
    g.ctl_ok(&["reload-server", "http"]);
    assert!(port_accepts(new_port), "new address not listening");
    assert!(!port_accepts(p.http), "old address still listening");
    // the tunnel accepted on the old socket goes on
    assert!(tunnel.wait_progress(32 * 1024, Duration::from_secs(5)));
    tunnel.close().unwrap();
    // the socks server kept its socket
    socks_echo(p.socks, echo.addr()).unwrap();
    assert_eq!(
        d.logs().matches("stopped listening").count(),
        1,
        "{}",
        d.logs()
    );
}

#[test]
fn sighup_reloads_what_changed() {
    let dns = Dnsmasq::start(&[]);
    let p = ports(&dns);
    let g = Group::new(&render(&p, ""));
    let mut d = g.start();
    let origin = HttpOrigin::start();

    d.signal(libc::SIGHUP);
    assert!(d.wait_log("SIGHUP: no module changed", Duration::from_secs(10)));
    g.write_config(&render(&p, "    tcp_keepalive: 45s"));
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("reloaded: escaper[default]", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    http_get(p.http, origin.addr()).unwrap();
    // a server removed from the config goes away with its socket
    let without_socks = render(&p, "");
    let cut = without_socks.find("  - name: socks").unwrap();
    g.write_config(&without_socks[..cut]);
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("removed server[socks]", Duration::from_secs(10)),
        "{}",
        d.logs()
    );
    assert_eq!(g.ctl_ok(&["list", "server"]), "http\n");
    assert!(!port_accepts(p.socks));
}

/// A TCP server that answers each connection with the client's address.
fn peer_reporter() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        for s in l.incoming().take(20) {
            let Ok(mut s) = s else { continue };
            let peer = s
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = s.write_all(format!("{peer}\n").as_bytes());
        }
    });
    (addr, t)
}

/// The source IP the target saw for one CONNECT through the proxy.
fn source_ip(proxy: u16, target: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).map_err(|e| e.to_string())?;
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&head).into_owned());
    }
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body.trim().to_string())
}

#[test]
fn publish_moves_the_source_address() {
    let http = free_tcp_port();
    let yaml = format!(
        "log: stdout
resolver:
  - name: default
    type: c-ares
    server: 127.0.0.1:9
escaper:
  - name: float
    type: direct_float
    resolver: default
    cache_ipv4: float-v4.json
    egress_network_filter: {{default: allow, allow: 127.0.0.1}}
server:
  - name: http
    type: http_proxy
    escaper: float
    listen: 127.0.0.1:{http}
"
    );
    let g = Group::new(&yaml);
    let mut d = g.start();
    let (target, _t) = peer_reporter();

    // nothing published yet: the proxy says it cannot connect
    assert!(source_ip(http, target).is_err());
    g.ctl_ok(&["escaper", "float", "publish", r#"{"ipv4": "127.0.0.2"}"#]);
    assert_eq!(source_ip(http, target).unwrap(), "127.0.0.2");
    g.ctl_ok(&[
        "escaper",
        "float",
        "publish",
        r#"{"ipv4": ["127.0.0.3", {"ip": "127.0.0.4", "expire": "2999-01-01T00:00:00Z"}]}"#,
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(source_ip(http, target).unwrap());
    }
    assert!(
        seen.iter().all(|ip| ip == "127.0.0.3" || ip == "127.0.0.4"),
        "{seen:?}"
    );
    // an expired address is never used
    g.ctl_ok(&[
        "escaper",
        "float",
        "publish",
        r#"{"ipv4": [{"ip": "127.0.0.6", "expire": "2001-01-01T00:00:00Z"}, "127.0.0.5"]}"#,
    ]);
    for _ in 0..4 {
        assert_eq!(source_ip(http, target).unwrap(), "127.0.0.5");
    }
    // bad data is refused and changes nothing
    let out = g.ctl(&["escaper", "float", "publish", r#"{"ipv4": "::1"}"#]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    // reloading another module keeps the published set
    g.ctl_ok(&["reload-server", "http"]);
    assert_eq!(source_ip(http, target).unwrap(), "127.0.0.5");
    // and the cache file brings it back after a restart
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(10)).expect("exit");
    let _d2 = g.start();
    assert_eq!(source_ip(http, target).unwrap(), "127.0.0.5");
}

#[test]
fn garbage_and_silent_control_clients_are_dropped() {
    let dns = Dnsmasq::start(&[]);
    let p = ports(&dns);
    let yaml = render(&p, "").replace("recv_timeout: 30", "recv_timeout: 1");
    let g = Group::new(&yaml);
    let d = g.start();
    let sock = g.ctl_dir.join(format!("{}.sock", g.name));

    // garbage: a capnp header declaring a huge message, then noise
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut junk = vec![0u8, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
    junk.extend_from_slice(&[0xab; 4096]);
    let _ = c.write_all(&junk);
    // capnp-rpc may say why (an Abort message); then the daemon closes
    let mut answer = Vec::new();
    let r = c.read_to_end(&mut answer);
    let closed = match &r {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(closed, "the connection was not closed: {r:?}");
    let mut buf = [0u8; 64];

    // random bytes of every size
    for n in [1usize, 7, 8, 100, 70000] {
        let mut c = UnixStream::connect(&sock).unwrap();
        let bytes: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
        let _ = c.write_all(&bytes);
    }

    // silent clients are dropped after recv_timeout
    let started = Instant::now();
    let mut silent = UnixStream::connect(&sock).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let r = silent.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // the daemon is fine
    assert_eq!(g.ctl_ok(&["version"]).trim(), env!("CARGO_PKG_VERSION"));
    let origin = HttpOrigin::start();
    http_get(p.http, origin.addr()).unwrap();
    drop(d);
}
