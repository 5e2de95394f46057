//! `fail_over` (also `failover`): a virtual resolver that asks a standby
//! resolver when the primary is slow or fails.
//!
//! Per query, as g3proxy documents it:
//!
//! 1. the primary is asked; its success within `fallback_delay` is the answer;
//! 2. if the primary fails within the delay, the standby's result is the answer;
//! 3. past the delay the standby is asked too, and the first success of either
//!    is the answer; when both fail, the error that came last is returned.
//!
//! "No such name" counts as a failure, so the standby gets the chance to know
//! the name. `retry_empty_record` also sends an empty (but successful) answer
//! of the primary to the standby. Failures where both resolvers said "no such
//! name" (or refused) are cached for `negative_ttl` seconds; timeouts and
//! server failures are not cached. The primary and standby are held by their
//! handles, so a reload of either is seen by the next query.
//!
//! Keys: `primary` (required), `standby` (required, not the primary),
//! `fallback_delay` (aliases `delay`, `fallback_timeout`, `timeout`; duration,
//! default 100ms), `negative_ttl` (alias `protective_cache_ttl`; u32 seconds,
//! default 30, 0 disables), `retry_empty_record` (bool, default false),
//! `protective_query_timeout` (duration, default 60s, a hard bound on one
//! query), `graceful_stop_wait` (accepted: with no thread of its own, queries
//! in flight always finish). See `doc/config/resolver/fail_over.md`.
//!
//! ```yaml
//! resolver:
//!   - name: virtual
//!     type: fail_over
//!     primary: alidns
//!     standby: dnspod
//!     fallback_delay: 200ms
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use px_core::{AddrFamily, Handle, ModuleLookup, ResolveError, Resolver};
use px_yaml::{ConfigError, MapReader, Val, values};

/// Most names the negative cache of one `fail_over` resolver holds.
const NEGATIVE_CAPACITY: usize = 8192;

type Outcome = Result<Vec<IpAddr>, ResolveError>;

/// Parsed `fail_over` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailOverConfig {
    /// Name of the primary resolver.
    pub(crate) primary: String,
    /// Name of the standby resolver.
    pub(crate) standby: String,
    /// How long the primary has alone.
    pub(crate) fallback_delay: Duration,
    /// Seconds a failure of both is cached.
    pub(crate) negative_ttl: u32,
    /// Ask the standby when the primary's answer is empty.
    pub(crate) retry_empty_record: bool,
    /// Hard bound on one query through both resolvers.
    pub(crate) protective_query_timeout: Duration,
}

impl FailOverConfig {
    fn read<'a>(map: &mut MapReader<'a>) -> Result<(Self, Val<'a>, Val<'a>), ConfigError> {
        let pv = map.required("primary")?;
        let sv = map.required("standby")?;
        let mut c = FailOverConfig {
            primary: resolver_name(&pv)?,
            standby: resolver_name(&sv)?,
            fallback_delay: Duration::from_millis(100),
            negative_ttl: 30,
            retry_empty_record: false,
            protective_query_timeout: Duration::from_secs(60),
        };
        if c.primary == c.standby {
            return Err(sv.err("the primary and standby resolvers must not be the same one"));
        }
        if let Some(v) = map.get_any(&["fallback_delay", "delay", "fallback_timeout", "timeout"]) {
            c.fallback_delay = values::duration(&v)?;
        }
        if let Some(v) = map.get_any(&["negative_ttl", "protective_cache_ttl"]) {
            c.negative_ttl = v.as_int()?;
        }
        if let Some(v) = map.get("retry_empty_record") {
            c.retry_empty_record = v.as_bool()?;
        }
        if let Some(v) = map.get("protective_query_timeout") {
            c.protective_query_timeout = values::duration(&v)?;
            if c.protective_query_timeout.is_zero() {
                return Err(v.err("protective_query_timeout must be greater than zero"));
            }
        }
        // no thread of its own: queries in flight always finish on the old
        // object, so the wait is satisfied by design; the value is checked only
        if let Some(v) = map.get("graceful_stop_wait") {
            values::duration(&v)?;
        }
        Ok((c, pv, sv))
    }
}

