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

/// The path an unlimited TCP pair takes in this build, on this kernel: io_uring
/// (feature `io-uring`), else splice, else the userspace loop.
fn zero_copy_path() -> RelayPath {
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    if px_io::uring::available() {
        return RelayPath::IoUring;
    }
    if px_io::splice::available() {
        RelayPath::Splice
    } else {
        RelayPath::Userspace
    }
}

/// The path a short exchange on an unlimited TCP pair reports: the splice path
/// copies in userspace until a direction moves 64 KiB in one go.
fn short_exchange_path() -> RelayPath {
    match zero_copy_path() {
        RelayPath::Splice => RelayPath::Userspace,
        p => p,
    }
}

/// Pipes created and reused by the splice path on this thread so far.
#[cfg(target_os = "linux")]
fn pipes_taken() -> u64 {
    let s = px_io::splice::thread_stats();
    s.created + s.reused
}

#[cfg(not(target_os = "linux"))]
fn pipes_taken() -> u64 {
    0
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
    assert_eq!(path, zero_copy_path());
}

#[tokio::test]
async fn splice_path_handles_pending_half_close_and_idle() {
    if zero_copy_path() == RelayPath::Userspace {
        return;
    }
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, mut upstream_app) = pair().await;
    let opts = RelayOpts {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let taken = pipes_taken();
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
    assert_eq!(out.path, short_exchange_path());
    assert!(matches!(out.end, RelayEnd::IdleTimeout), "{:?}", out.end);
    assert_eq!((out.up_bytes, out.down_bytes), (7, 12));
    assert_eq!(pipes_taken(), taken, "a short exchange takes no pipe");
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
        let (mut client_app, mut client_proxy) = pair().await;
        let (upstream_proxy, mut upstream_app) = pair().await;
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
        // 1 MiB down (not limited either way), enough for the splice path to take over
        let body = pattern(5, 1 << 20);
        let (sent, got) = tokio::join!(upstream_app.write_all(&body), async {
            let mut got = vec![0u8; body.len()];
            client_app.read_exact(&mut got).await.map(|_| got)
        });
        sent.unwrap();
        assert!(got.unwrap() == body, "bytes differ");
        upstream_app.set_zero_linger().unwrap();
        drop(upstream_app);
        let out = relay_task.await.unwrap();
        assert_eq!(out.end.failed_side(), Some(Side::Upstream), "{:?}", out.end);
        assert_eq!(out.down_bytes, body.len() as u64);
        let expected = if limited {
            RelayPath::Userspace
        } else {
            zero_copy_path()
        };
        assert_eq!(out.path, expected);
    }
}

/// Bulk data switches a direction to splice; the pipes go back to the pool when
/// the tunnel goes idle (an idle tunnel holds none) and when it ends.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn splice_after_bulk_with_pending_half_close_and_idle() {
    if zero_copy_path() != RelayPath::Splice {
        return;
    }
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, mut upstream_app) = pair().await;
    let opts = RelayOpts {
        idle_timeout: Some(Duration::from_millis(400)),
        ..Default::default()
    };
    let before = px_io::splice::thread_stats();
    let relay_task = tokio::spawn(async move {
        relay_tcp(
            &mut client_proxy,
            &mut upstream_proxy,
            b"PUT ",
            b"HTTP",
            &opts,
        )
        .await
    });
    let up = pattern(11, 4 << 20);
    let down = pattern(13, 2 << 20);
    // client -> upstream: 4 MiB, then the client's half-close
    let (sent, got) = tokio::join!(
        async {
            client_app.write_all(&up).await?;
            client_app.shutdown().await
        },
        async {
            let mut got = Vec::new();
            upstream_app.read_to_end(&mut got).await.map(|_| got)
        }
    );
    sent.unwrap();
    let got = got.unwrap();
    assert!(got.len() == up.len() + 4 && got[..4] == *b"PUT " && got[4..] == up[..]);
    // upstream -> client after the half-close: 2 MiB
    let (sent, back) = tokio::join!(upstream_app.write_all(&down), async {
        let mut back = vec![0u8; down.len() + 4];
        client_app.read_exact(&mut back).await.map(|_| back)
    });
    sent.unwrap();
    let back = back.unwrap();
    assert!(
        back[..4] == *b"HTTP" && back[4..] == down[..],
        "bytes differ"
    );
    // the tunnel is idle now (the upstream keeps its side open): no pipe held
    tokio::time::sleep(Duration::from_millis(50)).await;
    let idle = px_io::splice::thread_stats();
    assert!(idle.created + idle.reused > before.created + before.reused);
    assert_eq!(
        idle.pooled - before.pooled,
        (idle.created - before.created) as usize,
        "every pipe made is back in the pool: {idle:?} vs {before:?}"
    );
    let out = relay_task.await.unwrap();
    assert_eq!(out.path, RelayPath::Splice);
    assert!(matches!(out.end, RelayEnd::IdleTimeout), "{:?}", out.end);
    assert_eq!(
        (out.up_bytes, out.down_bytes),
        (up.len() as u64 + 4, down.len() as u64 + 4)
    );
}

/// A relay that ends with bytes still in a pipe closes that pipe instead of
/// pooling it.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_pipe_with_bytes_left_is_not_pooled() {
    if zero_copy_path() != RelayPath::Splice {
        return;
    }
    let (mut client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, mut upstream_app) = pair().await;
    let before = px_io::splice::thread_stats();
    let relay_task = tokio::spawn(async move {
        relay_tcp(
            &mut client_proxy,
            &mut upstream_proxy,
            b"",
            b"",
            &RelayOpts::default(),
        )
        .await
    });
    // the client reads 256 KiB of the download, then stops reading
    let body = pattern(17, 16 << 20);
    let writer = tokio::spawn(async move {
        let _ = upstream_app.write_all(&body).await;
        upstream_app
    });
    let mut first = vec![0u8; 256 << 10];
    client_app.read_exact(&mut first).await.unwrap();
    // let the relay fill the client's socket and block with bytes in its pipe
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = px_io::splice::thread_stats();
    assert!(
        held.created + held.reused > before.created + before.reused,
        "the download went to splice"
    );
    client_app.set_zero_linger().unwrap();
    drop(client_app);
    let out = relay_task.await.unwrap();
    assert_eq!(out.end.failed_side(), Some(Side::Client), "{:?}", out.end);
    let after = px_io::splice::thread_stats();
    assert_eq!(
        after.pooled, held.pooled,
        "the pipe with bytes in it was closed: {after:?}"
    );
    writer.abort();
}
