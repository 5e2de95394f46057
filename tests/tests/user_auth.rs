//! User authentication end to end: the real g3proxy with a user group, curl and python
//! (requests, PySocks) with the right, a wrong and no password for every token form, the user
//! guide's user, `scripts/passphrase_hash.py` output pasted into a config, anonymous / expired /
//! blocked users, SOCKS4 user ids, and a brute force that must leave the daemon responsive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod user_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use px_e2e::cmd::{self, curl_http};
use px_e2e::daemon::Daemon;
use px_e2e::echo::TcpEcho;
use px_e2e::net::{self, RawConn};
use px_e2e::origin::HttpOrigin;
use px_e2e::socks::{Dst, read_reply5, request5};
use px_e2e::workspace_root;
use user_support::*;

/// Every token form: (user, password, token YAML).
const FORMS: &[(&str, &str, &str)] = &[
    ("root", "toor", GUIDE_TOKEN),
    ("md5u", "pw-md5", "\"$1$abcdefgh$sRyYqWQj2HqQ6Tw3JJfhq.\""),
    (
        "sha256u",
        "pw-sha256",
        "\"$5$saltsalt$XI3fksjl7/nf8khkNt0i5D7QRbB/2AeQKdYnifdJSo2\"",
    ),
    (
        "sha512u",
        "pw-sha512",
        "{type: xcrypt_hash, value: \"$6$saltsalt$CZPNVr4niieqYaHqrgdfrQ604H94bmAexPzzchp3jqxMjdifKaFca.IyeoTbVF0cxoy5RMnMCYslfoUCSvGW./\"}",
    ),
    (
        "argonu",
        "pw-argon2",
        "\"$argon2id$v=19$m=256,t=1,p=1$ZTJlc2FsdHNhbHQx$2H3MB6rApmI/a+PDkU9f7B5dki6Zi65J3uxRWFJyt6E\"",
    ),
];

fn all_forms_group() -> String {
    let mut y = String::from("user_group:\n  - name: default\n    static_users:\n");
    for (u, _, t) in FORMS {
        y.push_str(&format!("      - name: {u}\n        token: {t}\n"));
    }
    y
}

fn start(group_yaml: &str) -> (Daemon, u16, u16) {
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let d = Daemon::start(&config(http, socks, group_yaml).render(), &[http, socks]);
    (d, http, socks)
}

#[test]
fn every_token_form_with_curl_and_python() {
    let origin = HttpOrigin::start();
    let (_d, http, socks) = start(&all_forms_group());
    let url = origin.url("/hello");

    for (user, pass, _) in FORMS {
        let r = curl_http(&["-x", &http_proxy(http, user, pass), &url]);
        assert_eq!(r.code, 200, "{user} over http: {}", r.describe());
        assert_eq!(r.body, b"hello world\n");
        let r = curl_http(&["-x", &http_proxy(http, user, "wrong"), &url]);
        assert_eq!(
            r.code,
            407,
            "{user} with a wrong password: {}",
            r.describe()
        );
        assert_eq!(
            r.header("proxy-authenticate").as_deref(),
            Some("Basic realm=\"proxy\""),
            "{}",
            r.describe()
        );
        let r = curl_http(&["-x", &socks_proxy(socks, user, pass), &url]);
        assert_eq!(r.code, 200, "{user} over socks5: {}", r.describe());
        let r = curl_http(&["-x", &socks_proxy(socks, user, "wrong"), &url]);
        assert_eq!(r.code, 0, "{user}: socks5 with a wrong password must fail");
        assert!(!r.out.success());
        // CONNECT through the HTTP proxy too
        let r = curl_http(&["-p", "-x", &http_proxy(http, user, pass), &url]);
        assert_eq!(r.code, 200, "{user} CONNECT: {}", r.describe());
    }
    // no credentials at all
    let r = curl_http(&["-x", &format!("http://127.0.0.1:{http}"), &url]);
    assert_eq!(r.code, 407, "{}", r.describe());
    let r = curl_http(&["-x", &format!("socks5h://127.0.0.1:{socks}"), &url]);
    assert_eq!(r.code, 0);
    let mut c = RawConn::connect(socks);
    c.send(&[0x05, 0x01, 0x00]);
    assert_eq!(
        c.read_exact_n(2),
        [0x05, 0xFF],
        "no-auth only: no acceptable method"
    );
    // RFC 1929 on the wire: status 0 and 1
    let mut c = RawConn::connect(socks);
    assert_eq!(socks5_login(&mut c, "root", "toor"), 0);
    let mut c = RawConn::connect(socks);
    assert_eq!(socks5_login(&mut c, "root", "nope"), 1);
    let mut c = RawConn::connect(socks);
    assert_eq!(socks5_login(&mut c, "nobody", "toor"), 1);

    // python requests and PySocks, one interpreter for every case
    let mut pairs = Vec::new();
    let mut want = Vec::new();
    for (user, pass, _) in FORMS {
        pairs.push((http_proxy(http, user, pass), url.clone()));
        want.push("200".to_string());
        pairs.push((http_proxy(http, user, "wrong"), url.clone()));
        want.push("407".to_string());
        pairs.push((socks_proxy(socks, user, pass), url.clone()));
        want.push("200".to_string());
        pairs.push((socks_proxy(socks, user, "wrong"), url.clone()));
        want.push("ERR".to_string());
    }
    pairs.push((format!("http://127.0.0.1:{http}"), url.clone()));
    want.push("407".to_string());
    pairs.push((format!("socks5h://127.0.0.1:{socks}"), url.clone()));
    want.push("ERR".to_string());
    let got = python_statuses(&pairs);
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((g, w), p) in got.iter().zip(&want).zip(&pairs) {
        assert!(
            g.starts_with(w.as_str()),
            "python via {}: got {g}, want {w}",
            p.0
        );
    }
}

