//! Dynamic users end to end: a file source and a real redis-server (Debian's, started on a
//! loopback port) shared by two daemons. A user added, changed and removed at the source is
//! honoured after the refresh interval or at once after `g3proxy-ctl reload-user-group`, static
//! users keep priority, a bad document is rejected whole with a log line, and the daemons keep
//! serving known users while Redis is down, also after a restart (from the `cache` file).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod user_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use px_e2e::cmd;
use px_e2e::daemon::{Daemon, g3proxy_bin};
use px_e2e::net;
use px_e2e::origin::HttpOrigin;
use px_e2e::workspace_root;
use user_support::*;

/// Polls curl through `proxy` until it answers `want` (bounded).
fn wait_status(proxy: &str, url: &str, want: u16, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = curl_status(proxy, url);
        if got == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "{proxy} still answers {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A user JSON object with a token made by `scripts/passphrase_hash.py --json`.
fn user_json(name: &str, password: &str) -> String {
    let script = workspace_root().join("scripts/passphrase_hash.py");
    let out = cmd::run(
        Command::new("python3").args([
            script.to_str().unwrap(),
            "--json",
            "--user",
            name,
            password,
        ]),
        Duration::from_secs(20),
    );
    assert!(out.success(), "{}", out.describe());
    out.stdout_str().trim().to_string()
}

fn group_yaml(source: &str, extra: &str) -> String {
    format!(
        "user_group:\n  - name: default\n    static_users:\n      - {{name: root, token: {GUIDE_TOKEN}}}\n    \
         source: {source}\n{extra}"
    )
}

#[test]
fn file_source_add_change_remove_and_bad_document() {
    let origin = HttpOrigin::start();
    let url = origin.url("/hello");
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = config(
        http,
        socks,
        &group_yaml(
            "{type: file, path: users.json}",
            "    refresh_interval: 300ms\n",
        ),
    )
    .render();
    let d = Daemon::start_files(
        &[("g3proxy.yaml", &yaml), ("users.json", "[]")],
        "g3proxy.yaml",
        &[http, socks],
    );
    let users = d.dir().join("users.json");
    let within = Duration::from_secs(5);

    assert_eq!(curl_status(&http_proxy(http, "dyn", "pw1"), &url), 407);
    std::fs::write(&users, format!("[{}]", user_json("dyn", "pw1"))).unwrap();
    wait_status(&http_proxy(http, "dyn", "pw1"), &url, 200, within);
    assert_eq!(curl_status(&socks_proxy(socks, "dyn", "pw1"), &url), 200);

    // changed password: the new one passes, the old one no longer
    std::fs::write(&users, format!("[{}]", user_json("dyn", "pw2"))).unwrap();
    wait_status(&http_proxy(http, "dyn", "pw2"), &url, 200, within);
    assert_eq!(curl_status(&http_proxy(http, "dyn", "pw1"), &url), 407);

    // a bad document is rejected whole, with a log line; the last good set stays
    std::fs::write(
        &users,
        format!(
            "[{}, {{\"name\": \"x\", \"bogus\": 1}}]",
            user_json("dyn", "pw3")
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    while !d.logs().contains("rejected the dynamic user document") {
        assert!(
            t0.elapsed() < within,
            "no log line for the bad document:\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.logs().contains("bogus"), "the log names the bad key");
    assert_eq!(curl_status(&http_proxy(http, "dyn", "pw2"), &url), 200);
    assert_eq!(curl_status(&http_proxy(http, "dyn", "pw3"), &url), 407);

    // a dynamic user named like a static one does not replace it
    std::fs::write(
        &users,
        format!(
            "[{}, {}]",
            user_json("root", "other"),
            user_json("dyn", "pw2")
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(curl_status(&http_proxy(http, "root", "toor"), &url), 200);
    assert_eq!(curl_status(&http_proxy(http, "root", "other"), &url), 407);

    // removed
    std::fs::write(&users, "[]").unwrap();
    wait_status(&http_proxy(http, "dyn", "pw2"), &url, 407, within);
}

/// A redis-server child on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = net::free_tcp_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server is missing: `apt-get install redis-server` (scripts/test.sh does)",
            );
        assert!(
            net::wait_port(port, Duration::from_secs(10)),
            "redis-server did not start"
        );
        Redis { child, port }
    }

    /// One command; the first line of the reply.
    fn cmd(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut m = format!("*{}\r\n", args.len());
        for a in args {
            m.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(m.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        assert!(!line.starts_with('-'), "redis {args:?}: {line}");
        line
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ctl(d: &Daemon, args: &[&str]) -> String {
    let bin = g3proxy_bin().with_file_name("g3proxy-ctl");
    let out = cmd::run(
        Command::new(bin).arg("-G").arg(d.group()).args(args),
        Duration::from_secs(30),
    );
    assert!(
        out.success(),
        "g3proxy-ctl {args:?}: {}\n{}",
        out.describe(),
        d.logs()
    );
    out.stdout_str()
}

#[test]
fn redis_fleet_reload_outage_and_cache() {
    let origin = HttpOrigin::start();
    let url = origin.url("/hello");
    let mut redis = Redis::start();
    let key = "g3proxy:users";
    let cache_dir = tempfile::tempdir().unwrap();
    let within = Duration::from_secs(6);
    let redis_port = redis.port;
    let daemon = |refresh: &str, cache: &str| -> (Daemon, u16) {
        let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
        let source =
            format!("{{type: redis, addr: 127.0.0.1:{redis_port}, key: \"{key}\", timeout: 2s}}");
        let extra = format!("    refresh_interval: {refresh}\n    cache: {cache}\n");
        let yaml = config(http, socks, &group_yaml(&source, &extra)).render();
        (Daemon::start(&yaml, &[http, socks]), http)
    };
    let cache_a = cache_dir.path().join("a.json");
    let (a, http_a) = daemon("1s", cache_a.to_str().unwrap());
    let (b, http_b) = daemon("1s", cache_dir.path().join("b.json").to_str().unwrap());

    // added as a JSON list in a string: both daemons of the fleet honour it
    redis.cmd(&["SET", key, &format!("[{}]", user_json("alice", "a1"))]);
    wait_status(&http_proxy(http_a, "alice", "a1"), &url, 200, within);
    wait_status(&http_proxy(http_b, "alice", "a1"), &url, 200, within);

    // changed, now as a hash of one user per field
    redis.cmd(&["DEL", key]);
    redis.cmd(&["HSET", key, "alice", &user_json("alice", "a2")]);
    redis.cmd(&["HSET", key, "carol", &user_json("carol", "c1")]);
    wait_status(&http_proxy(http_a, "alice", "a2"), &url, 200, within);
    wait_status(&http_proxy(http_b, "carol", "c1"), &url, 200, within);
    assert_eq!(curl_status(&http_proxy(http_a, "alice", "a1"), &url), 407);

    // removed
    redis.cmd(&["HDEL", key, "carol"]);
    wait_status(&http_proxy(http_a, "carol", "c1"), &url, 407, within);
    wait_status(&http_proxy(http_b, "carol", "c1"), &url, 407, within);

    // a daemon with a long refresh interval sees a new user at once after reload-user-group
    let (c, http_c) = daemon("1h", cache_dir.path().join("c.json").to_str().unwrap());
    wait_status(&http_proxy(http_c, "alice", "a2"), &url, 200, within);
    redis.cmd(&["HSET", key, "bob", &user_json("bob", "b1")]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        curl_status(&http_proxy(http_c, "bob", "b1"), &url),
        407,
        "not refreshed yet"
    );
    let said = ctl(&c, &["reload-user-group", "default"]);
    assert!(said.contains("default"), "{said}");
    assert_eq!(
        curl_status(&http_proxy(http_c, "bob", "b1"), &url),
        200,
        "{}",
        c.logs()
    );
    drop(c);
    drop(b);

    // Redis goes away: known users keep working, and a restarted daemon starts from its cache
    wait_status(&http_proxy(http_a, "bob", "b1"), &url, 200, within);
    redis.stop();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(curl_status(&http_proxy(http_a, "alice", "a2"), &url), 200);
    assert_eq!(curl_status(&http_proxy(http_a, "bob", "b1"), &url), 200);
    assert!(
        a.logs().contains("cannot fetch dynamic users"),
        "{}",
        a.logs()
    );
    drop(a);
    let cached = std::fs::read_to_string(&cache_a).unwrap();
    assert!(cached.contains("\"bob\""), "{cached}");
    let (a2, http_a2) = daemon("1s", cache_a.to_str().unwrap());
    assert_eq!(
        curl_status(&http_proxy(http_a2, "bob", "b1"), &url),
        200,
        "{}",
        a2.logs()
    );
    assert_eq!(curl_status(&http_proxy(http_a2, "alice", "a2"), &url), 200);
    assert_eq!(curl_status(&http_proxy(http_a2, "root", "toor"), &url), 200);
    assert!(a2.logs().contains("from cache"), "{}", a2.logs());
}
