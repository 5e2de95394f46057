//! The io_uring relay path (feature `io-uring`) over real loopback sockets: bytes intact both
//! ways, pending bytes, half-close, idle timeout, resets, cancellation, pool starvation, and the
//! fallbacks (speed limits, pending bytes that do not fit, io_uring turned off).
#![cfg(all(feature = "io-uring", target_os = "linux"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use px_core::value::SpeedLimit;
use px_core::{UpstreamConn, UpstreamStream};
use px_io::{RelayEnd, RelayOpts, RelayPath, Side, relay_tcp, relay_upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), a.unwrap().0)
}

/// A loopback pair with small socket buffers: (proxy side, app side), so that a
/// relay's send to the app stalls after a few KiB while the app does not read.
async fn small_pair() -> (TcpStream, TcpStream) {
    let ls = tokio::net::TcpSocket::new_v4().unwrap();
    ls.set_send_buffer_size(4096).unwrap();
    ls.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = ls.listen(16).unwrap();
    let addr = l.local_addr().unwrap();
    let cs = tokio::net::TcpSocket::new_v4().unwrap();
    cs.set_recv_buffer_size(4096).unwrap();
    let (c, a) = tokio::join!(cs.connect(addr), l.accept());
    (a.unwrap().0, c.unwrap())
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

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

/// io_uring works on these machines; a kernel without it skips the path tests.
fn uring() -> bool {
    if !px_io::uring::available() {
        eprintln!("io_uring unavailable here: skipping");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_both_ways_intact() {
    if !uring() {
        return;
    }
    let before = px_io::path_totals().io_uring;
    let (client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, upstream_app) = pair().await;
    let n = 16 << 20;
    let (p1, p2) = (pattern(3, n), pattern(7, n));
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
    let (at_up, at_client) = tokio::join!(
        tokio::spawn(exchange(upstream_app, p2.clone())),
        tokio::spawn(exchange(client_app, p1.clone())),
    );
    assert!(at_up.unwrap() == p1, "client->upstream bytes differ");
    assert!(at_client.unwrap() == p2, "upstream->client bytes differ");
    let out = relay_task.await.unwrap();
    assert_eq!(out.path, RelayPath::IoUring);
    assert_eq!((out.up_bytes, out.down_bytes), (n as u64, n as u64));
    assert!(out.end.is_clean(), "{:?}", out.end);
    assert!(px_io::path_totals().io_uring > before);
}

#[tokio::test]
async fn pending_bytes_half_close_and_idle_timeout() {
    if !uring() {
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
    // the other direction goes on after the client's half-close
    tokio::time::sleep(Duration::from_millis(50)).await;
    upstream_app.write_all(b"/1.1 200").await.unwrap();
    let mut back = [0u8; 12];
    client_app.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"HTTP/1.1 200");
    // then the upstream stays open and silent: the idle timeout ends the relay
    let quiet = Instant::now();
    let out = relay_task.await.unwrap();
    let waited = quiet.elapsed();
    assert_eq!(out.path, RelayPath::IoUring);
    assert!(matches!(out.end, RelayEnd::IdleTimeout), "{:?}", out.end);
    assert_eq!((out.up_bytes, out.down_bytes), (7, 12));
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_millis(800), "{waited:?}");
}

#[tokio::test]
async fn both_sides_close_cleanly() {
    if !uring() {
        return;
    }
    let (client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, upstream_app) = pair().await;
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
    let (at_up, at_client) = tokio::join!(
        exchange(upstream_app, b"response".to_vec()),
        exchange(client_app, b"request".to_vec()),
    );
    assert_eq!(at_up, b"request");
    assert_eq!(at_client, b"response");
    let out = relay_task.await.unwrap();
    assert!(matches!(out.end, RelayEnd::Closed(_)), "{:?}", out.end);
}

#[tokio::test]
async fn upstream_reset_is_an_upstream_error_and_limits_take_userspace() {
    if !uring() {
        return;
    }
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
        let expected = if limited {
            RelayPath::Userspace
        } else {
            RelayPath::IoUring
        };
        assert_eq!(out.path, expected);
    }
}

#[tokio::test]
async fn dropping_the_relay_releases_the_sockets() {
    if !uring() {
        return;
    }
    let (mut client_app, client_proxy) = pair().await;
    let (upstream_proxy, mut upstream_app) = pair().await;
    let relay_task = tokio::spawn(async move {
        let (mut c, mut u) = (client_proxy, upstream_proxy);
        relay_tcp(&mut c, &mut u, b"", b"", &RelayOpts::default()).await
    });
    client_app.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    upstream_app.read_exact(&mut got).await.unwrap();
    // the task (and the sockets it owns) goes away mid-relay: the ring lets go of
    // its duplicates too, so both peers see the connection end
    relay_task.abort();
    assert!(relay_task.await.unwrap_err().is_cancelled());
    for app in [&mut client_app, &mut upstream_app] {
        let mut rest = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(3), app.read_to_end(&mut rest)).await;
        assert!(matches!(r, Ok(Ok(0))), "{r:?}");
    }
}