#[test]
fn passphrase_hash_output_pasted_into_a_config() {
    let origin = HttpOrigin::start();
    let script = workspace_root().join("scripts/passphrase_hash.py");
    let script = script.to_str().unwrap();
    // a given password, and a generated one (shown as a YAML comment on the first line)
    let given = cmd::run(
        std::process::Command::new("python3").args([script, "--user", "pasted", "p@ss word:1"]),
        Duration::from_secs(20),
    );
    assert!(given.success(), "{}", given.describe());
    let generated = cmd::run(
        std::process::Command::new("python3").args([script, "--user", "gen"]),
        Duration::from_secs(20),
    );
    assert!(generated.success(), "{}", generated.describe());
    let gen_out = generated.stdout_str();
    let gen_pw = gen_out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# password: "))
        .expect("generated password line")
        .trim()
        .to_string();
    let mut group = String::from("user_group:\n  - name: default\n    static_users:\n");
    for line in given.stdout_str().lines().chain(gen_out.lines()) {
        group.push_str(&format!("      {line}\n"));
    }
    let (_d, http, socks) = start(&group);
    let url = origin.url("/hello");
    // curl takes user:password; the colon in the password is kept
    let r = curl_http(&[
        "-x",
        &format!("http://127.0.0.1:{http}"),
        "-U",
        "pasted:p@ss word:1",
        &url,
    ]);
    assert_eq!(r.code, 200, "{}\n{group}", r.describe());
    let r = curl_http(&[
        "-x",
        &format!("http://127.0.0.1:{http}"),
        "-U",
        "pasted:p@ss word",
        &url,
    ]);
    assert_eq!(r.code, 407);
    assert_eq!(curl_status(&http_proxy(http, "gen", &gen_pw), &url), 200);
    assert_eq!(curl_status(&socks_proxy(socks, "gen", &gen_pw), &url), 200);
    assert_eq!(curl_status(&http_proxy(http, "gen", "x"), &url), 407);

    // the JSON form is one user object, as a dynamic source takes it
    let json = cmd::run(
        std::process::Command::new("python3").args([script, "--json", "--user", "j", "pw"]),
        Duration::from_secs(20),
    );
    let text = json.stdout_str();
    assert!(
        text.starts_with("{\"name\": \"j\", \"token\": {\"salt\": "),
        "{text}"
    );
}

