//! `stat:` end to end: the daemon sends StatsD datagrams to a UDP socket the test
//! listens on, while curl makes HTTP and SOCKS requests through it. The counters,
//! summed over every datagram, must match the requests made: task and
//! connection totals per server, escaper attempts and establishments, resolver
//! queries, bytes each way, the alive gauges back at 0, and the process-wide
//! relay count per data path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use px_e2e::cmd::curl_http;
use px_e2e::config::{DENIED_IP, Standard};
use px_e2e::daemon::Daemon;
use px_e2e::dns::Dnsmasq;
use px_e2e::origin::HttpOrigin;
use px_e2e::{hostport, http_proxy_url, net};

/// One StatsD line: `NAME:VALUE|TYPE|#k:v,k:v`.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    value: u64,
    kind: String,
    tags: BTreeMap<String, String>,
}

fn parse(line: &str) -> Option<Line> {
    let mut parts = line.split('|');
    let (name, value) = parts.next()?.rsplit_once(':')?;
    let kind = parts.next()?.to_string();
    let mut tags = BTreeMap::new();
    for p in parts {
        if let Some(t) = p.strip_prefix('#') {
            for kv in t.split(',') {
                let (k, v) = kv.split_once(':').unwrap_or((kv, ""));
                tags.insert(k.to_string(), v.to_string());
            }
        }
    }
    Some(Line {
        name: name.to_string(),
        value: value.parse().ok()?,
        kind,
        tags,
    })
}

