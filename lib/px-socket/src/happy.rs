//! Happy-eyeballs connect (RFC 8305) with g3proxy's parameters.
//!
//! Both families are resolved concurrently (per the [`QueryStrategy`]). When
//! the other family answers first, attempts wait `resolution_delay` for the
//! preferred one. Addresses are ordered `first_address_family_count` of the
//! preferred family, then alternating; every address is checked against the
//! egress [`NetworkAcl`] (forbidden ones are skipped) and the [`Bind`] choice.
//! A new attempt starts every `connection_attempt_delay`, or at once when the
//! running one fails; at most `1 + max_retry` addresses per family are tried,
//! each for `each_timeout`. The first connected stream wins, the other
//! attempts are dropped. When all fail, the most informative error is kept.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use px_core::value::NetworkAcl;
use px_core::{
    AddrFamily, ConnectError, Host, PickStrategy, QueryStrategy, ResolveError, ResolveStrategy,
    Resolver, UpstreamAddr,
};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::connect::{Bind, BindIp, connect_tcp, more_informative};
use crate::opts::{TcpKeepaliveOpts, TcpMiscOpts};

/// `happy_eyeballs`: the RFC 8305 timers and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HappyEyeballs {
    /// Wait for the preferred family after the other answered first (50ms).
    pub resolution_delay: Duration,
    /// Wait for the second family when nothing else is left to try (2s).
    pub second_resolution_timeout: Duration,
    /// Addresses of the preferred family tried before alternating (1).
    pub first_address_family_count: usize,
    /// Delay between starting attempts (250ms, 100ms..=2s).
    pub connection_attempt_delay: Duration,
}

impl Default for HappyEyeballs {
    fn default() -> Self {
        HappyEyeballs {
            resolution_delay: Duration::from_millis(50),
            second_resolution_timeout: Duration::from_secs(2),
            first_address_family_count: 1,
            connection_attempt_delay: Duration::from_millis(250),
        }
    }
}

/// `tcp_connect`: retries per family and the timeout of each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConnectConfig {
    /// Extra attempts per family after the first (2: three in all).
    pub max_retry: usize,
    /// Timeout of each attempt (30s).
    pub each_timeout: Duration,
}

