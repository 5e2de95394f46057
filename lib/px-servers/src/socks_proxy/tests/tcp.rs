//! CONNECT over SOCKS4, 4a and 5: relaying, reply codes, bad input, timeouts.

use std::time::{Duration, Instant};

use px_socks::{Socks4Reply, Socks4Request, Socks5Command, Socks5Reply, SocksAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Proxy, closed_within, socks5, tcp_echo};

async fn echo_roundtrip(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).await.unwrap();
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, data);
}

fn connect_code(rep: Socks5Reply) -> u8 {
    rep as u8
}

async fn code_for(proxy: &Proxy, target: SocksAddr) -> u8 {
    let (_, rep, bound) = socks5(proxy.addr, Socks5Command::Connect, target).await;
    if rep != Socks5Reply::Succeeded {
        assert_eq!(bound, SocksAddr::unspecified());
    }
    connect_code(rep)
}

#[tokio::test]
async fn socks5_connect_ipv4_and_domain() {
    let proxy = Proxy::start("").await;
    let echo = tcp_echo("127.0.0.1").await;
    let (mut s, rep, bound) = socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(echo)).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    assert_eq!(bound.host_string(), "127.0.0.1");
    assert_ne!(bound.port(), 0);
    echo_roundtrip(&mut s, b"over ipv4").await;
    // a large transfer, checked byte for byte
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let send = big.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&send).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == big, "payload mismatch");

    let target = SocksAddr::domain("localhost", echo.port()).unwrap();
    let (mut s, rep, _) = socks5(proxy.addr, Socks5Command::Connect, target).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    echo_roundtrip(&mut s, b"over a domain").await;
}

#[tokio::test]
async fn socks5_connect_ipv6() {
    if TcpListener::bind("[::1]:0").await.is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let proxy = Proxy::start_on("[::1]:0", "").await;
    let echo = tcp_echo("::1").await;
    let (mut s, rep, bound) = socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(echo)).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    assert_eq!(bound.host_string(), "::1");
    echo_roundtrip(&mut s, b"over ipv6").await;
}

#[tokio::test]
async fn early_data_after_request_is_relayed() {
    let proxy = Proxy::start("").await;
    let echo = tcp_echo("127.0.0.1").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut out = vec![5, 1, 0];
    px_socks::Socks5Request {
        command: Socks5Command::Connect,
        target: SocksAddr::Ip(echo),
    }
    .write_to(&mut out)
    .unwrap();
    out.extend_from_slice(b"pipelined");
    s.write_all(&out).await.unwrap();
    let mut head = [0u8; 2 + 10 + 9];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[..4], &[5, 0, 5, 0]);
    assert_eq!(&head[12..], b"pipelined");
}

#[tokio::test]
async fn socks4_and_socks4a() {
    let proxy = Proxy::start("").await;
    let echo = tcp_echo("127.0.0.1").await;
    for target in [
        SocksAddr::Ip(echo),
        SocksAddr::domain("localhost", echo.port()).unwrap(),
    ] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let mut out = Vec::new();
        Socks4Request {
            target,
            user_id: b"me".to_vec(),
        }
        .write_to(&mut out)
        .unwrap();
        s.write_all(&out).await.unwrap();
        let mut rep = [0u8; 8];
        s.read_exact(&mut rep).await.unwrap();
        assert_eq!(Socks4Reply::decode(rep).unwrap().0, Socks4Reply::Granted);
        echo_roundtrip(&mut s, b"socks4").await;
    }
    // a refused target: 0x5B
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[4, 1, (port >> 8) as u8, port as u8, 127, 0, 0, 1, 0])
        .await
        .unwrap();
    let mut rep = [0u8; 8];
    s.read_exact(&mut rep).await.unwrap();
    assert_eq!(rep[1], 0x5B);
}

