//! `hickory`: a resolver on the hickory DNS library, plain or encrypted.
//!
//! Without `encryption` each server is asked over UDP, with TCP when an
//! answer is truncated. With `encryption` every server is asked over DNS over
//! TLS, HTTPS (HTTP/2) or QUIC, verified against `tls_name` (the server IP
//! when unset) with rustls on the ring provider.
//!
//! A query goes to the servers in order, as g3proxy does: the first server
//! at once, each next one `retry_interval` later (or as soon as the previous
//! one failed), every server bounded by `each_timeout` over its `each_tries`
//! attempts of `request_timeout` each. The first answer with addresses wins;
//! "no such name" from a server is final. So a query against dead servers
//! ends within about `(servers - 1) * retry_interval + each_timeout`, and
//! never later than `protective_query_timeout`. Answers are cached by the
//! common cache ([`crate::cache`]); hickory's own cache is off.
//!
//! Keys: `server` (required), `server_port`, `encryption` (alias `encrypt`)
//! with `protocol`, `tls_name`, `tls_client`, top-level `tls_name`,
//! `connect_timeout`, `request_timeout`, `each_tries` (alias
//! `retry_attempts`), `each_timeout`, `retry_interval`, `bind_ip`, and the
//! cache keys `graceful_stop_wait`, `protective_query_timeout`,
//! `positive_min_ttl`, `positive_max_ttl`, `negative_min_ttl`,
//! `negative_max_ttl`. Known to
//! g3proxy but not implemented: `bind_interface`, `tcp_misc_opts`,
//! `udp_misc_opts`, and the `dns-over-http/3` protocol. See
//! `doc/config/resolver/hickory.md`.
//!
//! ```yaml
//! resolver:
//!   - name: default
//!     type: hickory
//!     server: 1.1.1.1
//!     encryption: dns-over-https   # also dns-over-tls, dns-over-quic
//! ```

mod config;
mod provider;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use px_core::{AddrFamily, ModuleLookup, ResolveError, Resolver};
use px_yaml::{ConfigError, MapReader};
use tokio::task::JoinSet;

use crate::cache::{Answer, CachedResolver, Driver, DriverFuture, Failure};
pub(crate) use config::{HickoryConfig, Protocol};
use provider::Provider;

type Hickory = hickory_resolver::Resolver<Provider>;

/// Builds a `hickory` resolver from its config map.
pub fn build(
    name: &str,
    mut map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    let config = HickoryConfig::read(&mut map)?;
    let at = map.val().clone();
    map.finish()?;
    let cache = config.cache.clone();
    let stats = crate::stats::resolver_stats(lookup, name);
    let resolver = CachedResolver::start_counted(name, "hickory", cache, stats, move || {
        HickoryDriver::new(&config)
    })
    .map_err(|e| at.err(e))?;
    Ok(Arc::new(resolver))
}

/// One single-server hickory resolver per configured server.
struct HickoryDriver {
    servers: Vec<Arc<Hickory>>,
    each_timeout: Duration,
    retry_interval: Duration,
}

impl HickoryDriver {
    fn new(c: &HickoryConfig) -> Result<Self, String> {
        let tls = match &c.encryption {
            Some(e) => Some(e.tls.build()?),
            None => None,
        };
        let provider = Provider::new(c.connect_timeout);
        let mut servers = Vec::with_capacity(c.servers.len());
        for (ip, port) in &c.servers {
            let addr = config::server_addr(c, *ip, *port);
            let ns = NameServerConfig::new(*ip, true, connections(c, addr));
            let mut builder = Hickory::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                provider.clone(),
            );
            let opts = builder.options_mut();
            opts.timeout = c.request_timeout;
            // hickory counts retries after the first try
            opts.attempts = c.each_tries.saturating_sub(1);
            opts.cache_size = 0;
            opts.use_hosts_file = ResolveHosts::Never;
            opts.num_concurrent_reqs = 1;
            if let Some(tls) = &tls {
                builder = builder.with_tls_config(tls.clone());
            }
            let resolver = builder
                .build()
                .map_err(|e| format!("cannot set up name server {addr}: {e}"))?;
            servers.push(Arc::new(resolver));
        }
        Ok(HickoryDriver {
            servers,
            each_timeout: c.each_timeout,
            retry_interval: c.retry_interval,
        })
    }
}

