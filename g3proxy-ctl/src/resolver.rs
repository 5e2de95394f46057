//! `resolver NAME query DOMAIN`

use clap::{Subcommand, ValueEnum};
use px_ctl_proto::control_capnp::{QueryStrategy, fetch_resolver, proc_control, query_result};
use px_ctl_proto::rpc::get_names;

use crate::Failure;

/// Query strategies.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Strategy {
    /// A and AAAA, IPv4 first
    Ipv4First,
    /// A and AAAA, IPv6 first
    Ipv6First,
    /// A only
    Ipv4Only,
    /// AAAA only
    Ipv6Only,
}

/// Resolver operations.
#[derive(Subcommand, Debug)]
pub(crate) enum Op {
    /// Resolve a domain through the resolver; prints one address per line.
    Query {
        /// The domain name.
        domain: String,
        /// Which address families, in which order.
        #[arg(long, value_enum, default_value = "ipv4-first")]
        strategy: Strategy,
    },
}

pub(crate) async fn run(c: &proc_control::Client, name: &str, op: Op) -> Result<(), Failure> {
    let mut req = c.get_resolver_request();
    req.get().set_name(name);
    let reply = req.send().promise.await?;
    let resolver = match reply.get()?.get_resolver()?.which()? {
        fetch_resolver::Resolver(r) => r?,
        fetch_resolver::Err(e) => {
            let reason = e?.get_reason()?.to_string().unwrap_or_default();
            return Err(Failure::Refused(reason));
        }
    };
    match op {
        Op::Query { domain, strategy } => {
            let mut req = resolver.query_request();
            req.get().set_domain(domain.as_str());
            req.get().set_strategy(match strategy {
                Strategy::Ipv4First => QueryStrategy::Ipv4First,
                Strategy::Ipv6First => QueryStrategy::Ipv6First,
                Strategy::Ipv4Only => QueryStrategy::Ipv4Only,
                Strategy::Ipv6Only => QueryStrategy::Ipv6Only,
            });
            let reply = req.send().promise.await?;
            match reply.get()?.get_result()?.which()? {
                query_result::Ip(list) => {
                    for ip in get_names(list?)? {
                        println!("{ip}");
                    }
                    Ok(())
                }
                query_result::Err(e) => {
                    let e = e?.to_string().unwrap_or_default();
                    Err(Failure::Refused(format!("query {domain} failed: {e}")))
                }
            }
        }
    }
}