#[tokio::test]
async fn reply_codes_for_failures() {
    let proxy = Proxy::start("dst_port_filter: {default: permit, forbid: 9}\n").await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let d = |name: &str| SocksAddr::domain(name, 80).unwrap();
    assert_eq!(code_for(&proxy, SocksAddr::Ip(closed_addr)).await, 0x05);
    assert_eq!(code_for(&proxy, d("nxdomain.test")).await, 0x04);
    assert_eq!(code_for(&proxy, d("hostunreach.test")).await, 0x04);
    assert_eq!(code_for(&proxy, d("netunreach.test")).await, 0x03);
    assert_eq!(code_for(&proxy, d("forbidden.test")).await, 0x02);
    assert_eq!(code_for(&proxy, d("timeout.test")).await, 0x06);
    assert_eq!(code_for(&proxy, d("not valid!")).await, 0x04);
    let port9 = SocksAddr::Ip("127.0.0.1:9".parse().unwrap());
    assert_eq!(code_for(&proxy, port9).await, 0x02);
    // then a good request on the same server
    let echo = tcp_echo("127.0.0.1").await;
    assert_eq!(code_for(&proxy, SocksAddr::Ip(echo)).await, 0x00);
}

#[tokio::test]
async fn host_filter_gives_not_allowed() {
    let proxy =
        Proxy::start("dst_host_filter_set: {exact: {default: permit, forbid: blocked.test}}\n")
            .await;
    let t = SocksAddr::domain("blocked.test", 80).unwrap();
    assert_eq!(code_for(&proxy, t).await, 0x02);
    let t = SocksAddr::domain("nxdomain.test", 80).unwrap();
    assert_eq!(code_for(&proxy, t).await, 0x04);
}

#[tokio::test]
async fn unsupported_command_and_address_type() {
    let proxy = Proxy::start("").await;
    let bind = SocksAddr::Ip("127.0.0.1:80".parse().unwrap());
    let (_, rep, _) = socks5(proxy.addr, Socks5Command::Bind, bind).await;
    assert_eq!(rep, Socks5Reply::CommandNotSupported);
    for (req, code) in [
        (vec![5u8, 9, 0, 1, 127, 0, 0, 1, 0, 80], 0x07u8),
        (vec![5u8, 1, 0, 2, 127, 0, 0, 1, 0, 80], 0x08u8),
    ] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(&[5, 1, 0]).await.unwrap();
        s.write_all(&req).await.unwrap();
        let mut rep = [0u8; 12];
        s.read_exact(&mut rep).await.unwrap();
        assert_eq!(&rep[..4], &[5, 0, 5, code]);
        assert!(closed_within(&mut s, Duration::from_secs(2)).await);
    }
    let echo = tcp_echo("127.0.0.1").await;
    assert_eq!(code_for(&proxy, SocksAddr::Ip(echo)).await, 0x00);
}