/// The transports to one server: UDP then TCP, or the one encrypted protocol.
fn connections(c: &HickoryConfig, addr: SocketAddr) -> Vec<ConnectionConfig> {
    let mut list = match &c.encryption {
        None => vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
        Some(e) => {
            let name = e.server_name(addr.ip());
            vec![match e.protocol {
                Protocol::Tls => ConnectionConfig::tls(name),
                Protocol::Https => ConnectionConfig::https(name, None),
                Protocol::Quic => ConnectionConfig::quic(name),
            }]
        }
    };
    for conn in &mut list {
        conn.port = addr.port();
        conn.bind_addr = c.bind_ip.map(|ip| SocketAddr::new(ip, 0));
    }
    list
}

impl Driver for HickoryDriver {
    fn query(&self, domain: &str, family: AddrFamily) -> DriverFuture {
        let servers = self.servers.clone();
        let each_timeout = self.each_timeout;
        let retry_interval = self.retry_interval;
        let domain = domain.to_string();
        let rtype = match family {
            AddrFamily::Ipv4 => RecordType::A,
            AddrFamily::Ipv6 => RecordType::AAAA,
        };
        Box::pin(async move {
            let mut running = JoinSet::new();
            let mut next = 0;
            let mut last = Failure::from(ResolveError::ServerFailure("no name server".into()));
            loop {
                if let Some(server) = servers.get(next) {
                    let server = Arc::clone(server);
                    let domain = domain.clone();
                    running.spawn(async move {
                        let fqdn = format!("{domain}.");
                        match tokio::time::timeout(each_timeout, server.lookup(fqdn, rtype)).await {
                            Ok(Ok(lookup)) => Ok(answer(&lookup)),
                            Ok(Err(e)) => Err(failure(e, domain)),
                            Err(_) => Err(ResolveError::Timeout.into()),
                        }
                    });
                    next += 1;
                }
                let more = next < servers.len();
                tokio::select! {
                    joined = running.join_next() => match joined {
                        None => return Err(last),
                        Some(Ok(Ok(a))) => return Ok(a),
                        Some(Ok(Err(f))) if is_final(&f.error) => return Err(f),
                        // a failed server: the next one is asked at once
                        Some(Ok(Err(f))) => last = f,
                        Some(Err(e)) => last = ResolveError::ServerFailure(e.to_string()).into(),
                    },
                    _ = tokio::time::sleep(retry_interval), if more => {}
                }
            }
        })
    }
}

fn is_final(e: &ResolveError) -> bool {
    matches!(e, ResolveError::NotFound(_) | ResolveError::InvalidName)
}

fn answer(lookup: &Lookup) -> Answer {
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for r in lookup.answers() {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        addrs.push(ip);
        ttl = ttl.min(r.ttl);
    }
    if addrs.is_empty() {
        ttl = 0;
    }
    Answer { addrs, ttl }
}

fn failure(e: NetError, domain: String) -> Failure {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords { negative_ttl, .. })) => Failure {
            error: ResolveError::NotFound(domain),
            ttl: negative_ttl,
            server_refused: false,
        },
        NetError::Timeout => ResolveError::Timeout.into(),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => Failure::server_refused(),
        NetError::Dns(DnsError::ResponseCode(code)) => {
            ResolveError::ServerFailure(format!("server answered {code}")).into()
        }
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ResolveError::Timeout.into()
        }
        other => ResolveError::ServerFailure(other.to_string()).into(),
    }
}