#[test]
fn anonymous_expired_blocked_and_socks4_users() {
    let origin = HttpOrigin::start();
    let other = HttpOrigin::start();
    let group = format!(
        "user_group:\n  - name: default\n    anonymous_user:\n      name: guest\n      \
         dst_port_filter: [{port}]\n    static_users:\n      \
         - {{name: root, token: {GUIDE_TOKEN}}}\n      \
         - {{name: old, token: {GUIDE_TOKEN}, expire: '2001-02-03T04:05:06+08:00'}}\n      \
         - {{name: blocked, token: {GUIDE_TOKEN}, block_and_delay: 1s}}\n",
        port = origin.port()
    );
    let (http, socks) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = config(http, socks, &group)
        .socks_key("socks4_user_id_auth: true")
        .render();
    let _d = Daemon::start(&yaml, &[http, socks]);
    let plain = format!("http://127.0.0.1:{http}");

    // anonymous: no credentials, or an unknown name; the guest's own rules apply
    assert_eq!(curl_status(&plain, &origin.url("/hello")), 200);
    assert_eq!(
        curl_status(&http_proxy(http, "stranger", "x"), &origin.url("/hello")),
        200
    );
    let r = curl_http(&["-x", &plain, &other.url("/hello")]);
    assert_eq!(r.code, 403, "guest's port filter: {}", r.describe());
    assert!(
        r.body_str().contains("not allowed for this user"),
        "{}",
        r.describe()
    );
    assert_eq!(
        curl_status(
            &format!("socks5h://127.0.0.1:{socks}"),
            &origin.url("/hello")
        ),
        200
    );
    // a known user with a wrong password is not the guest
    assert_eq!(
        curl_status(&http_proxy(http, "root", "x"), &origin.url("/hello")),
        407
    );

    // expired: 403 with the reason; SOCKS5 status 1
    let r = curl_http(&[
        "-x",
        &http_proxy(http, "old", "toor"),
        &origin.url("/hello"),
    ]);
    assert_eq!(r.code, 403, "{}", r.describe());
    assert!(r.body_str().contains("expired"), "{}", r.describe());
    let mut c = RawConn::connect(socks);
    assert_eq!(socks5_login(&mut c, "old", "toor"), 1);

    // blocked: 403 only after the delay
    let t0 = Instant::now();
    let r = curl_http(&[
        "-x",
        &http_proxy(http, "blocked", "toor"),
        &origin.url("/hello"),
    ]);
    assert_eq!(r.code, 403, "{}", r.describe());
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    let mut c = RawConn::connect(socks);
    assert_eq!(socks5_login(&mut c, "blocked", "toor"), 1);
    assert!(t0.elapsed() >= Duration::from_millis(950));

    // SOCKS4 with `user:password` as the user id
    let socks4 = |id: &str| -> u8 {
        let mut c = RawConn::connect(socks);
        let mut m = vec![0x04, 0x01];
        m.extend_from_slice(&origin.port().to_be_bytes());
        m.extend_from_slice(&[127, 0, 0, 1]);
        m.extend_from_slice(id.as_bytes());
        m.push(0);
        c.send(&m);
        c.read_exact_n(8)[1]
    };
    assert_eq!(socks4("root:toor"), 0x5A);
    assert_eq!(socks4("root:bad"), 0x5D);
    assert_eq!(socks4("old:toor"), 0x5B);
    assert_eq!(socks4("guest-without-password"), 0x5D);
}

/// One wrong-password HTTP attempt from `from`; true when answered 407.
async fn wrong_http(from: Ipv4Addr, proxy: u16, target: SocketAddr, n: usize) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
        return false;
    };
    if sock.bind(SocketAddr::from((from, 0))).is_err() {
        return false;
    }
    let Ok(mut s) = sock
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, proxy)))
        .await
    else {
        return false;
    };
    let req = format!(
        "GET http://{target}/hello HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {}\r\n\r\n",
        base64(format!("root:guess{n}").as_bytes())
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf[got..])).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    buf.starts_with(b"HTTP/1.1 407")
}

/// One wrong-password SOCKS5 attempt from `from`; true when refused with status 1.
async fn wrong_socks(from: Ipv4Addr, proxy: u16, user: &str, n: usize) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
        return false;
    };
    if sock.bind(SocketAddr::from((from, 0))).is_err() {
        return false;
    }
    let Ok(mut s) = sock
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, proxy)))
        .await
    else {
        return false;
    };
    let pass = format!("guess{n}");
    let mut m = vec![0x05, 0x01, 0x02, 0x01, user.len() as u8];
    m.extend_from_slice(user.as_bytes());
    m.push(pass.len() as u8);
    m.extend_from_slice(pass.as_bytes());
    if s.write_all(&m).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && buf == [0x05, 0x02, 0x01, 0x01]
}