fn resolver_name(v: &Val<'_>) -> Result<String, ConfigError> {
    let s = v.as_text()?;
    if s.trim().is_empty() {
        return Err(v.err("expected a resolver name"));
    }
    Ok(s.trim().to_string())
}

/// The `fail_over` resolver.
pub struct FailOver {
    name: String,
    primary: Arc<Handle<dyn Resolver>>,
    standby: Arc<Handle<dyn Resolver>>,
    config: FailOverConfig,
    negative: Mutex<HashMap<(String, AddrFamily), (ResolveError, Instant)>>,
}

/// Builds a `fail_over` resolver; `primary` and `standby` are looked up by name.
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    let (config, pv, sv) = FailOverConfig::read(&mut map)?;
    map.finish()?;
    let find = |n: &str, v: &Val<'_>| {
        if n == name {
            return Err(v.err("a fail_over resolver cannot use itself"));
        }
        lookup.resolver(n).map_err(|e| v.err(e))
    };
    let primary = find(&config.primary, &pv)?;
    let standby = find(&config.standby, &sv)?;
    Ok(Arc::new(FailOver::new(name, primary, standby, config)))
}

impl FailOver {
    /// A `fail_over` resolver over two resolver handles.
    pub(crate) fn new(
        name: &str,
        primary: Arc<Handle<dyn Resolver>>,
        standby: Arc<Handle<dyn Resolver>>,
        config: FailOverConfig,
    ) -> Self {
        FailOver {
            name: name.to_string(),
            primary,
            standby,
            config,
            negative: Mutex::new(HashMap::new()),
        }
    }

    fn usable(&self, r: &Outcome) -> bool {
        match r {
            Ok(v) => !v.is_empty() || !self.config.retry_empty_record,
            Err(_) => false,
        }
    }

    async fn race(&self, domain: &str, family: AddrFamily) -> Outcome {
        let primary = self.primary.get();
        let standby = self.standby.get();
        let mut p = primary.resolve_family(domain, family);
        match tokio::time::timeout(self.config.fallback_delay, &mut p).await {
            Ok(r) if self.usable(&r) => return r,
            Ok(_) => return standby.resolve_family(domain, family).await,
            Err(_) => {}
        }
        let mut s = standby.resolve_family(domain, family);
        tokio::select! {
            biased;
            r = &mut p => if self.usable(&r) { r } else { s.await },
            r = &mut s => if self.usable(&r) { r } else { p.await },
        }
    }

    fn cached(&self, key: &(String, AddrFamily)) -> Option<ResolveError> {
        let mut neg = self.negative.lock();
        match neg.get(key) {
            Some((e, until)) if *until > Instant::now() => Some(e.clone()),
            Some(_) => {
                neg.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: (String, AddrFamily), error: &ResolveError) {
        if self.config.negative_ttl == 0
            || !matches!(error, ResolveError::NotFound(_) | ResolveError::Refused)
        {
            return;
        }
        let now = Instant::now();
        let mut neg = self.negative.lock();
        if neg.len() >= NEGATIVE_CAPACITY {
            neg.retain(|_, (_, until)| *until > now);
            if neg.len() >= NEGATIVE_CAPACITY {
                neg.clear();
            }
        }
        let until = now + Duration::from_secs(u64::from(self.config.negative_ttl));
        neg.insert(key, (error.clone(), until));
    }
}

#[async_trait]
impl Resolver for FailOver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "fail_over"
    }

