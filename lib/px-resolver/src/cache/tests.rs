//! Cache behaviour against a scripted driver: sharing, TTLs, negative and
//! transient results, stale answers, eviction and the protective timeout.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Answers `ok.test` with 10.0.0.N (N = query count), `nx.test` with NotFound,
/// `fail.test` with a server failure, `slow.test` after 10 s; every query
/// takes `delay`.
struct Script {
    queries: Arc<AtomicUsize>,
    delay: Duration,
    ttl: u32,
}

impl Driver for Script {
    fn query(&self, domain: &str, _family: AddrFamily) -> DriverFuture {
        let n = self.queries.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = self.delay;
        let ttl = self.ttl;
        let domain = domain.to_string();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            match domain.as_str() {
                "nx.test" => Err(Failure {
                    error: ResolveError::NotFound(domain),
                    ttl: Some(1),
                    server_refused: false,
                }),
                "fail.test" => Err(ResolveError::ServerFailure("boom".into()).into()),
                "slow.test" => {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok(Answer { addrs: vec![], ttl })
                }
                "empty.test" => Ok(Answer { addrs: vec![], ttl }),
                _ => Ok(Answer {
                    addrs: vec![IpAddr::from([10, 0, 0, n as u8])],
                    ttl,
                }),
            }
        })
    }
}

fn resolver(config: CacheConfig, delay: Duration, ttl: u32) -> (CachedResolver, Arc<AtomicUsize>) {
    let queries = Arc::new(AtomicUsize::new(0));
    let q = Arc::clone(&queries);
    let r = CachedResolver::start("t", "test", config, move || {
        Ok(Script {
            queries: q,
            delay,
            ttl,
        })
    })
    .unwrap();
    (r, queries)
}

fn v4(n: u8) -> Vec<IpAddr> {
    vec![IpAddr::from([10, 0, 0, n])]
}

#[tokio::test]
async fn concurrent_callers_share_one_query() {
    let (r, queries) = resolver(CacheConfig::default(), Duration::from_millis(200), 300);
    let r = Arc::new(r);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let r = Arc::clone(&r);
        tasks.push(tokio::spawn(async move {
            r.resolve_family("OK.test.", AddrFamily::Ipv4).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), v4(1));
    }
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    // a cached answer needs no query; the other family is its own entry
    assert_eq!(
        r.resolve_family("ok.test", AddrFamily::Ipv4).await.unwrap(),
        v4(1)
    );
    assert_eq!(
        r.resolve_family("ok.test", AddrFamily::Ipv6).await.unwrap(),
        v4(2)
    );
    assert_eq!(queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn negative_answers_are_cached_failures_are_not() {
    let (r, queries) = resolver(CacheConfig::default(), Duration::ZERO, 300);
    for _ in 0..3 {
        assert!(matches!(
            r.resolve_family("nx.test", AddrFamily::Ipv4).await,
            Err(ResolveError::NotFound(_))
        ));
        assert!(matches!(
            r.resolve_family("empty.test", AddrFamily::Ipv4).await,
            Err(ResolveError::NotFound(_))
        ));
    }
    assert_eq!(queries.load(Ordering::SeqCst), 2);
    for _ in 0..3 {
        assert!(matches!(
            r.resolve_family("fail.test", AddrFamily::Ipv4).await,
            Err(ResolveError::ServerFailure(_))
        ));
    }
    assert_eq!(queries.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn negative_ttl_zero_disables_negative_cache() {
    let config = CacheConfig {
        negative_min_ttl: 0,
        ..CacheConfig::default()
    };
    let (r, queries) = resolver(config, Duration::ZERO, 300);
    for _ in 0..2 {
        let _ = r.resolve_family("empty.test", AddrFamily::Ipv4).await;
    }
    assert_eq!(queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn expired_answer_is_served_while_refreshing() {
    // min 0: a TTL-0 record expires at once and vanishes after 1 s
    let config = CacheConfig {
        positive_min_ttl: 0,
        ..CacheConfig::default()
    };
    let (r, queries) = resolver(config, Duration::from_millis(50), 0);
    assert_eq!(
        r.resolve_family("ok.test", AddrFamily::Ipv4).await.unwrap(),
        v4(1)
    );
    // expired: the old answer comes back at once, a refresh starts
    assert_eq!(
        r.resolve_family("ok.test", AddrFamily::Ipv4).await.unwrap(),
        v4(1)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.resolve_family("ok.test", AddrFamily::Ipv4).await.unwrap(),
        v4(2)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // vanished: the caller waits for a fresh answer
    assert_eq!(
        r.resolve_family("ok.test", AddrFamily::Ipv4).await.unwrap(),
        v4(4)
    );
    assert!(queries.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn protective_timeout_bounds_a_query() {
    let config = CacheConfig {
        protective_query_timeout: Duration::from_millis(300),
        ..CacheConfig::default()
    };
    let (r, _) = resolver(config, Duration::ZERO, 300);
    let started = Instant::now();
    assert_eq!(
        r.resolve_family("slow.test", AddrFamily::Ipv4).await,
        Err(ResolveError::Timeout)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn ip_literals_and_bad_names_need_no_query() {
    let (r, queries) = resolver(CacheConfig::default(), Duration::ZERO, 300);
    assert_eq!(
        r.resolve_family("192.0.2.1", AddrFamily::Ipv4)
            .await
            .unwrap(),
        vec![IpAddr::from([192, 0, 2, 1])]
    );
    assert_eq!(
        r.resolve_family("bad name", AddrFamily::Ipv4).await,
        Err(ResolveError::InvalidName)
    );
    assert_eq!(queries.load(Ordering::SeqCst), 0);
    assert_eq!((r.name(), r.kind()), ("t", "test"));
}

#[tokio::test]
async fn cache_stays_bounded() {
    let config = CacheConfig {
        capacity: 64,
        ..CacheConfig::default()
    };
    let (r, _) = resolver(config, Duration::ZERO, 300);
    for i in 0..500 {
        r.resolve_family(&format!("h{i}.test"), AddrFamily::Ipv4)
            .await
            .unwrap();
        assert!(r.shared.slots.lock().len() <= 64);
    }
}

#[tokio::test]
async fn dropped_resolver_finishes_queries_in_flight() {
    let (r, _) = resolver(CacheConfig::default(), Duration::from_millis(200), 300);
    let r = Arc::new(r);
    let r2 = Arc::clone(&r);
    let task = tokio::spawn(async move { r2.resolve_family("ok.test", AddrFamily::Ipv4).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(r);
    assert_eq!(task.await.unwrap().unwrap(), v4(1));
}
