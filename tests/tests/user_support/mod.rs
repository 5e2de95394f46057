//! Shared by the user group tests (`user_auth.rs`, `user_limits.rs`, `user_dynamic.rs`): configs
//! with a user group, raw SOCKS5 username/password handshakes, HTTP CONNECT on raw sockets, and
//! python requests / PySocks runs.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use px_e2e::cmd::{self, Output};
use px_e2e::config::Standard;
use px_e2e::net::RawConn;
use px_e2e::socks::{Dst, Reply5, read_reply5, request5};

/// The user guide's example token (password `toor`).
pub const GUIDE_TOKEN: &str = "{salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, \
                               sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}";
/// The same token as JSON, for dynamic users.
pub const GUIDE_JSON_TOKEN: &str = r#"{"salt": "113323bdab6fd2cc", "md5": "5c81f2becadde7fa5fde9026652ccc84", "sha1": "ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96"}"#;

/// The standard config with `user_group_yaml` (a whole `user_group:` section) and both servers
/// using the group named `default`.
pub fn config(http: u16, socks: u16, user_group_yaml: &str) -> Standard {
    Standard::new()
        .http(http)
        .socks(socks)
        .top(user_group_yaml)
        .http_key("user_group: default")
        .socks_key("user_group: default")
}

/// `http://user:pass@127.0.0.1:PORT`
pub fn http_proxy(port: u16, user: &str, pass: &str) -> String {
    format!("http://{user}:{pass}@127.0.0.1:{port}")
}

/// `socks5h://user:pass@127.0.0.1:PORT`
pub fn socks_proxy(port: u16, user: &str, pass: &str) -> String {
    format!("socks5h://{user}:{pass}@127.0.0.1:{port}")
}

/// A SOCKS5 handshake with username/password; returns the RFC 1929 status byte (0 is success).
pub fn socks5_login(c: &mut RawConn, user: &str, pass: &str) -> u8 {
    c.send(&[0x05, 0x01, 0x02]);
    let sel = c.read_exact_n(2);
    assert_eq!(
        sel,
        [0x05, 0x02],
        "the server must select username/password"
    );
    let mut m = vec![0x01, user.len() as u8];
    m.extend_from_slice(user.as_bytes());
    m.push(pass.len() as u8);
    m.extend_from_slice(pass.as_bytes());
    c.send(&m);
    let st = c.read_exact_n(2);
    assert_eq!(st[0], 0x01, "sub-negotiation version");
    st[1]
}

/// SOCKS5 CONNECT as `user`; the reply (panics if the login fails).
pub fn socks5_connect(port: u16, user: &str, pass: &str, dst: &Dst) -> (RawConn, Reply5) {
    let mut c = RawConn::connect(port);
    let st = socks5_login(&mut c, user, pass);
    assert_eq!(st, 0, "login of {user} failed");
    request5(&mut c, 0x01, dst);
    let r = read_reply5(&mut c);
    (c, r)
}

/// An HTTP CONNECT on a raw socket; returns the stream (open on 200) and the status.
pub fn http_connect(port: u16, auth: Option<(&str, &str)>, target: &str) -> (TcpStream, u16) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((u, p)) = auth {
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(format!("{u}:{p}").as_bytes())
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send CONNECT");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (s, status)
}

/// Sends `data` through an open tunnel to an echo server and reads it back.
pub fn echo_roundtrip(s: &mut TcpStream, data: &[u8]) -> bool {
    if s.write_all(data).is_err() {
        return false;
    }
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).is_ok() && got == data
}

/// Standard base64 (for `Proxy-Authorization`).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs python with requests + PySocks: for each `(proxy_url, target_url)` line prints the
/// status code, or `ERR <exception name>`.
pub fn python_statuses(pairs: &[(String, String)]) -> Vec<String> {
    let script = r#"
import sys, requests
pairs = sys.argv[1:]
for i in range(0, len(pairs), 2):
    proxy, url = pairs[i], pairs[i + 1]
    try:
        r = requests.get(url, proxies={"http": proxy, "https": proxy}, timeout=10)
        print(r.status_code, flush=True)
    except Exception as e:
        print("ERR", type(e).__name__, flush=True)
"#;
    let args: Vec<String> = pairs
        .iter()
        .flat_map(|(p, u)| [p.clone(), u.clone()])
        .collect();
    let out: Output = cmd::python(script, &args, Duration::from_secs(60));
    assert!(out.success(), "python: {}", out.describe());
    out.stdout_str()
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// curl's status through a proxy (`-x`), 0 when there was no HTTP answer.
pub fn curl_status(proxy: &str, url: &str) -> u16 {
    cmd::curl_http(&["-x", proxy, url]).code
}

/// A loopback address other than 127.0.0.1, for a client that must look like another host.
pub fn other_client() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, 3), 0))
}