    async fn resolve_family(&self, domain: &str, family: AddrFamily) -> Outcome {
        let trimmed = domain.trim();
        let key = (
            trimmed
                .strip_suffix('.')
                .unwrap_or(trimmed)
                .to_ascii_lowercase(),
            family,
        );
        if let Some(e) = self.cached(&key) {
            return Err(e);
        }
        let r = tokio::time::timeout(
            self.config.protective_query_timeout,
            self.race(domain, family),
        )
        .await
        .unwrap_or(Err(ResolveError::Timeout));
        if let Err(e) = &r {
            self.remember(key, e);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use px_core::{Auditor, Escaper, Server, UserGroup};
    use px_yaml::load_str;

    use super::*;

    /// Answers after `delay` with `result`, counting calls.
    struct Fixed {
        delay: Duration,
        result: Outcome,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Resolver for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn kind(&self) -> &'static str {
            "test"
        }
        async fn resolve_family(&self, _d: &str, _f: AddrFamily) -> Outcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.result.clone()
        }
    }

    fn fixed(ms: u64, result: Outcome) -> Arc<Fixed> {
        Arc::new(Fixed {
            delay: Duration::from_millis(ms),
            result,
            calls: AtomicUsize::new(0),
        })
    }

    fn ip(n: u8) -> Outcome {
        Ok(vec![IpAddr::from([10, 0, 0, n])])
    }