/// Everything received on a UDP socket, by a thread of its own.
struct StatsdSink {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl StatsdSink {
    fn start() -> StatsdSink {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::downgrade(&lines);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            // ends once the sink is dropped
            while let Some(store) = store.upgrade() {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    let mut l = store.lock().unwrap();
                    l.extend(text.lines().map(str::to_string));
                }
            }
        });
        StatsdSink { port, lines }
    }

    fn lines(&self) -> Vec<Line> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| parse(l))
            .collect()
    }

    /// The sum of a counter over every datagram, for lines with all these tags.
    fn sum(&self, name: &str, tags: &[(&str, &str)]) -> u64 {
        self.matching(name, tags).iter().map(|l| l.value).sum()
    }

    /// The last value of a gauge.
    fn last(&self, name: &str, tags: &[(&str, &str)]) -> Option<u64> {
        self.matching(name, tags).last().map(|l| l.value)
    }

    fn matching(&self, name: &str, tags: &[(&str, &str)]) -> Vec<Line> {
        self.lines()
            .into_iter()
            .filter(|l| l.name == name)
            .filter(|l| {
                tags.iter()
                    .all(|(k, v)| l.tags.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// Waits until `ok` holds (bounded), then returns whether it did.
    fn wait_for(&self, ok: impl Fn(&StatsdSink) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ok(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ok(self)
    }

    /// Counters summed and gauges' last values, per name and tags (without `stat_id`).
    fn dump(&self) -> String {
        let mut agg: BTreeMap<String, u64> = BTreeMap::new();
        let lines = self.lines();
        for l in &lines {
            let tags: Vec<String> = l
                .tags
                .iter()
                .filter(|(k, _)| *k != "stat_id" && *k != "daemon_group")
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            let key = format!("{}|{}|{}", l.name, l.kind, tags.join(","));
            let e = agg.entry(key).or_default();
            if l.kind == "c" {
                *e += l.value;
            } else {
                *e = l.value;
            }
        }
        let body: Vec<String> = agg.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{} lines:\n{}", lines.len(), body.join("\n"))
    }
}

#[test]
fn counters_match_the_requests_made() {
    let sink = StatsdSink::start();
    let dns = Dnsmasq::start(&[("origin.test", "127.0.0.1")]);
    let origin = HttpOrigin::start();
    let http = net::free_tcp_port();
    let socks = net::free_tcp_port();
    let yaml = Standard::new()
        .http(http)
        .socks(socks)
        .dns(dns.port())
        .top(&format!(
            "stat: {{target: {{udp: 127.0.0.1:{}}}, prefix: g3proxy, emit_duration: 100ms}}",
            sink.port
        ))
        .render();
    let daemon = Daemon::start(&yaml, &[http, socks]);
    let group = daemon.group().to_string();
    let px = http_proxy_url(http);

    // http_proxy: 3 forwarded GETs, 1 CONNECT tunnel, 1 target the egress filter refuses
    let mut body_bytes = 0u64;
    for _ in 0..3 {
        let r = curl_http(&["-x", &px, &origin.url("/pattern/10000")]);
        assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());
        body_bytes += r.body.len() as u64;
    }
    let r = curl_http(&["-x", &px, "--proxytunnel", &origin.url("/pattern/5000")]);
    assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());
    body_bytes += r.body.len() as u64;
    let denied = format!("http://{DENIED_IP}:{}/hello", origin.port());
    let r = curl_http(&["-x", &px, &denied]);
    assert_eq!(r.code, 403, "{}\n{}", r.describe(), daemon.describe());

    // socks_proxy: 1 by IP, 1 by name (resolved by the daemon's resolver)
    let sp = hostport(socks);
    let r = curl_http(&["--socks5", &sp, &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());
    let by_name = origin.url_with_host("origin.test", "/hello");
    let r = curl_http(&["--socks5-hostname", &sp, &by_name]);
    assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());

    let http_tag = [("server", "http")];
    let socks_tag = [("server", "socks")];
    let esc_tag = [("escaper", "default")];
    let done = sink.wait_for(|s| {
        s.sum("g3proxy.server.task.total", &http_tag) >= 5
            && s.sum("g3proxy.server.task.total", &socks_tag) >= 2
            && s.sum("g3proxy.escaper.connection.establish", &esc_tag) >= 6
            && s.last("g3proxy.server.task.alive", &http_tag) == Some(0)
            && s.last("g3proxy.server.task.alive", &socks_tag) == Some(0)
    });
    assert!(done, "metrics never added up\n{}", sink.dump());
    // one more round, so a late counter would show up as an excess
    std::thread::sleep(Duration::from_millis(300));
    let why = || format!("{}\n{}", sink.dump(), daemon.describe());

    assert_eq!(
        sink.sum("g3proxy.server.task.total", &http_tag),
        5,
        "{}",
        why()
    );
    // one more connection each: the harness's probe that the port accepts
    assert_eq!(
        sink.sum("g3proxy.server.connection.total", &http_tag),
        5 + 1,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.server.task.total", &socks_tag),
        2,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.server.connection.total", &socks_tag),
        2 + 1,
        "{}",
        why()
    );
    assert_eq!(sink.last("g3proxy.server.task.alive", &http_tag), Some(0));

    // bytes: the bodies went out to the client, the request heads came in
    let tcp_http = [("server", "http"), ("transport", "tcp")];
    let out = sink.sum("g3proxy.server.traffic.out.bytes", &tcp_http);
    let inb = sink.sum("g3proxy.server.traffic.in.bytes", &tcp_http);
    assert!(
        out >= body_bytes && out < body_bytes + 5 * 1024,
        "out {out} for {body_bytes} body bytes\n{}",
        why()
    );
    assert!(inb > 5 * 40 && inb < 5 * 1024, "in {inb}\n{}", why());
    let tcp_socks = [("server", "socks"), ("transport", "tcp")];
    assert!(sink.sum("g3proxy.server.traffic.out.bytes", &tcp_socks) > 2 * 12);
    assert!(sink.sum("g3proxy.server.traffic.in.bytes", &tcp_socks) > 2 * 40);

    // the escaper: 7 tasks tried, 6 connected, 1 refused by the egress filter
    assert_eq!(
        sink.sum("g3proxy.escaper.task.total", &esc_tag),
        7,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.escaper.connection.attempt", &esc_tag),
        7,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.escaper.connection.establish", &esc_tag),
        6,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.escaper.forbidden.ip_blocked", &esc_tag),
        1,
        "{}",
        why()
    );

    // the resolver: only origin.test is a name; A is asked (IPv4 first), AAAA too
    let a = [("resolver", "default"), ("rr_type", "A")];
    assert!(
        sink.sum("g3proxy.resolver.query.total", &a) >= 1,
        "{}",
        why()
    );
    assert!(sink.sum("g3proxy.resolver.query.driver.total", &a) >= 1);
    // dnsmasq knows only the A record and has no upstream: it answers AAAA
    // with REFUSED, which is the server's refusal, not a server failure
    let aaaa = [("resolver", "default"), ("rr_type", "AAAA")];
    let aaaa_sent = sink.sum("g3proxy.resolver.query.driver.total", &aaaa);
    assert_eq!(
        sink.sum("g3proxy.resolver.query.server.refused", &aaaa),
        aaaa_sent,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.resolver.query.server.serv_fail", &aaaa),
        0,
        "{}",
        why()
    );
    assert!(
        sink.last(
            "g3proxy.resolver.memory.cache.capacity",
            &[("resolver", "default")]
        ) > Some(0)
    );

    // every line carries the group and a stat_id, and has the right type
    let lines = sink.lines();
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l.tags.get("daemon_group"), Some(&group), "{l:?}");
        assert!(
            l.tags
                .get("stat_id")
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "{l:?}"
        );
        assert!(l.name.starts_with("g3proxy."), "{l:?}");
        let gauge = l.name.ends_with(".alive") || l.name.contains(".memory.");
        assert_eq!(l.kind, if gauge { "g" } else { "c" }, "{l:?}");
    }
}