#[tokio::test]
async fn no_acceptable_method() {
    let proxy = Proxy::start("").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    let mut sel = [0u8; 2];
    s.read_exact(&mut sel).await.unwrap();
    assert_eq!(sel, [5, 0xFF]);
    assert!(closed_within(&mut s, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn silent_and_truncated_clients_are_dropped() {
    let mut proxy = Proxy::start("negotiation_timeout: 300ms\n").await;
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let mut truncated = TcpStream::connect(proxy.addr).await.unwrap();
    truncated.write_all(&[5, 2, 0]).await.unwrap();
    let mut half_request = TcpStream::connect(proxy.addr).await.unwrap();
    half_request
        .write_all(&[5, 1, 0, 5, 1, 0, 3, 20, b'a'])
        .await
        .unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(closed_within(&mut truncated, Duration::from_secs(3)).await);
    let mut sel = [0u8; 2];
    half_request.read_exact(&mut sel).await.unwrap();
    assert_eq!(sel, [5, 0]);
    assert!(closed_within(&mut half_request, Duration::from_secs(3)).await);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    for _ in 0..3 {
        assert!(proxy.task_ended(Duration::from_secs(3)).await);
    }
    // a truncated greeting whose client closes early ends at once
    let mut eof = TcpStream::connect(proxy.addr).await.unwrap();
    eof.write_all(&[5]).await.unwrap();
    eof.shutdown().await.unwrap();
    assert!(closed_within(&mut eof, Duration::from_secs(1)).await);
    let echo = tcp_echo("127.0.0.1").await;
    assert_eq!(code_for(&proxy, SocksAddr::Ip(echo)).await, 0x00);
}

#[tokio::test]
async fn ingress_filter_refuses_client() {
    let proxy =
        Proxy::start("ingress_network_filter: {default: permit, forbid: 127.0.0.1}\n").await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut buf = [0u8; 2];
    assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
}

#[tokio::test]
async fn idle_relay_is_closed() {
    let mut proxy = Proxy::start("task_idle_check_interval: 2s\ntask_idle_max_count: 1\n").await;
    let echo = tcp_echo("127.0.0.1").await;
    let (mut s, rep, _) = socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(echo)).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    echo_roundtrip(&mut s, b"x").await;
    assert!(closed_within(&mut s, Duration::from_secs(6)).await);
    assert!(proxy.task_ended(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn speed_limit_applies() {
    // 64 KB per 1024 ms slice each way
    let proxy = Proxy::start("tcp_sock_speed_limit: 64K\n").await;
    let echo = tcp_echo("127.0.0.1").await;
    let (s, rep, _) = socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(echo)).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    let (mut r, mut w) = s.into_split();
    let t0 = Instant::now();
    tokio::spawn(async move {
        w.write_all(&[1u8; 150_000]).await.unwrap();
    });
    let mut got = vec![0u8; 150_000];
    r.read_exact(&mut got).await.unwrap();
    // 150 KB at 64 KB per ~1 s slice needs at least two slice rollovers
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
}

/// The relay configurations to run the half-close tests under: no limit (px-io may take its
/// zero-copy path) and a generous limit (the userspace loop).
const RELAY_PATHS: [&str; 2] = ["", "tcp_sock_speed_limit: 100M\n"];

#[tokio::test]
async fn client_half_close_keeps_download_open() {
    for extra in RELAY_PATHS {
        let mut proxy = Proxy::start(extra).await;
        // the upstream answers only after the client's EOF reached it
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.write_all(b"got ").await.unwrap();
            s.write_all(&req).await.unwrap();
        });
        let (mut s, rep, _) =
            socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(target)).await;
        assert_eq!(rep, Socks5Reply::Succeeded);
        s.write_all(b"request").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"got request", "{extra:?}");
        assert!(proxy.task_ended(Duration::from_secs(2)).await, "{extra:?}");
    }
}

#[tokio::test]
async fn upstream_half_close_keeps_upload_open() {
    for extra in RELAY_PATHS {
        let mut proxy = Proxy::start(extra).await;
        // the upstream sends a banner and its EOF first, then reads what the client sends
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"banner").await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            let _ = tx.send(got);
        });
        let (mut s, rep, _) =
            socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(target)).await;
        assert_eq!(rep, Socks5Reply::Succeeded);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"banner", "{extra:?}");
        s.write_all(b"after the upstream's eof").await.unwrap();
        s.shutdown().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"after the upstream's eof", "{extra:?}");
        assert!(proxy.task_ended(Duration::from_secs(2)).await, "{extra:?}");
    }
}

#[tokio::test]
async fn escaper_speed_limit_applies() {
    // the "slow" escaper's connections carry 16 KiB per 256 ms slice each way; the server has none
    let proxy = Proxy::start_with("slow", "").await;
    let echo = tcp_echo("127.0.0.1").await;
    let (s, rep, _) = socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(echo)).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    let (mut r, mut w) = s.into_split();
    let t0 = Instant::now();
    tokio::spawn(async move {
        w.write_all(&[2u8; 48_000]).await.unwrap();
    });
    let mut got = vec![0u8; 48_000];
    tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    // 48 KB at 16 KiB per 256 ms slice needs at least two slice rollovers
    assert!(
        t0.elapsed() >= Duration::from_millis(480),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn stricter_of_server_and_escaper_limit_wins() {
    // the server's 1 MiB per ~1 s is looser than the escaper's 64 KiB/s: the escaper's applies
    let proxy = Proxy::start_with("slow", "tcp_sock_speed_limit: 1M\n").await;
    let echo = tcp_echo("127.0.0.1").await;
    let (s, rep, _) = socks5(proxy.addr, Socks5Command::Connect, SocksAddr::Ip(echo)).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    let (mut r, mut w) = s.into_split();
    let t0 = Instant::now();
    tokio::spawn(async move {
        w.write_all(&[3u8; 48_000]).await.unwrap();
    });
    let mut got = vec![0u8; 48_000];
    tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(480),
        "{:?}",
        t0.elapsed()
    );
}
