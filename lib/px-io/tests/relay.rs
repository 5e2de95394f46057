//! Relay tests over real loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use px_core::value::SpeedLimit;
use px_core::{AsyncStream, UpstreamConn, UpstreamStream};
use px_io::{RelayEnd, RelayOpts, RelayPath, Side, relay, relay_tcp, relay_upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connected loopback pair: (connecting side, accepted side).
async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), a.unwrap().0)
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

/// Sends `out` and reads everything until EOF, concurrently.
async fn exchange(mut s: TcpStream, out: Vec<u8>) -> Vec<u8> {
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&out).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let recv = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(send, recv);
    got
}

async fn sixteen_mib_both_ways(opts: RelayOpts) -> RelayPath {
    let (client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, upstream_app) = pair().await;
    let n = 16 << 20;
    let (p1, p2) = (pattern(3, n), pattern(7, n));
    let relay_task = tokio::spawn(async move {
        relay_tcp(&mut client_proxy, &mut upstream_proxy, b"", b"", &opts).await
    });
    let (got_at_upstream, got_at_client) = tokio::join!(
        tokio::spawn(exchange(upstream_app, p2.clone())),
        tokio::spawn(exchange(client_app, p1.clone())),
    );
    assert!(
        got_at_upstream.unwrap() == p1,
        "client->upstream bytes differ"
    );
    assert!(
        got_at_client.unwrap() == p2,
        "upstream->client bytes differ"
    );
    let out = relay_task.await.unwrap();
    assert_eq!(out.up_bytes, n as u64);
    assert_eq!(out.down_bytes, n as u64);
    assert!(out.end.is_clean(), "{:?}", out.end);
    out.path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_both_ways_intact_userspace() {
    let opts = RelayOpts {
        allow_splice: false,
        ..Default::default()
    };
    assert_eq!(sixteen_mib_both_ways(opts).await, RelayPath::Userspace);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_both_ways_intact_splice() {
    let path = sixteen_mib_both_ways(RelayOpts::default()).await;
    let expected = if px_io::splice::available() {
        RelayPath::Splice
    } else {
        RelayPath::Userspace
    };
    assert_eq!(path, expected);
}

#[tokio::test]
async fn splice_path_handles_pending_half_close_and_idle() {
    if !px_io::splice::available() {
        return;
    }
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, mut upstream_app) = pair().await;
    let opts = RelayOpts {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let relay_task = tokio::spawn(async move {
        relay_tcp(
            &mut client_proxy,
            &mut upstream_proxy,
            b"GET ",
            b"HTTP",
            &opts,
        )
        .await
    });
    client_app.write_all(b"/ x").await.unwrap();
    client_app.shutdown().await.unwrap();
    let mut got = Vec::new();
    upstream_app.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"GET / x");
    upstream_app.write_all(b"/1.1 200").await.unwrap();
    let mut back = [0u8; 12];
    client_app.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"HTTP/1.1 200");
    // the upstream keeps its side open and silent: the idle timeout ends it
    let out = relay_task.await.unwrap();
    assert_eq!(out.path, RelayPath::Splice);
    assert!(matches!(out.end, RelayEnd::IdleTimeout), "{:?}", out.end);
    assert_eq!((out.up_bytes, out.down_bytes), (7, 12));
    // a speed limit takes the userspace path
    let limited = RelayOpts {
        upstream_limit: SpeedLimit {
            shift_millis: 10,
            upload: Some(1 << 20),
            download: None,
        },
        ..Default::default()
    };
    assert!(!px_io::splice_eligible(&limited));
}

#[tokio::test]
async fn pending_bytes_go_first_and_boxed_streams_work() {
    let (client_app, mut client_proxy) = pair().await;
    let (upstream_proxy, upstream_app) = pair().await;
    let boxed: Box<dyn AsyncStream> = Box::new(upstream_proxy);
    let mut conn = UpstreamConn {
        local_addr: boxed_addr(),
        peer_addr: boxed_addr(),
        stream: UpstreamStream::Other(boxed),
        speed_limit: SpeedLimit::default(),
    };
    let relay_task = tokio::spawn(async move {
        relay_upstream(
            &mut client_proxy,
            &mut conn,
            b"HEAD-",
            b"REPLY-",
            &RelayOpts::default(),
        )
        .await
    });
    let (at_up, at_client) = tokio::join!(
        exchange(upstream_app, b"from-upstream".to_vec()),
        exchange(client_app, b"from-client".to_vec()),
    );
    assert_eq!(at_up, b"HEAD-from-client");
    assert_eq!(at_client, b"REPLY-from-upstream");
    let out = relay_task.await.unwrap();
    assert_eq!(out.up_bytes, 16);
    assert_eq!(out.down_bytes, 19);
}