#[test]
fn unix_target_and_bad_stat_keys() {
    // a bad key in stat: is refused by -t with its position
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "stat:\n  target:\n    tcp: 127.0.0.1:8125\nserver: []\n",
    )
    .unwrap();
    let (status, out) = px_e2e::daemon::check_config(&main);
    assert!(!status.success(), "{out}");
    assert!(out.contains("tcp"), "{out}");
    assert!(out.contains("main.yaml:3"), "{out}");

    // a Unix datagram target gets the metrics too
    let sock_path = dir.path().join("statsd.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let http = net::free_tcp_port();
    let yaml = Standard::new()
        .http(http)
        .top(&format!(
            "stat:\n  target_unix: {}\n  prefix: edge\n  emit_interval: 50ms\n",
            sock_path.display()
        ))
        .render();
    let daemon = Daemon::start(&yaml, &[http]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline && !text.contains("edge.server.task.alive:0|g") {
        if let Ok(n) = sock.recv(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            text.push('\n');
        }
    }
    assert!(
        text.contains("edge.server.task.alive:0|g|#daemon_group:"),
        "{text}\n{}",
        daemon.describe()
    );
    assert!(text.contains("server:http"), "{text}");
}

#[test]
fn user_metrics_for_authenticated_tasks() {
    // the user guide's user: root / toor
    const TOKEN: &str = "{salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, \
                         sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}";
    let sink = StatsdSink::start();
    let origin = HttpOrigin::start();
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = Standard::new()
        .http(http)
        .socks(socks)
        .top(&format!(
            "user_group:\n  - name: default\n    static_users:\n      - name: root\n        token: {TOKEN}\n"
        ))
        .top(&format!(
            "stat: {{target_udp: 127.0.0.1:{}, emit_interval: 100ms}}",
            sink.port
        ))
        .http_key("user_group: default")
        .socks_key("user_group: default")
        .render();
    let daemon = Daemon::start(&yaml, &[http, socks]);
    let url = origin.url("/pattern/3000");
    for _ in 0..2 {
        let r = curl_http(&["-x", &format!("http://root:toor@127.0.0.1:{http}"), &url]);
        assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());
    }
    let r = curl_http(&["-x", &format!("http://root:nope@127.0.0.1:{http}"), &url]);
    assert_eq!(r.code, 407, "{}", r.describe());
    let r = curl_http(&["-x", &format!("socks5://root:toor@127.0.0.1:{socks}"), &url]);
    assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());

    let root_http = [("user", "root"), ("server", "http")];
    let root_socks = [("user", "root"), ("server", "socks")];
    let done = sink.wait_for(|s| {
        s.sum("g3proxy.user.request.total", &root_http) >= 2
            && s.sum("g3proxy.user.request.total", &root_socks) >= 1
            && s.last("g3proxy.user.request.alive", &root_http) == Some(0)
            && s.last("g3proxy.user.request.alive", &root_socks) == Some(0)
    });
    assert!(done, "user metrics never added up\n{}", sink.dump());
    std::thread::sleep(Duration::from_millis(300));
    let why = || format!("{}\n{}", sink.dump(), daemon.describe());
    assert_eq!(
        sink.sum("g3proxy.user.request.total", &root_http),
        2,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.user.connection.total", &root_http),
        2,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.user.request.total", &root_socks),
        1,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.user.connection.total", &root_socks),
        1,
        "{}",
        why()
    );
    let out = sink.sum(
        "g3proxy.user.traffic.out.bytes",
        &[("user", "root"), ("server", "http"), ("transport", "tcp")],
    );
    assert!((6000..6000 + 2048).contains(&out), "out {out}\n{}", why());
    let line = sink
        .matching("g3proxy.user.request.total", &root_http)
        .pop()
        .unwrap();
    assert_eq!(
        line.tags.get("user_group").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        line.tags.get("user_type").map(String::as_str),
        Some("Static")
    );
    // the wrong password: a failed authentication on the server, no user task
    assert_eq!(
        sink.sum(
            "g3proxy.server.forbidden.auth_failed",
            &[("server", "http")]
        ),
        1,
        "{}",
        why()
    );
    assert_eq!(
        sink.sum("g3proxy.server.task.total", &[("server", "http")]),
        2
    );
}