    fn fo(p: Arc<Fixed>, s: Arc<Fixed>, retry_empty: bool) -> FailOver {
        let config = FailOverConfig {
            primary: "p".into(),
            standby: "s".into(),
            fallback_delay: Duration::from_millis(100),
            negative_ttl: 30,
            retry_empty_record: retry_empty,
            protective_query_timeout: Duration::from_secs(60),
        };
        FailOver::new(
            "fo",
            Arc::new(Handle::new("p", p as Arc<dyn Resolver>)),
            Arc::new(Handle::new("s", s as Arc<dyn Resolver>)),
            config,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn selection_rules() {
        let timeout = || Err(ResolveError::Timeout);
        let nx = || Err(ResolveError::NotFound("x".into()));
        let cases: Vec<(Arc<Fixed>, Arc<Fixed>, Outcome)> = vec![
            // fast primary success: the standby is never asked
            (fixed(10, ip(1)), fixed(10, ip(2)), ip(1)),
            // fast primary failure: the standby answers
            (fixed(10, timeout()), fixed(10, ip(2)), ip(2)),
            // slow primary, faster standby: the first success wins
            (fixed(500, ip(1)), fixed(10, ip(2)), ip(2)),
            // slow primary beats a slower standby
            (fixed(150, ip(1)), fixed(500, ip(2)), ip(1)),
            // slow primary fails, standby succeeds later
            (fixed(150, timeout()), fixed(500, ip(2)), ip(2)),
            // both fail: the last error
            (fixed(150, nx()), fixed(500, timeout()), timeout()),
            (fixed(10, timeout()), fixed(10, nx()), nx()),
        ];
        for (i, (p, s, want)) in cases.into_iter().enumerate() {
            let r = fo(Arc::clone(&p), Arc::clone(&s), false);
            assert_eq!(
                r.resolve_family("a.test", AddrFamily::Ipv4).await,
                want,
                "case {i}"
            );
        }
        let (p, s) = (fixed(10, ip(1)), fixed(10, ip(2)));
        fo(Arc::clone(&p), Arc::clone(&s), false)
            .resolve_family("a.test", AddrFamily::Ipv4)
            .await
            .unwrap();
        assert_eq!(s.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn empty_answers_and_negative_cache() {
        let r = fo(fixed(10, Ok(vec![])), fixed(10, ip(2)), false);
        assert_eq!(
            r.resolve_family("a.test", AddrFamily::Ipv4).await,
            Ok(vec![])
        );
        let r = fo(fixed(10, Ok(vec![])), fixed(10, ip(2)), true);
        assert_eq!(r.resolve_family("a.test", AddrFamily::Ipv4).await, ip(2));

        let nx = || Err(ResolveError::NotFound("x".into()));
        let (p, s) = (fixed(10, nx()), fixed(10, nx()));
        let r = fo(Arc::clone(&p), Arc::clone(&s), false);
        for _ in 0..3 {
            assert!(r.resolve_family("A.test.", AddrFamily::Ipv4).await.is_err());
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
        let (p, s) = (
            fixed(10, Err(ResolveError::Timeout)),
            fixed(10, Err(ResolveError::Timeout)),
        );
        let r = fo(Arc::clone(&p), Arc::clone(&s), false);
        for _ in 0..2 {
            assert_eq!(
                r.resolve_family("a.test", AddrFamily::Ipv4).await,
                Err(ResolveError::Timeout)
            );
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    }

    struct Lookup(Arc<Handle<dyn Resolver>>);

    impl ModuleLookup for Lookup {
        fn resolver(&self, name: &str) -> Result<Arc<Handle<dyn Resolver>>, String> {
            if name == "a" || name == "b" {
                Ok(Arc::clone(&self.0))
            } else {
                Err(format!("no resolver named `{name}`"))
            }
        }
        fn escaper(&self, _: &str) -> Result<Arc<Handle<dyn Escaper>>, String> {
            Err("none".into())
        }
        fn user_group(&self, _: &str) -> Result<Arc<Handle<dyn UserGroup>>, String> {
            Err("none".into())
        }
        fn auditor(&self, _: &str) -> Result<Arc<Handle<dyn Auditor>>, String> {
            Err("none".into())
        }
        fn server(&self, _: &str) -> Result<Arc<Handle<dyn Server>>, String> {
            Err("none".into())
        }
    }

    fn parse(yaml: &str) -> Result<Arc<dyn Resolver>, ConfigError> {
        let node = load_str(yaml, Path::new("r.yaml")).unwrap();
        let map = Val::root(&node, "resolver[fo]").map().unwrap();
        let h: Arc<Handle<dyn Resolver>> =
            Arc::new(Handle::new("a", fixed(0, ip(1)) as Arc<dyn Resolver>));
        build("fo", map, &Lookup(h))
    }

    #[test]
    fn config_keys_and_errors() {
        let node = load_str(
            "primary: a\nstandby: b\nfallback_delay: 1s\nnegative_ttl: 5\nretry_empty_record: true\n\
             protective_query_timeout: 3s\ngraceful_stop_wait: 1s\n",
            Path::new("r.yaml"),
        )
        .unwrap();
        let mut map = Val::root(&node, "resolver[fo]").map().unwrap();
        let (c, _, _) = FailOverConfig::read(&mut map).unwrap();
        map.finish().unwrap();
        assert_eq!(c.primary, "a");
        assert_eq!(c.standby, "b");
        assert_eq!(c.fallback_delay, Duration::from_secs(1));
        assert_eq!(c.negative_ttl, 5);
        assert!(c.retry_empty_record);
        assert_eq!(c.protective_query_timeout, Duration::from_secs(3));

        let r = parse("primary: a\nstandby: b\ntimeout: 50ms\nprotective_cache_ttl: 0\n").unwrap();
        assert_eq!((r.name(), r.kind()), ("fo", "fail_over"));
        let e = parse("primary: a\nstandby: missing\n").err().unwrap();
        assert_eq!((e.line, e.key_path.as_str()), (2, "resolver[fo].standby"));
        assert!(e.message.contains("missing"), "{e}");
        let e = parse("primary: a\nstandby: a\n").err().unwrap();
        assert_eq!((e.line, e.key_path.as_str()), (2, "resolver[fo].standby"));
        let e = parse("primary: fo\nstandby: b\n").err().unwrap();
        assert_eq!(e.key_path, "resolver[fo].primary");
        let e = parse("primary: a\n").err().unwrap();
        assert!(e.message.contains("standby"), "{e}");
        let e = parse("primary: a\nstandby: b\nfallback_delay: x\n")
            .err()
            .unwrap();
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (3, "resolver[fo].fallback_delay")
        );
        let e = parse("primary: a\nstandby: b\nextra: 1\n").err().unwrap();
        assert_eq!(e.key_path, "resolver[fo].extra");
    }
}