// one thread, so one ring holds all the relays
#[tokio::test(flavor = "current_thread")]
async fn more_stalled_directions_than_buffers_all_finish() {
    if !uring() {
        return;
    }
    // every relay's upload stalls on an upstream that does not read yet, each
    // holding a pool buffer: with more relays than the pool's 64 buffers, the
    // last ones wait for a buffer and go on once the upstreams read
    const RELAYS: usize = 280;
    const N: usize = 1 << 20;
    let mut relays = Vec::new();
    let mut upstream_apps = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..RELAYS {
        let (mut client_app, mut client_proxy) = pair().await;
        let (mut upstream_proxy, upstream_app) = small_pair().await;
        relays.push(tokio::spawn(async move {
            relay_tcp(
                &mut client_proxy,
                &mut upstream_proxy,
                b"",
                b"",
                &RelayOpts::default(),
            )
            .await
        }));
        writers.push(tokio::spawn(async move {
            client_app.write_all(&pattern(5, N)).await.unwrap();
            client_app.shutdown().await.unwrap();
            let mut back = Vec::new();
            client_app.read_to_end(&mut back).await.unwrap();
            back
        }));
        upstream_apps.push(upstream_app);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let readers: Vec<_> = upstream_apps
        .into_iter()
        .map(|mut up| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                up.read_to_end(&mut got).await.unwrap();
                up.write_all(b"done").await.unwrap();
                up.shutdown().await.unwrap();
                got
            })
        })
        .collect();
    let expected = pattern(5, N);
    for r in readers {
        let got = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .unwrap()
            .unwrap();
        assert!(got == expected, "bytes differ");
    }
    for w in writers {
        assert_eq!(w.await.unwrap(), b"done");
    }
    for r in relays {
        let out = r.await.unwrap();
        assert_eq!(out.path, RelayPath::IoUring);
        assert_eq!((out.up_bytes, out.down_bytes), (N as u64, 4));
        assert!(out.end.is_clean(), "{:?}", out.end);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_bytes_that_do_not_fit_fall_back_per_connection() {
    if !uring() {
        return;
    }
    let (client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, upstream_app) = pair().await;
    // more pending bytes than the socket buffers take at once: this connection
    // goes to the splice/userspace path, which sends the rest
    let pending = pattern(9, 16 << 20);
    let expect = [pending.as_slice(), b"tail"].concat();
    let relay_task = tokio::spawn(async move {
        relay_tcp(
            &mut client_proxy,
            &mut upstream_proxy,
            &pending,
            b"",
            &RelayOpts::default(),
        )
        .await
    });
    let (at_up, at_client) = tokio::join!(
        exchange(upstream_app, b"reply".to_vec()),
        exchange(client_app, b"tail".to_vec()),
    );
    assert!(at_up == expect, "bytes differ");
    assert_eq!(at_client, b"reply");
    let out = relay_task.await.unwrap();
    assert_ne!(out.path, RelayPath::IoUring);
    assert_eq!(out.up_bytes, expect.len() as u64);
    assert!(out.end.is_clean(), "{:?}", out.end);
}

/// Run by `disabled_by_env_falls_back` in a child process with `PX_IO_NO_URING=1`.
#[tokio::test]
async fn child_with_uring_disabled() {
    if std::env::var_os("PX_IO_NO_URING").is_none() {
        return;
    }
    assert!(!px_io::uring::available());
    let (client_app, mut client_proxy) = pair().await;
    let (mut upstream_proxy, upstream_app) = pair().await;
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
    let (at_up, _) = tokio::join!(
        exchange(upstream_app, Vec::new()),
        exchange(client_app, b"x".to_vec()),
    );
    assert_eq!(at_up, b"x");
    let out = relay_task.await.unwrap();
    // one byte: the splice path copies it in userspace (it splices bulk data only)
    assert_eq!(out.path, RelayPath::Userspace);
    println!("CHILD-FALLBACK-OK");
}

#[test]
fn disabled_by_env_falls_back() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_with_uring_disabled", "--nocapture"])
        .env("PX_IO_NO_URING", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-FALLBACK-OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
