//! Property tests: no decoder panics on arbitrary input, and every encoder round-trips.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use futures::FutureExt;
use proptest::prelude::*;
use px_socks::*;

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    // Slices are always ready, so every decoder finishes on the first poll.
    f.now_or_never().unwrap()
}

fn arb_addr() -> impl Strategy<Value = SocksAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(o, p)| SocksAddr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), p))),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(o, p)| SocksAddr::Ip(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), p))),
        ("[a-z0-9.-]{1,255}", any::<u16>()).prop_map(|(d, p)| SocksAddr::Domain(d, p)),
    ]
}

fn arb_domain_addr() -> impl Strategy<Value = SocksAddr> {
    ("[a-z0-9.-]{1,255}", any::<u16>()).prop_map(|(d, p)| SocksAddr::Domain(d, p))
}

proptest! {
    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SocksAddr::decode(&data);
        let _ = decode_udp_header(&data);
        let _ = run(read_version(&mut data.as_slice()));
        let _ = run(Socks4Request::read(&mut data.as_slice()));
        let _ = run(Socks5Greeting::read(&mut data.as_slice()));
        let _ = run(UserPassRequest::read(&mut data.as_slice()));
        let _ = run(Socks5Request::read(&mut data.as_slice()));
        let _ = run(Socks5Reply::read(&mut data.as_slice()));
        let _ = run(SocksAddr::read(&mut data.as_slice()));
    }

    #[test]
    fn version_prefixed_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600),
                                    v in prop_oneof![Just(4u8), Just(5u8)]) {
        let mut data = vec![v];
        data.extend_from_slice(&body);
        let _ = run(Socks4Request::read(&mut data.as_slice()));
        let _ = run(Socks5Greeting::read(&mut data.as_slice()));
        let mut d5 = vec![5u8, body.first().copied().unwrap_or(1), 0];
        d5.extend_from_slice(&body);
        let _ = run(Socks5Request::read(&mut d5.as_slice()));
        let mut udp = vec![0u8, 0, 0];
        udp.extend_from_slice(&body);
        let _ = decode_udp_header(&udp);
    }

    #[test]
    fn addr_round_trip(a in arb_addr()) {
        let mut v = Vec::new();
        a.write_to(&mut v).unwrap();
        prop_assert_eq!(v.len(), a.encoded_len());
        prop_assert_eq!(SocksAddr::decode(&v).unwrap(), (a.clone(), v.len()));
        prop_assert_eq!(run(SocksAddr::read(&mut v.as_slice())).unwrap(), a);
    }

    #[test]
    fn udp_round_trip(a in arb_addr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = vec![0u8; UDP_HEADER_MAX_LEN + payload.len()];
        buf[UDP_HEADER_MAX_LEN..].copy_from_slice(&payload);
        let start = encode_udp_header_before(&a, &mut buf, UDP_HEADER_MAX_LEN).unwrap();
        let (got, n) = decode_udp_header(&buf[start..]).unwrap();
        prop_assert_eq!(got, a);
        prop_assert_eq!(&buf[start + n..], payload.as_slice());
    }

    #[test]
    fn socks5_request_round_trip(a in arb_addr(), cmd in 1u8..=3) {
        let r = Socks5Request { command: Socks5Command::from_u8(cmd).unwrap(), target: a };
        let mut v = Vec::new();
        r.write_to(&mut v).unwrap();
        let mut s = v.as_slice();
        prop_assert_eq!(run(Socks5Request::read(&mut s)).unwrap(), r);
        prop_assert!(s.is_empty());
    }

    #[test]
    fn socks5_reply_round_trip(a in arb_addr(), code in 0u8..=8) {
        let rep = Socks5Reply::from_u8(code).unwrap();
        let mut v = Vec::new();
        rep.write_to(&a, &mut v).unwrap();
        prop_assert_eq!(run(Socks5Reply::read(&mut v.as_slice())).unwrap(), (rep, a));
    }

    #[test]
    fn greeting_round_trip(methods in proptest::collection::vec(any::<u8>(), 0..=255)) {
        let g = Socks5Greeting { methods };
        let mut v = Vec::new();
        g.write_to(&mut v).unwrap();
        prop_assert_eq!(run(Socks5Greeting::read(&mut v.as_slice())).unwrap(), g);
    }

    #[test]
    fn user_pass_round_trip(u in proptest::collection::vec(any::<u8>(), 0..=255),
                            p in proptest::collection::vec(any::<u8>(), 0..=255)) {
        let r = UserPassRequest { username: u, password: p };
        let mut v = Vec::new();
        r.write_to(&mut v).unwrap();
        prop_assert_eq!(run(UserPassRequest::read(&mut v.as_slice())).unwrap(), r);
    }

    #[test]
    fn socks4_round_trip(ip in any::<[u8; 4]>(), port in any::<u16>(),
                         user in proptest::collection::vec(1u8..=255, 0..=255),
                         dom in arb_domain_addr(), use_domain in any::<bool>()) {
        let target = if use_domain {
            dom
        } else {
            let ip = Ipv4Addr::from(ip);
            prop_assume!(!(ip.octets()[..3] == [0, 0, 0] && ip.octets()[3] != 0));
            SocksAddr::Ip(SocketAddr::new(IpAddr::V4(ip), port))
        };
        let r = Socks4Request { target, user_id: user };
        let mut v = Vec::new();
        r.write_to(&mut v).unwrap();
        let mut s = v.as_slice();
        prop_assert_eq!(run(Socks4Request::read(&mut s)).unwrap(), r);
        prop_assert!(s.is_empty());
    }

    #[test]
    fn socks4_reply_round_trip(ip in any::<[u8; 4]>(), port in any::<u16>(), code in 0x5Au8..=0x5D) {
        let bound = std::net::SocketAddrV4::new(Ipv4Addr::from(ip), port);
        let rep = Socks4Reply::from_u8(code).unwrap();
        prop_assert_eq!(Socks4Reply::decode(rep.encode(bound)).unwrap(), (rep, bound));
    }
}