#[test]
fn counters_go_on_across_a_reload() {
    let sink = StatsdSink::start();
    let origin = HttpOrigin::start();
    let http = net::free_tcp_port();
    let config = |extra: &str| {
        let mut c = Standard::new().http(http).top(&format!(
            "stat: {{target: {{udp: 127.0.0.1:{}}}, emit_duration: 100ms}}",
            sink.port
        ));
        if !extra.is_empty() {
            c = c.http_key(extra);
        }
        c.render()
    };
    let mut daemon = Daemon::start(&config(""), &[http]);
    let px = http_proxy_url(http);
    let r = curl_http(&["-x", &px, &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());

    std::fs::write(daemon.config_path(), config("req_header_recv_timeout: 31s")).unwrap();
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.logs().contains("reloaded: server[http]") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        daemon.logs().contains("reloaded: server[http]"),
        "{}",
        daemon.describe()
    );
    let r = curl_http(&["-x", &px, &origin.url("/hello")]);
    assert_eq!(r.code, 200, "{}", r.describe());

    let http_tag = [("server", "http")];
    let done = sink.wait_for(|s| s.sum("g3proxy.server.task.total", &http_tag) >= 2);
    assert!(done, "{}\n{}", sink.dump(), daemon.describe());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.sum("g3proxy.server.task.total", &http_tag), 2);
    // one stats object before and after the reload
    let ids: std::collections::BTreeSet<String> = sink
        .matching("g3proxy.server.task.total", &http_tag)
        .into_iter()
        .filter_map(|l| l.tags.get("stat_id").cloned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[test]
fn relay_path_total_counts_a_connect_tunnel() {
    let sink = StatsdSink::start();
    let origin = HttpOrigin::start();
    let http = net::free_tcp_port();
    let yaml = Standard::new()
        .http(http)
        .top(&format!(
            "stat: {{target: {{udp: 127.0.0.1:{}}}, emit_duration: 100ms}}",
            sink.port
        ))
        .render();
    let daemon = Daemon::start(&yaml, &[http]);
    let group = daemon.group().to_string();

    // one CONNECT tunnel, plain TCP both sides: one relay, on splice or userspace
    // (a short exchange may end on either), io_uring only in an io-uring build
    let px = http_proxy_url(http);
    let r = curl_http(&["-x", &px, "--proxytunnel", &origin.url("/pattern/5000")]);
    assert_eq!(r.code, 200, "{}\n{}", r.describe(), daemon.describe());

    const NAME: &str = "g3proxy.relay.path.total";
    const PATHS: [&str; 3] = ["userspace", "splice", "io_uring"];
    let relays =
        |s: &StatsdSink| -> u64 { PATHS.iter().map(|p| s.sum(NAME, &[("path", p)])).sum() };
    let done = sink.wait_for(|s| relays(s) >= 1);
    assert!(
        done,
        "no relay counted\n{}\n{}",
        sink.dump(),
        daemon.describe()
    );
    // one more round: counters are changes, so the sum stays at the one relay
    std::thread::sleep(Duration::from_millis(300));
    let why = || format!("{}\n{}", sink.dump(), daemon.describe());
    assert_eq!(relays(&sink), 1, "{}", why());

    // every path is sent, as a counter of one process-wide object, without module tags
    let mut ids = std::collections::BTreeSet::new();
    for p in PATHS {
        let lines = sink.matching(NAME, &[("path", p)]);
        assert!(!lines.is_empty(), "no {NAME} for path {p}\n{}", why());
        for l in lines {
            assert_eq!(l.kind, "c", "{l:?}");
            assert_eq!(l.tags.get("daemon_group"), Some(&group), "{l:?}");
            assert!(!l.tags.contains_key("server"), "{l:?}");
            ids.extend(l.tags.get("stat_id").cloned());
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}
