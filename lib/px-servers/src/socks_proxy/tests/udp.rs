//! UDP ASSOCIATE and UDP connect: relaying, locking, lifetime, echo IP mapping.

use std::net::SocketAddr;
use std::time::Duration;

use px_socks::{
    Socks5Command, Socks5Reply, SocksAddr, UDP_HEADER_MAX_LEN, decode_udp_header, encode_udp_header,
};
use tokio::net::{TcpStream, UdpSocket};

use super::{Proxy, closed_within, socks5, udp_echo};

const ASSOCIATE: &str = "enable_udp_associate: true\n";

fn dgram(target: &SocksAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; UDP_HEADER_MAX_LEN + payload.len()];
    let n = encode_udp_header(target, &mut out).unwrap();
    out.truncate(n);
    out.extend_from_slice(payload);
    out
}

async fn recv_dgram(sock: &UdpSocket, within: Duration) -> Option<(SocksAddr, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(within, sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let (addr, h) = decode_udp_header(&buf[..n]).unwrap();
    Some((addr, buf[h..n].to_vec()))
}

/// Opens an association; returns the control stream and the relay address to send to.
async fn associate(proxy: &Proxy, hint: SocksAddr) -> (TcpStream, SocketAddr) {
    let (s, rep, bound) = socks5(proxy.addr, Socks5Command::UdpAssociate, hint).await;
    assert_eq!(rep, Socks5Reply::Succeeded);
    let SocksAddr::Ip(relay) = bound else {
        panic!("bound address is not an IP")
    };
    (s, relay)
}

async fn client_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

const WAIT: Duration = Duration::from_secs(3);
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn associate_relays_both_ways_with_zero_hint() {
    let mut proxy = Proxy::start(ASSOCIATE).await;
    let echo = udp_echo().await;
    let client = client_socket().await;
    // PySocks sends 0.0.0.0 with its real port
    let hint = SocksAddr::Ip(SocketAddr::new(
        [0, 0, 0, 0].into(),
        client.local_addr().unwrap().port(),
    ));
    let (ctl, relay) = associate(&proxy, hint).await;
    assert_eq!(relay.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
    for i in 0..3u8 {
        let payload = [i; 100];
        client
            .send_to(&dgram(&SocksAddr::Ip(echo), &payload), relay)
            .await
            .unwrap();
        let (from, got) = recv_dgram(&client, WAIT).await.expect("echo reply");
        assert_eq!(from, SocksAddr::Ip(echo));
        assert_eq!(got, payload);
    }
    // a domain target works too
    let target = SocksAddr::domain("localhost", echo.port()).unwrap();
    client
        .send_to(&dgram(&target, b"by name"), relay)
        .await
        .unwrap();
    let (from, got) = recv_dgram(&client, WAIT).await.expect("echo reply");
    assert_eq!(from, SocksAddr::Ip(echo));
    assert_eq!(got, b"by name");
    // closing the control connection ends the association
    drop(ctl);
    assert!(proxy.task_ended(WAIT).await);
}

#[tokio::test]
async fn associate_locks_to_first_client_address() {
    let proxy = Proxy::start(ASSOCIATE).await;
    let echo = udp_echo().await;
    let (_ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    let first = client_socket().await;
    let second = client_socket().await;
    first
        .send_to(&dgram(&SocksAddr::Ip(echo), b"one"), relay)
        .await
        .unwrap();
    assert_eq!(recv_dgram(&first, WAIT).await.unwrap().1, b"one");
    second
        .send_to(&dgram(&SocksAddr::Ip(echo), b"two"), relay)
        .await
        .unwrap();
    assert!(recv_dgram(&second, SHORT).await.is_none());
    assert!(recv_dgram(&first, SHORT).await.is_none());
    first
        .send_to(&dgram(&SocksAddr::Ip(echo), b"three"), relay)
        .await
        .unwrap();
    assert_eq!(recv_dgram(&first, WAIT).await.unwrap().1, b"three");
}

#[tokio::test]
async fn associate_hint_port_is_enforced() {
    let proxy = Proxy::start(ASSOCIATE).await;
    let echo = udp_echo().await;
    let good = client_socket().await;
    let other = client_socket().await;
    let hint = SocksAddr::Ip(good.local_addr().unwrap());
    let (_ctl, relay) = associate(&proxy, hint).await;
    other
        .send_to(&dgram(&SocksAddr::Ip(echo), b"x"), relay)
        .await
        .unwrap();
    assert!(recv_dgram(&other, SHORT).await.is_none());
    good.send_to(&dgram(&SocksAddr::Ip(echo), b"y"), relay)
        .await
        .unwrap();
    assert_eq!(recv_dgram(&good, WAIT).await.unwrap().1, b"y");
}

#[tokio::test]
async fn bad_datagrams_are_dropped() {
    let proxy = Proxy::start(&format!(
        "{ASSOCIATE}dst_port_filter: {{default: permit, forbid: 9}}\n"
    ))
    .await;
    let echo = udp_echo().await;
    let client = client_socket().await;
    let (_ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    let mut frag = dgram(&SocksAddr::Ip(echo), b"frag");
    frag[2] = 1;
    client.send_to(&frag, relay).await.unwrap();
    client.send_to(&[0, 0, 0, 9, 1, 2, 3], relay).await.unwrap();
    client.send_to(&[0, 0], relay).await.unwrap();
    let denied = SocksAddr::Ip("127.0.0.1:9".parse().unwrap());
    client
        .send_to(&dgram(&denied, b"denied"), relay)
        .await
        .unwrap();
    client
        .send_to(&dgram(&SocksAddr::Ip(echo), &vec![1u8; 5000]), relay)
        .await
        .unwrap();
    client
        .send_to(&dgram(&SocksAddr::Ip(echo), b"ok"), relay)
        .await
        .unwrap();
    let (_, got) = recv_dgram(&client, WAIT).await.unwrap();
    assert_eq!(got, b"ok");
    assert!(recv_dgram(&client, SHORT).await.is_none());
}

#[tokio::test]
async fn transmute_echo_ip() {
    let proxy = Proxy::start(&format!(
        "{ASSOCIATE}transmute_udp_echo_ip: {{\"127.0.0.1\": \"127.0.0.9\"}}\n"
    ))
    .await;
    let (_ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    assert_eq!(relay.ip(), std::net::IpAddr::from([127, 0, 0, 9]));
    let proxy = Proxy::start(&format!("{ASSOCIATE}transmute_udp_echo_ip: true\n")).await;
    let (_ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    assert!(relay.ip().is_unspecified());
    assert_ne!(relay.port(), 0);
}

#[tokio::test]
async fn udp_connect_fixes_the_first_target() {
    let mut proxy = Proxy::start("").await;
    let a = udp_echo().await;
    let b = udp_echo().await;
    let client = client_socket().await;
    let (ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    let a_by_name = SocksAddr::domain("localhost", a.port()).unwrap();
    client
        .send_to(&dgram(&a_by_name, b"first"), relay)
        .await
        .unwrap();
    let (from, got) = recv_dgram(&client, WAIT).await.unwrap();
    assert_eq!(
        from, a_by_name,
        "replies carry the target as the client wrote it"
    );
    assert_eq!(got, b"first");
    client
        .send_to(&dgram(&SocksAddr::Ip(b), b"elsewhere"), relay)
        .await
        .unwrap();
    assert!(recv_dgram(&client, SHORT).await.is_none());
    client
        .send_to(&dgram(&a_by_name, b"again"), relay)
        .await
        .unwrap();
    assert_eq!(recv_dgram(&client, WAIT).await.unwrap().1, b"again");
    drop(ctl);
    assert!(proxy.task_ended(WAIT).await);
}

#[tokio::test]
async fn udp_connect_denied_first_target_ends_association() {
    let proxy = Proxy::start("dst_port_filter: {default: permit, forbid: 9}\n").await;
    let client = client_socket().await;
    let (mut ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    let denied = SocksAddr::Ip("127.0.0.1:9".parse().unwrap());
    client.send_to(&dgram(&denied, b"x"), relay).await.unwrap();
    assert!(closed_within(&mut ctl, WAIT).await);
}

#[tokio::test]
async fn initial_timeout_ends_association() {
    let proxy = Proxy::start(&format!("{ASSOCIATE}udp_client_initial_timeout: 300ms\n")).await;
    let (mut ctl, _relay) = associate(&proxy, SocksAddr::unspecified()).await;
    assert!(closed_within(&mut ctl, WAIT).await);
}

#[tokio::test]
async fn idle_association_ends() {
    let proxy = Proxy::start(&format!(
        "{ASSOCIATE}task_idle_check_interval: 2s\ntask_idle_max_count: 1\n"
    ))
    .await;
    let echo = udp_echo().await;
    let client = client_socket().await;
    let (mut ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    client
        .send_to(&dgram(&SocksAddr::Ip(echo), b"hi"), relay)
        .await
        .unwrap();
    assert!(recv_dgram(&client, WAIT).await.is_some());
    assert!(closed_within(&mut ctl, Duration::from_secs(6)).await);
}

#[tokio::test]
async fn escaper_without_udp_gets_command_not_supported() {
    let server = super::build_yaml("escaper: tcponly\nenable_udp_associate: true\n").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, peer)) = listener.accept().await {
            let local = s.local_addr().unwrap();
            server
                .serve_tcp(s, px_core::ClientInfo::direct(peer, local))
                .await;
        }
    });
    let (_, rep, _) = socks5(addr, Socks5Command::UdpAssociate, SocksAddr::unspecified()).await;
    assert_eq!(rep, Socks5Reply::CommandNotSupported);
}

#[tokio::test]
async fn udp_speed_limit_applies() {
    // 2 datagrams per 256 ms slice from the client
    let proxy = Proxy::start(&format!(
        "{ASSOCIATE}udp_sock_speed_limit: {{shift_millis: 8, upload_packets: 2}}\n"
    ))
    .await;
    let echo = udp_echo().await;
    let client = client_socket().await;
    let (_ctl, relay) = associate(&proxy, SocksAddr::unspecified()).await;
    let t0 = std::time::Instant::now();
    for i in 0..6u8 {
        client
            .send_to(&dgram(&SocksAddr::Ip(echo), &[i; 10]), relay)
            .await
            .unwrap();
    }
    for i in 0..6u8 {
        let (_, got) = recv_dgram(&client, WAIT).await.expect("echo reply");
        assert_eq!(got, [i; 10]);
    }
    // 6 datagrams at 2 per slice need at least two slice rollovers; none is dropped
    assert!(
        t0.elapsed() >= Duration::from_millis(480),
        "{:?}",
        t0.elapsed()
    );
}