#[test]
fn brute_force_leaves_the_daemon_responsive() {
    let origin = HttpOrigin::start();
    let echo = TcpEcho::start();
    let (_d, http, socks) = start(&all_forms_group());
    let attacker = Ipv4Addr::new(127, 0, 0, 3);
    let target = origin.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));

    // phase 1: thousands of wrong fast_hash passwords over HTTP and SOCKS5, 16 at a time
    let rt = px_e2e::runtime();
    let attack = {
        let (refused, attempts) = (Arc::clone(&refused), Arc::clone(&attempts));
        rt.spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for w in 0..16usize {
                let (refused, attempts) = (Arc::clone(&refused), Arc::clone(&attempts));
                set.spawn(async move {
                    loop {
                        let n = attempts.fetch_add(1, Ordering::SeqCst);
                        if n >= 4000 {
                            return;
                        }
                        let ok = if w % 4 == 0 {
                            wrong_socks(attacker, socks, "root", n).await
                        } else {
                            wrong_http(attacker, http, target, n).await
                        };
                        if ok {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
            while set.join_next().await.is_some() {}
        })
    };
    let mut worst = Duration::ZERO;
    let mut served = 0;
    while !attack.is_finished() {
        let t0 = Instant::now();
        let code = curl_status(&http_proxy(http, "root", "toor"), &origin.url("/hello"));
        assert_eq!(code, 200, "the real user during the attack");
        worst = worst.max(t0.elapsed());
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(attack).unwrap();
    let n = refused.load(Ordering::SeqCst);
    assert!(n >= 3900, "wrong passwords refused: {n} of 4000");
    assert!(
        served >= 3,
        "the real user was served {served} times during the attack"
    );
    assert!(
        worst < Duration::from_secs(2),
        "worst latency for the real user: {worst:?}"
    );

    // phase 2: wrong passwords against a costly (sha512-crypt) token for 4 seconds; another
    // client's first login with a costly token still gets through quickly
    stop.store(false, Ordering::SeqCst);
    let costly_refused = Arc::new(AtomicUsize::new(0));
    let attack = {
        let (stop, costly_refused) = (Arc::clone(&stop), Arc::clone(&costly_refused));
        rt.spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for w in 0..8usize {
                let (stop, costly_refused) = (Arc::clone(&stop), Arc::clone(&costly_refused));
                set.spawn(async move {
                    let mut n = w * 100_000;
                    while !stop.load(Ordering::SeqCst) {
                        if wrong_socks(attacker, socks, "sha512u", n).await {
                            costly_refused.fetch_add(1, Ordering::SeqCst);
                        }
                        n += 1;
                    }
                });
            }
            while set.join_next().await.is_some() {}
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (mut tunnel, reply) =
        socks5_connect(socks, "sha256u", "pw-sha256", &Dst::local(echo.port()));
    let first_login = t0.elapsed();
    assert_eq!(reply.rep, 0);
    assert!(echo_roundtrip(&mut tunnel.stream, b"still here"));
    let t0 = Instant::now();
    assert_eq!(
        curl_status(
            &http_proxy(http, "sha512u", "pw-sha512"),
            &origin.url("/hello")
        ),
        200
    );
    let costly_ok = t0.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    rt.block_on(attack).unwrap();
    assert!(
        first_login < Duration::from_secs(3),
        "a costly login from another address took {first_login:?}"
    );
    assert!(costly_ok < Duration::from_secs(3), "{costly_ok:?}");
    assert!(costly_refused.load(Ordering::SeqCst) > 0);
    // and the daemon still answers at once
    let mut c = RawConn::connect(socks);
    assert_eq!(socks5_login(&mut c, "root", "toor"), 0);
    request5(&mut c, 0x01, &Dst::local(echo.port()));
    assert_eq!(read_reply5(&mut c).rep, 0);
    c.send(b"ping");
    assert_eq!(c.read_exact_n(4), b"ping");
}
