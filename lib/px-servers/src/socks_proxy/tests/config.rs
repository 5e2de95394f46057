//! Config parsing: defaults, every key's forms, and the errors for unknown and unimplemented keys.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use px_yaml::{ConfigError, Val, load_str};

use super::MockLookup;
use crate::socks_proxy::config::{SocketBufferConfig, SocksProxyConfig};

fn parse(yaml: &str) -> Result<SocksProxyConfig, ConfigError> {
    let node = load_str(yaml, Path::new("socks.yaml"))?;
    let mut map = Val::root(&node, "server[socks]").map()?;
    let cfg = SocksProxyConfig::parse("socks", &mut map, &MockLookup)?;
    map.finish()?;
    Ok(cfg)
}

#[test]
fn defaults() {
    let c = parse("escaper: default\n").unwrap();
    assert!(!c.udp_associate);
    assert_eq!(c.negotiation_timeout, Duration::from_secs(4));
    assert_eq!(c.udp_client_initial_timeout, Duration::from_secs(30));
    assert_eq!(c.udp_socket_buffer, SocketBufferConfig::default());
    assert!(c.transmute_udp_echo_ip.is_none());
    assert_eq!(c.tcp_copy_buffer_size, 16 * 1024);
    assert_eq!(c.udp_relay_packet_size, 4 * 1024);
    assert_eq!(c.idle_timeout(), Duration::from_secs(300));
    assert!(c.common.listen.is_none());
    let local: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(c.udp_echo_ip(local), local);
}

#[test]
fn all_keys() {
    let c = parse(
        "listen: 127.0.0.1:1080\n\
         escaper: default\n\
         enable-udp-associate: true\n\
         negotiation_timeout: 500ms\n\
         udp_client_initial_timeout: 1m\n\
         udp_socket_buffer: {recv: 1M, send: 64K}\n\
         transmute_udp_echo_ip: {\"192.168.10.2\": \"192.168.30.2\"}\n\
         udp_sock_speed_limit: 10M/s\n\
         tcp_sock_speed_limit: 10M/s\n\
         tcp_copy_buffer_size: 1K\n\
         udp_relay_packet_size: 64K\n\
         udp_relay_yield_size: 512K\n\
         task_idle_check_interval: 10s\n\
         task_idle_max_count: 3\n",
    )
    .unwrap();
    assert!(c.udp_associate);
    assert_eq!(c.negotiation_timeout, Duration::from_millis(500));
    assert_eq!(c.udp_client_initial_timeout, Duration::from_secs(60));
    assert_eq!(
        c.udp_socket_buffer,
        SocketBufferConfig {
            recv: Some(1_000_000),
            send: Some(64_000)
        }
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(c.udp_echo_ip(ip("192.168.10.2")), ip("192.168.30.2"));
    assert_eq!(c.udp_echo_ip(ip("192.168.10.3")), ip("0.0.0.0"));
    assert_eq!(c.udp_echo_ip(ip("::1")), ip("::"));
    assert!(c.udp_sock_speed_limit.upload_bytes.is_some());
    assert!(!c.common.tcp_sock_speed_limit.is_unlimited());
    assert_eq!(c.tcp_copy_buffer_size, 4 * 1024, "raised to the 4K minimum");
    assert_eq!(c.udp_relay_packet_size, 16 * 1024, "capped at 16K");
    assert_eq!(c.udp_relay_yield_size, 512_000);
    assert_eq!(c.idle_timeout(), Duration::from_secs(30));
}

#[test]
fn value_forms_and_aliases() {
    let c = parse("escaper: default\nuse_udp_associate: true\nudp_socket_buffer: 512K\ntransmute_udp_echo_ip: true\n").unwrap();
    assert!(c.udp_associate);
    assert_eq!(c.udp_socket_buffer.recv, Some(512_000));
    assert_eq!(c.udp_socket_buffer.send, Some(512_000));
    assert_eq!(
        c.udp_echo_ip("127.0.0.1".parse().unwrap()),
        "0.0.0.0".parse::<IpAddr>().unwrap()
    );
    let c =
        parse("escaper: default\ntransmute_udp_echo_ip: false\nudp_socket_buffer: {recv: 4096}\n")
            .unwrap();
    assert!(c.transmute_udp_echo_ip.is_none());
    assert_eq!(c.udp_socket_buffer.send, None);
    let c =
        parse("escaper: default\nauto_reply_local_ip_map: {\"10.0.0.1\": \"1.2.3.4\"}\n").unwrap();
    assert_eq!(
        c.udp_echo_ip("10.0.0.1".parse().unwrap()),
        "1.2.3.4".parse::<IpAddr>().unwrap()
    );
    let c = parse("escaper: default\ntcp_conn_speed_limit: 1M\nrelay_limit: 1M\ntask_idle_check_duration: 5s\n").unwrap();
    assert!(!c.common.tcp_sock_speed_limit.is_unlimited());
    assert!(c.udp_sock_speed_limit.download_bytes.is_some());
    assert_eq!(c.task_idle_check_interval, Duration::from_secs(5));
}

#[test]
fn errors_name_the_key() {
    let e = parse("escaper: default\nuser_group: users\n")
        .err()
        .unwrap();
    assert_eq!(e.key_path, "server[socks].user_group");
    assert!(e.message.contains("no user group users"), "{e}");
    assert_eq!(e.line, 2);
    for key in [
        "udp_bind_ipv4: 10.0.0.1",
        "auditor: a",
        "udp_misc_opts: {}",
        "extra_metrics_tags: {}",
    ] {
        let e = parse(&format!("escaper: default\n{key}\n")).err().unwrap();
        assert!(e.message.contains("not implemented yet"), "{e}");
    }
    let e = parse("escaper: default\nbogus_key: 1\n").err().unwrap();
    assert!(e.message.contains("unknown key"), "{e}");
    let e = parse("escaper: nowhere\n").err().unwrap();
    assert!(e.message.contains("does not exist"), "{e}");
    assert!(parse("listen: 1080\n").is_err(), "escaper is required");
    let e = parse("escaper: default\nudp_socket_buffer: {recv: 1K, size: 2}\n")
        .err()
        .unwrap();
    assert!(e.message.contains("unknown key"), "{e}");
    let e = parse("escaper: default\ntransmute_udp_echo_ip: {\"nope\": 1.2.3.4}\n")
        .err()
        .unwrap();
    assert!(e.message.contains("invalid local IP"), "{e}");
    let e = parse("escaper: default\nnegotiation_timeout: soon\n")
        .err()
        .unwrap();
    assert_eq!(e.key_path, "server[socks].negotiation_timeout");
    let e = parse("escaper: default\ntcp_sock_speed_limit: 1M\nconn_limit: 1M\n")
        .err()
        .unwrap();
    assert!(e.message.contains("deprecated"), "{e}");
}

#[test]
fn build_gives_a_server() {
    let s = super::build_yaml("escaper: default\nlisten: 127.0.0.1:1080\n").unwrap();
    assert_eq!(s.kind(), "socks_proxy");
    assert_eq!(s.name(), "socks");
    assert_eq!(s.listen().map(|l| l.address.port()), Some(1080));
}
