//! TLCP (GM/T 0024) end to end: the real g3proxy built with `--features vendored-tongsuo`, the
//! user guide's "Guomi TLCP Protocol Encapsulation" and "Unloading the Guomi TLCP Protocol" (TLCP
//! to 4-layer TCP, TLCP to 4-layer TLS) blocks, and TLCP peers in `tlcp_support/` on Tongsuo
//! (the `openssl` API of variant-ssl with its `tongsuo` feature: Tongsuo's vendored build makes
//! only the libraries, not its `openssl s_client`/`s_server`). SM2 signing and encryption
//! certificate pairs are made at test time.
//!
//! The guide's "TLCP to 7-layer HTTP/HTTPS" blocks use `http_rproxy`, a server type this project
//! does not have yet: they are not tested here.
//!
//! This file is compiled only with the px-e2e feature `tlcp` and needs the Tongsuo daemon in
//! `PX_G3PROXY_BIN`; `scripts/test.sh` builds it (`target/tongsuo/g3proxy`) and runs:
//!
//! ```text
//! PX_G3PROXY_BIN=target/tongsuo/g3proxy cargo test -p px-e2e --features tlcp --test tlcp
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tlcp_support;
mod tls_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use openssl::ssl::{Ssl, SslContextBuilder, SslMethod, SslStream, SslVerifyMode};
use px_e2e::daemon::{Daemon, fill};
use px_e2e::dns::Dnsmasq;
use px_e2e::net;
use px_e2e::origin::HttpOrigin;
use px_e2e::pattern;
use tlcp_support::{
    IO_TIMEOUT, Seen, Sm2Pki, TlcpEcho, http_get, plain_roundtrip, proxy_v2,
    require_tongsuo_daemon, tlcp_client_ctx, tlcp_connect,
};
use tls_support::{Pki, assert_has, preamble, s_client};

// ---- TLCP on native_tls_port ---------------------------------------------------------------

/// The user guide's "Guomi TLCP Protocol Encapsulation" block, with the test's files and
/// loopback addresses. `escaper` is added to real_http (the guide elides it), and
/// `ca_certificate` next to `enable_client_auth` (the guide's comment: "Optional, enable mTLS";
/// without it the system CAs would verify clients).
const GUIDE_TLCP_ENCAPSULATION: &str = r#"
server:
  - name: real_http
    listen: "[127.0.0.1]:@REAL@" # Optional
    type: http_proxy
    escaper: default
    ingress_network_filter: {}
    # ... Other configurations
  - name: tlcp
    type: native_tls_port
    listen: "127.0.0.1:@PORT@"
    tls_server:
      tlcp_cert_pairs:         # Enable Guomi TLCP protocol
        sign_certificate: @SIGN_CRT@
        sign_private_key: @SIGN_KEY@
        enc_certificate: @ENC_CRT@
        enc_private_key: @ENC_KEY@
      enable_client_auth: true # Optional, enable mTLS
      ca_certificate: @CLIENT_CA@
    server: real_http
    proxy_protocol: v2         # Optional, enable PROXY Protocol
"#;

fn guide_vars(pki: &Sm2Pki) -> Vec<(&'static str, String)> {
    vec![
        ("SIGN_CRT", pki.path("srv-sign.crt")),
        ("SIGN_KEY", pki.path("srv-sign.key")),
        ("ENC_CRT", pki.path("srv-enc.crt")),
        ("ENC_KEY", pki.path("srv-enc.key")),
        ("CLIENT_CA", pki.path("cli-ca.crt")),
    ]
}