fn boxed_addr() -> std::net::SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

#[tokio::test]
async fn half_close_keeps_other_direction() {
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, mut upstream_app) = pair().await;
    let relay_task = tokio::spawn(async move {
        relay(
            &mut client_proxy,
            &mut upstream_proxy,
            &RelayOpts::default(),
        )
        .await
    });
    client_app.write_all(b"request").await.unwrap();
    client_app.shutdown().await.unwrap();
    let mut got = Vec::new();
    upstream_app.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"request");
    // the upstream can still answer after the client's half-close
    tokio::time::sleep(Duration::from_millis(50)).await;
    upstream_app.write_all(b"response").await.unwrap();
    upstream_app.shutdown().await.unwrap();
    let mut back = Vec::new();
    client_app.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"response");
    let out = relay_task.await.unwrap();
    assert!(
        matches!(out.end, RelayEnd::Closed(Side::Client)),
        "{:?}",
        out.end
    );
}

#[tokio::test]
async fn idle_timeout_ends_relay() {
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, _upstream_app) = pair().await;
    let opts = RelayOpts {
        idle_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let start = Instant::now();
    let relay_task =
        tokio::spawn(async move { relay(&mut client_proxy, &mut upstream_proxy, &opts).await });
    // some traffic first keeps it alive past one timeout
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client_app.write_all(b"x").await.unwrap();
    }
    let out = relay_task.await.unwrap();
    let elapsed = start.elapsed();
    assert!(matches!(out.end, RelayEnd::IdleTimeout), "{:?}", out.end);
    assert_eq!(out.up_bytes, 3);
    assert!(elapsed >= Duration::from_millis(480), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
}

#[tokio::test]
async fn upstream_reset_is_reported_as_upstream_error() {
    let (_client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, upstream_app) = pair().await;
    let relay_task = tokio::spawn(async move {
        relay(
            &mut client_proxy,
            &mut upstream_proxy,
            &RelayOpts::default(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    upstream_app.set_zero_linger().unwrap();
    drop(upstream_app);
    let out = relay_task.await.unwrap();
    assert_eq!(out.end.failed_side(), Some(Side::Upstream), "{:?}", out.end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speed_limit_within_twenty_percent() {
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, mut upstream_app) = pair().await;
    // 1 MiB/s in 16 ms slices, on the client side; the upstream side is looser
    let per_slice = (1u64 << 20) * 16 / 1000;
    let opts = RelayOpts {
        client_limit: SpeedLimit {
            shift_millis: 4,
            upload: Some(per_slice),
            download: None,
        },
        upstream_limit: SpeedLimit {
            shift_millis: 4,
            upload: Some(per_slice * 4),
            download: None,
        },
        ..Default::default()
    };
    let n = 256 * 1024;
    let data = pattern(1, n);
    let start = Instant::now();
    let relay_task =
        tokio::spawn(async move { relay(&mut client_proxy, &mut upstream_proxy, &opts).await });
    let writer = tokio::spawn(async move {
        client_app.write_all(&data).await.unwrap();
        client_app
    });
    let mut got = vec![0u8; n];
    upstream_app.read_exact(&mut got).await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let expected = n as f64 / (1u64 << 20) as f64;
    assert!(
        (elapsed - expected).abs() <= expected * 0.2,
        "took {elapsed:.3}s, expected {expected:.3}s"
    );
    drop(writer.await.unwrap());
    drop(upstream_app);
    let _ = relay_task.await.unwrap();
}

#[tokio::test]
async fn relay_upstream_picks_the_path_and_reports_resets() {
    for limited in [false, true] {
        let (_client_app, mut client_proxy) = pair().await;
        let (upstream_proxy, upstream_app) = pair().await;
        let addr = upstream_proxy.local_addr().unwrap();
        let mut conn = UpstreamConn {
            local_addr: addr,
            peer_addr: addr,
            stream: UpstreamStream::Tcp(upstream_proxy),
            speed_limit: SpeedLimit {
                shift_millis: 10,
                upload: limited.then_some(1 << 20),
                download: None,
            },
        };
        let relay_task = tokio::spawn(async move {
            relay_upstream(
                &mut client_proxy,
                &mut conn,
                b"",
                b"",
                &RelayOpts::default(),
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        upstream_app.set_zero_linger().unwrap();
        drop(upstream_app);
        let out = relay_task.await.unwrap();
        assert_eq!(out.end.failed_side(), Some(Side::Upstream), "{:?}", out.end);
        let expected = if limited || !px_io::splice::available() {
            RelayPath::Userspace
        } else {
            RelayPath::Splice
        };
        assert_eq!(out.path, expected);
    }
}