impl Default for TcpConnectConfig {
    fn default() -> Self {
        TcpConnectConfig {
            max_retry: 2,
            each_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything an egress connect needs besides the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressConfig {
    /// Happy-eyeballs timers.
    pub happy_eyeballs: HappyEyeballs,
    /// Attempts and their timeout.
    pub tcp_connect: TcpConnectConfig,
    /// Socket options for every attempt.
    pub misc: TcpMiscOpts,
    /// Keepalive for every attempt.
    pub keepalive: TcpKeepaliveOpts,
    /// A bound on the whole connect (resolution included); none by default.
    pub overall_timeout: Option<Duration>,
}

/// The candidate addresses, two queues: 0 is the preferred family.
struct Candidates {
    queues: [VecDeque<SocketAddr>; 2],
    tried: [usize; 2],
    max_per_family: usize,
    first_count: usize,
    last: Option<usize>,
    forbidden: Option<IpAddr>,
    unavailable: bool,
}

impl Candidates {
    fn new(cfg: &EgressConfig) -> Self {
        Candidates {
            queues: [VecDeque::new(), VecDeque::new()],
            tried: [0, 0],
            max_per_family: cfg.tcp_connect.max_retry.saturating_add(1),
            first_count: cfg.happy_eyeballs.first_address_family_count,
            last: None,
            forbidden: None,
            unavailable: false,
        }
    }

    fn push(
        &mut self,
        idx: usize,
        mut ips: Vec<IpAddr>,
        port: u16,
        pick: PickStrategy,
        acl: &NetworkAcl,
        bind: &Bind,
    ) {
        if pick == PickStrategy::Random {
            crate::rand::shuffle(&mut ips);
        }
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            if !acl.check(ip).permits() {
                self.forbidden.get_or_insert(ip);
                continue;
            }
            if bind.for_addr(&addr) == BindIp::Unavailable {
                self.unavailable = true;
                continue;
            }
            if !self.queues[idx].contains(&addr) {
                self.queues[idx].push_back(addr);
            }
        }
    }

    fn can(&self, i: usize) -> bool {
        self.tried[i] < self.max_per_family && !self.queues[i].is_empty()
    }

    fn has_next(&self) -> bool {
        self.can(0) || self.can(1)
    }

    fn next(&mut self) -> Option<SocketAddr> {
        let pick = if self.tried[0] < self.first_count && self.can(0) {
            0
        } else {
            let other = match self.last {
                Some(0) => 1,
                Some(_) => 0,
                None => 0,
            };
            if self.can(other) {
                other
            } else if self.can(1 - other) {
                1 - other
            } else {
                return None;
            }
        };
        self.tried[pick] += 1;
        self.last = Some(pick);
        self.queues[pick].pop_front()
    }
}

/// A connected stream and the address it reached (kept so callers need no `getpeername`).
type Attempt = Pin<Box<dyn Future<Output = Result<(TcpStream, SocketAddr), ConnectError>> + Send>>;

fn start(addr: SocketAddr, bind: &Bind, cfg: &EgressConfig) -> Attempt {
    let bind_ip = match bind.for_addr(&addr) {
        BindIp::Ip(ip) => Some(ip),
        BindIp::Any | BindIp::Unavailable => None,
    };
    let timeout = cfg.tcp_connect.each_timeout;
    let misc = cfg.misc;
    let keepalive = cfg.keepalive;
    Box::pin(async move {
        let stream = connect_tcp(addr, bind_ip, timeout, &misc, &keepalive).await?;
        Ok((stream, addr))
    })
}

fn merge_resolve(kept: Option<ResolveError>, new: ResolveError) -> ResolveError {
    fn rank(e: &ResolveError) -> u8 {
        match e {
            ResolveError::Refused => 5,
            ResolveError::InvalidName => 4,
            ResolveError::Timeout => 3,
            ResolveError::ServerFailure(_) => 2,
            ResolveError::NotFound(_) => 1,
        }
    }
    match kept {
        Some(k) if rank(&k) >= rank(&new) => k,
        _ => new,
    }
}

/// Connects to a target (a literal IP or a domain resolved through `resolver`)
/// the happy-eyeballs way; see the module doc. Every address is checked
/// against `acl`; when all are forbidden the error is [`ConnectError::ForbiddenIp`].
/// Returns the stream and the address it connected to.
pub async fn happy_eyeballs_connect(
    resolver: &dyn Resolver,
    target: &UpstreamAddr,
    strategy: ResolveStrategy,
    acl: &NetworkAcl,
    bind: &Bind,
    cfg: &EgressConfig,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let fut = connect_inner(resolver, target, strategy, acl, bind, cfg);
    match cfg.overall_timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .unwrap_or(Err(ConnectError::TimedOut)),
        None => fut.await,
    }
}

async fn connect_inner(
    resolver: &dyn Resolver,
    target: &UpstreamAddr,
    strategy: ResolveStrategy,
    acl: &NetworkAcl,
    bind: &Bind,
    cfg: &EgressConfig,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let domain = match &target.host {
        Host::Ip(ip) => {
            let addr = SocketAddr::new(*ip, target.port);
            if !acl.check(*ip).permits() {
                return Err(ConnectError::ForbiddenIp(*ip));
            }
            if bind.for_addr(&addr) == BindIp::Unavailable {
                return Err(ConnectError::NetworkUnreachable);
            }
            return start(addr, bind, cfg).await;
        }
        Host::Domain(d) => d.as_str(),
    };

    let (pref_family, other_family) = match strategy.query {
        QueryStrategy::Ipv4First | QueryStrategy::Ipv4Only => (AddrFamily::Ipv4, AddrFamily::Ipv6),
        QueryStrategy::Ipv6First | QueryStrategy::Ipv6Only => (AddrFamily::Ipv6, AddrFamily::Ipv4),
    };
    let single = matches!(
        strategy.query,
        QueryStrategy::Ipv4Only | QueryStrategy::Ipv6Only
    );
    let he = cfg.happy_eyeballs;

    let pref_fut = resolver.resolve_family(domain, pref_family);
    let other_fut = resolver.resolve_family(domain, other_family);
    tokio::pin!(pref_fut);
    tokio::pin!(other_fut);
    let mut pref_done = false;
    let mut other_done = single;

    let mut cands = Candidates::new(cfg);
    let mut attempts: FuturesUnordered<Attempt> = FuturesUnordered::new();
    let mut started = 0usize;
    let mut next_start = Instant::now();
    let mut hold_until: Option<Instant> = None;
    let mut second_deadline: Option<Instant> = None;
    let mut resolve_err: Option<ResolveError> = None;
    let mut connect_err: Option<ConnectError> = None;

    loop {
        let now = Instant::now();
        if hold_until.is_some_and(|h| pref_done || now >= h) {
            hold_until = None;
        }
        if hold_until.is_none()
            && (attempts.is_empty() || now >= next_start)
            && let Some(addr) = cands.next()
        {
            attempts.push(start(addr, bind, cfg));
            started += 1;
            next_start = now + he.connection_attempt_delay;
            second_deadline = None;
            continue;
        }
        let idle = attempts.is_empty() && !cands.has_next() && hold_until.is_none();
        if idle && pref_done && other_done {
            if let Some(e) = connect_err {
                return Err(e);
            }
            if let Some(ip) = cands.forbidden {
                return Err(ConnectError::ForbiddenIp(ip));
            }
            if cands.unavailable {
                return Err(ConnectError::NetworkUnreachable);
            }
            return Err(ConnectError::Resolve(
                resolve_err.unwrap_or_else(|| ResolveError::NotFound(domain.to_string())),
            ));
        }
        if idle && started > 0 {
            // one family tried and failed; wait a bounded time for the other
            let d = *second_deadline.get_or_insert(now + he.second_resolution_timeout);
            if now >= d {
                return Err(connect_err.unwrap_or(ConnectError::TimedOut));
            }
        }
        let mut wake: Option<Instant> = hold_until;
        if !attempts.is_empty() && cands.has_next() {
            wake = Some(wake.map_or(next_start, |w| w.min(next_start)));
        }
        if let Some(d) = second_deadline {
            wake = Some(wake.map_or(d, |w| w.min(d)));
        }
        let sleep_until = wake.unwrap_or(now);

        tokio::select! {
            r = attempts.next(), if !attempts.is_empty() => match r {
                Some(Ok(connected)) => return Ok(connected),
                Some(Err(e)) => {
                    log::debug!("connect attempt to {target} failed: {e}");
                    connect_err = Some(more_informative(connect_err.take(), e));
                    next_start = Instant::now();
                }
                None => {}
            },
            r = &mut pref_fut, if !pref_done => {
                pref_done = true;
                match r {
                    Ok(ips) => cands.push(0, ips, target.port, strategy.pick, acl, bind),
                    Err(e) => resolve_err = Some(merge_resolve(resolve_err.take(), e)),
                }
            },
            r = &mut other_fut, if !other_done => {
                other_done = true;
                match r {
                    Ok(ips) => {
                        cands.push(1, ips, target.port, strategy.pick, acl, bind);
                        if !pref_done && started == 0 {
                            hold_until = Some(Instant::now() + he.resolution_delay);
                        }
                    }
                    Err(e) => resolve_err = Some(merge_resolve(resolve_err.take(), e)),
                }
            },
            () = tokio::time::sleep_until(sleep_until), if wake.is_some() => {}
        }
    }
}