#[test]
fn guide_tlcp_encapsulation_serves_http() {
    require_tongsuo_daemon();
    let pki = Sm2Pki::new(&["srv", "cli", "other"]);
    let origin = HttpOrigin::start();
    let (real, port) = (net::free_tcp_port(), net::free_tcp_port());
    let mut vars = guide_vars(&pki);
    vars.push(("REAL", real.to_string()));
    vars.push(("PORT", port.to_string()));
    let yaml = preamble(None) + &fill(GUIDE_TLCP_ENCAPSULATION, &vars);
    let d = Daemon::start(&yaml, &[real, port]);
    let pp = proxy_v2(Ipv4Addr::LOCALHOST, 40000, port);
    // TLCP with the client's SM2 pairs, after the PROXY header: two requests on one connection
    let ctx = tlcp_client_ctx(&pki, "srv", Some("cli"));
    let mut s = tlcp_connect(&ctx, port, &pp).unwrap();
    assert_eq!(s.ssl().version_str(), "NTLSv1.1");
    assert_eq!(
        http_get(&mut s, &origin.url("/hello")),
        (200, b"hello world\n".to_vec())
    );
    let (code, body) = http_get(&mut s, &origin.url("/pattern/1000000"));
    assert_eq!(code, 200);
    pattern::check(&body, 1_000_000).unwrap();
    drop(s);
    // the address the PROXY header carries is the one real_http's ingress filter sees
    let mut s = tlcp_connect(
        &ctx,
        port,
        &proxy_v2(Ipv4Addr::new(127, 0, 0, 5), 40001, port),
    )
    .unwrap();
    assert_eq!(http_get(&mut s, &origin.url("/hello")).0, 403);
    drop(s);
    // mTLS: no client pair, or a pair from a CA the port does not trust, fail the handshake
    for pair in [None, Some("other")] {
        let ctx = tlcp_client_ctx(&pki, "srv", pair);
        let r = tlcp_connect(&ctx, port, &pp).and_then(|mut s| {
            // a failure may surface on the first read
            s.write_all(b"GET / HTTP/1.1\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            match s.read(&mut b) {
                Ok(n) if n > 0 => Ok(()),
                Ok(_) => Err("closed".to_string()),
                Err(e) => Err(e.to_string()),
            }
        });
        assert!(r.is_err(), "{pair:?} accepted");
    }
    // a client that does not trust the server's CA refuses it
    let ctx = tlcp_client_ctx(&pki, "other", Some("cli"));
    let e = tlcp_connect(&ctx, port, &pp).unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
    assert_eq!(origin.request_count(), 2, "{}", d.logs());
}

#[test]
fn one_native_tls_port_speaks_tlcp_and_tls() {
    require_tongsuo_daemon();
    let pki = Sm2Pki::new(&["srv"]);
    let tls = Pki::new();
    tls.ca("tls").leaf("tls", "server", &["tlcp.test"]);
    let origin = HttpOrigin::start();
    let (real, port) = (net::free_tcp_port(), net::free_tcp_port());
    let yaml = preamble(None)
        + &format!(
            "server:\n  - name: real_http\n    type: http_proxy\n    escaper: default\n    \
             listen: 127.0.0.1:{real}\n  - name: both\n    type: native_tls_port\n    \
             listen: 127.0.0.1:{port}\n    server: real_http\n    tls_server:\n      \
             tlcp_cert_pairs:\n{}      cert_pairs: {{certificate: {}, private_key: {}}}\n",
            pki.pair_yaml("srv", "        "),
            tls.path("server.crt"),
            tls.path("server.key"),
        );
    let _d = Daemon::start(&yaml, &[real, port]);
    // TLCP
    let ctx = tlcp_client_ctx(&pki, "srv", None);
    let mut s = tlcp_connect(&ctx, port, b"").unwrap();
    assert_eq!(s.ssl().version_str(), "NTLSv1.1");
    assert_eq!(
        http_get(&mut s, &origin.url("/hello")),
        (200, b"hello world\n".to_vec())
    );
    // TLS on the same port: curl as an HTTPS proxy client (the system OpenSSL)
    let r = px_e2e::cmd::curl_http(&[
        "-x",
        &format!("https://tlcp.test:{port}"),
        "--proxy-cacert",
        &tls.path("tls-ca.crt"),
        "--resolve",
        &format!("tlcp.test:{port}:127.0.0.1"),
        &origin.url("/pattern/300000"),
    ]);
    assert_eq!(r.code, 200, "{}", r.describe());
    pattern::check(&r.body, 300_000).unwrap();
}

