//! The `Resolver` trait: domain name to addresses, per family, with a strategy.

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::ResolveError;

/// Which address families to query, and which is preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryStrategy {
    /// Both families, IPv4 preferred (g3proxy's default).
    #[default]
    Ipv4First,
    /// Both families, IPv6 preferred.
    Ipv6First,
    /// Only A records.
    Ipv4Only,
    /// Only AAAA records.
    Ipv6Only,
}

/// How to pick among the resolved addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PickStrategy {
    /// Use the addresses in the order the resolver gave them.
    #[default]
    First,
    /// Shuffle the addresses first.
    Random,
}

/// A resolve strategy: `resolve_strategy` in escapers, users and sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolveStrategy {
    /// Families to query and their order.
    pub query: QueryStrategy,
    /// Address pick order.
    pub pick: PickStrategy,
}

/// An address family to query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrFamily {
    /// A records.
    Ipv4,
    /// AAAA records.
    Ipv6,
}

/// A resolver module (c-ares, hickory, fail_over, deny_all).
#[async_trait]
pub trait Resolver: Send + Sync {
    /// The module name.
    fn name(&self) -> &str;

    /// The module type as written in config (`c-ares`, `hickory`, ...).
    fn kind(&self) -> &'static str;

    /// Resolves one family of records; bounded by the resolver's own timeout.
    async fn resolve_family(
        &self,
        domain: &str,
        family: AddrFamily,
    ) -> Result<Vec<IpAddr>, ResolveError>;

    /// Resolves by strategy: one family, or both with the preferred first.
    async fn resolve(
        &self,
        domain: &str,
        strategy: QueryStrategy,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let (first, second) = match strategy {
            QueryStrategy::Ipv4Only => return self.resolve_family(domain, AddrFamily::Ipv4).await,
            QueryStrategy::Ipv6Only => return self.resolve_family(domain, AddrFamily::Ipv6).await,
            QueryStrategy::Ipv4First => (AddrFamily::Ipv4, AddrFamily::Ipv6),
            QueryStrategy::Ipv6First => (AddrFamily::Ipv6, AddrFamily::Ipv4),
        };
        let (a, b) = futures_join(
            self.resolve_family(domain, first),
            self.resolve_family(domain, second),
        )
        .await;
        match (a, b) {
            (Ok(mut x), Ok(y)) => {
                x.extend(y);
                Ok(x)
            }
            (Ok(x), Err(_)) | (Err(_), Ok(x)) => Ok(x),
            (Err(e), Err(_)) => Err(e),
        }
    }
}

async fn futures_join<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: std::future::Future,
    B: std::future::Future,
{
    tokio::join!(a, b)
}