// ---- TLCP as a tls_client ------------------------------------------------------------------

/// The user guide's "TLCP to 4-layer TCP" block, with loopback addresses and the test's CA.
/// `escaper` is added (the guide elides it; tcp_stream requires one).
const GUIDE_TLCP_TO_TCP: &str = r#"
server:
  - name: l4tcp
    type: tcp_stream
    escaper: default
    listen: "127.0.0.1:@PORT@"
    upstream: "127.0.0.1:@UP@" # Target Guomi server address, supports domain name
    tls_client:
      protocol: tlcp
      ca_certificate: @CA@ # CA certificate path
      # Additional configuration for mTLS, etc.
    upstream_tls_name: tlcp.test # Target domain name, used to verify the target identity (if the upstream url contains the domain name, it can be omitted)
"#;

/// A tcp_stream server named `name` on `port` with a TLCP `tls_client` towards `up`.
fn tlcp_stream(name: &str, port: u16, up: &str, tls_client: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: tcp_stream\n    escaper: default\n    listen: 127.0.0.1:{port}\n    \
         upstream: \"{up}\"\n    tls_client:\n{tls_client}{extra}"
    )
}

#[test]
fn guide_tlcp_to_layer4_tcp() {
    require_tongsuo_daemon();
    let pki = Sm2Pki::new(&["srv", "cli", "other"]);
    let echo = TlcpEcho::start(&pki, "srv", None);
    let mtls_echo = TlcpEcho::start(&pki, "srv", Some("cli"));
    let dns = Dnsmasq::start(&[("tlcp.test", "127.0.0.1")]);
    let ports: Vec<u16> = (0..6).map(|_| net::free_tcp_port()).collect();
    let ca = pki.path("srv-ca.crt");
    let base = format!("      protocol: tlcp\n      ca_certificate: {ca}\n");
    let mut yaml = preamble(Some(dns.port()))
        + &fill(
            GUIDE_TLCP_TO_TCP,
            &[
                ("PORT", ports[0].to_string()),
                ("UP", echo.port().to_string()),
                ("CA", ca.clone()),
            ],
        );
    // the upstream by domain name: it is the name verified
    yaml += &tlcp_stream(
        "by_name",
        ports[1],
        &format!("tlcp.test:{}", echo.port()),
        &base,
        "",
    );
    // a name the server certificate does not carry
    yaml += &tlcp_stream(
        "wrong_name",
        ports[2],
        &net::local(echo.port()).to_string(),
        &base,
        "    upstream_tls_name: elsewhere.test\n",
    );
    // an upstream requiring a client pair: without one, then with tlcp_cert_pair
    let up = net::local(mtls_echo.port()).to_string();
    yaml += &tlcp_stream("no_pair", ports[3], &up, &base, "");
    yaml += &tlcp_stream(
        "with_pair",
        ports[4],
        &up,
        &format!(
            "{base}      tlcp_cert_pair:\n{}",
            pki.pair_yaml("cli", "        ")
        ),
        "",
    );
    // a CA that did not issue the upstream's certificates
    yaml += &tlcp_stream(
        "other_ca",
        ports[5],
        &net::local(echo.port()).to_string(),
        &format!(
            "      protocol: tlcp\n      ca_certificate: {}\n",
            pki.path("other-ca.crt")
        ),
        "",
    );
    let d = Daemon::start(&yaml, &ports);
    let data = pattern::make(200_000);
    for port in [ports[0], ports[1]] {
        let back = plain_roundtrip(port, &data).unwrap();
        pattern::check(&back, data.len()).unwrap();
    }
    // both connections went through TLCP, every byte (the daemon's readiness probes made
    // connections without data)
    let full = |s: &Seen| s.version == "NTLSv1.1" && s.bytes == data.len();
    echo.wait_seen(|_| echo.seen().iter().filter(|s| full(s)).count() == 2);
    for (port, what) in [
        (ports[2], "a wrong upstream_tls_name"),
        (ports[3], "no client pair"),
        (ports[5], "an unknown CA"),
    ] {
        let back = plain_roundtrip(port, b"hello\n").unwrap_or_default();
        assert_eq!(back, b"", "{what}");
    }
    let back = plain_roundtrip(ports[4], b"hello tlcp\n").unwrap();
    assert_eq!(back, b"hello tlcp\n");
    mtls_echo.wait_seen(|s| s.version == "NTLSv1.1" && s.bytes == 11);
    assert!(
        mtls_echo
            .seen()
            .iter()
            .any(|s| s.version.contains("peer did not return a certificate")),
        "{:?}",
        mtls_echo.seen()
    );
    let logs = d.logs();
    assert!(logs.contains("TLCP to upstream"), "{logs}");
    assert!(logs.contains("hostname mismatch"), "{logs}");
}

/// The user guide's "TLCP to 4-layer TLS" block: its `tls_server` plus "other configurations
/// same as above tcp_stream".
const GUIDE_TLCP_TO_TLS: &str = r#"
server:
  - name: l4tls
    type: tls_stream
    tls_server:
      cert_pairs:
        - certificate: @CERT@
          private_key: @KEY@
    # Other configurations same as above tcp_stream
    escaper: default
    listen: "127.0.0.1:@PORT@"
    upstream: "127.0.0.1:@UP@"
    tls_client:
      protocol: tlcp
      ca_certificate: @CA@
    upstream_tls_name: tlcp.test
"#;

#[test]
fn guide_tlcp_to_layer4_tls() {
    require_tongsuo_daemon();
    let pki = Sm2Pki::new(&["srv"]);
    let tls = Pki::new();
    tls.ca("tls").leaf("tls", "front", &["front.test"]);
    let echo = TlcpEcho::start(&pki, "srv", None);
    let port = net::free_tcp_port();
    let yaml = preamble(None)
        + &fill(
            GUIDE_TLCP_TO_TLS,
            &[
                ("CERT", tls.path("front.crt")),
                ("KEY", tls.path("front.key")),
                ("PORT", port.to_string()),
                ("UP", echo.port().to_string()),
                ("CA", pki.path("srv-ca.crt")),
            ],
        );
    let _d = Daemon::start(&yaml, &[port]);
    // the system openssl s_client speaks TLS to the front, the daemon TLCP to the echo
    let out = s_client(
        &[
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "front.test",
            "-verify_return_error",
            "-CAfile",
            &tls.path("tls-ca.crt"),
        ],
        b"ping through tls and tlcp\n",
        Duration::from_millis(800),
    );
    assert_has(&out, "Verify return code: 0 (ok)");
    assert_has(&out, "ping through tls and tlcp");
    // 300 KB through TLS then TLCP and back, on a TLS client made here
    let mut b = SslContextBuilder::new(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    b.set_ca_file(tls.path("tls-ca.crt")).unwrap();
    let ctx = b.build();
    let tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut ssl = Ssl::new(&ctx).unwrap();
    ssl.param_mut().set_host("front.test").unwrap();
    ssl.set_hostname("front.test").unwrap();
    let mut s = ssl.connect(tcp).unwrap();
    let data = pattern::make(300_000);
    let mut back = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut read_until = |s: &mut SslStream<TcpStream>, back: &mut Vec<u8>, want: usize| {
        while back.len() < want {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {} bytes", back.len());
            back.extend_from_slice(&buf[..n]);
        }
    };
    // at most 64 KiB in flight, so no buffer on the way fills up
    let mut written = 0;
    for chunk in data.chunks(16 * 1024) {
        s.write_all(chunk).unwrap();
        written += chunk.len();
        read_until(&mut s, &mut back, written.saturating_sub(64 * 1024));
    }
    read_until(&mut s, &mut back, data.len());
    pattern::check(&back, data.len()).unwrap();
    let _ = s.shutdown();
    drop(s);
    echo.wait_seen(|s| s.version == "NTLSv1.1" && s.bytes == data.len());
}
