//! Resolver modules: name to addresses, per address family.
//!
//! One module per `type:` of g3proxy's `resolver:` section:
//!
//! - [`cares`]: `c-ares` (also `c_ares`, `cares`), plain DNS through c-ares,
//!   the system's `/etc/resolv.conf` when no `server` is given;
//! - [`hickory`]: `hickory`, plain DNS (UDP, TCP on truncation) or encrypted
//!   (`dns-over-tls`, `dns-over-https`, `dns-over-quic`);
//! - [`fail_over`]: `fail_over` (also `failover`), a primary and a standby
//!   resolver with a fallback delay;
//! - [`deny_all`]: `deny_all` (also `denyall`), refuses every name.
//!
//! `c-ares` and `hickory` sit behind one cache ([`cache`]): TTL-bounded
//! positive answers, negative answers, a bounded size, one shared upstream
//! query per name and family, a hard timeout on every query, and a thread of
//! their own. Every key is described in `doc/config/resolver/<type>.md`.
//!
//! ```yaml
//! resolver:
//!   - name: default
//!     type: fail_over
//!     primary: alidns
//!     standby: dnspod
//!   - name: alidns
//!     type: c-ares
//!     server: 223.5.5.5 223.6.6.6
//!   - name: dnspod
//!     type: hickory
//!     server: 119.29.29.29
//! ```

mod cache;
pub mod cares;
pub mod deny_all;
pub mod fail_over;
pub mod hickory;
mod name;
mod stats;

use std::sync::Arc;

use px_core::{ModuleLookup, Resolver};
use px_yaml::{ConfigError, MapReader};

/// A resolver factory: module name, its map (`name` and `type` already
/// taken) and the lookup for modules it names.
pub type Factory =
    fn(&str, MapReader<'_>, &dyn ModuleLookup) -> Result<Arc<dyn Resolver>, ConfigError>;

/// Every resolver type with its accepted `type:` spellings.
pub const TYPES: &[(&[&str], Factory)] = &[
    (&["c-ares", "c_ares", "cares"], build_cares),
    (&["hickory"], build_hickory),
    (&["fail_over", "fail-over", "failover"], build_fail_over),
    (&["deny_all", "deny-all", "denyall"], build_deny_all),
];

/// Builds a `c-ares` resolver.
pub fn build_cares(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    cares::build(name, map, lookup)
}

/// Builds a `hickory` resolver.
pub fn build_hickory(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    hickory::build(name, map, lookup)
}

/// Builds a `fail_over` resolver (looks up `primary` and `standby`).
pub fn build_fail_over(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    fail_over::build(name, map, lookup)
}

/// Builds a `deny_all` resolver.
pub fn build_deny_all(
    name: &str,
    map: MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Resolver>, ConfigError> {
    deny_all::build(name, map, lookup)
}

/// The factory for a `type:` value, matched as g3proxy does (case, `-` and
/// `_` do not matter).
pub fn factory(type_name: &str) -> Option<Factory> {
    let want = px_yaml::normalize_type(type_name);
    TYPES
        .iter()
        .find(|(names, _)| names.iter().any(|n| px_yaml::normalize_type(n) == want))
        .map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        for t in [
            "c-ares",
            "C_ARES",
            "cares",
            "hickory",
            "fail_over",
            "FailOver",
            "deny_all",
            "denyall",
        ] {
            assert!(factory(t).is_some(), "{t}");
        }
        assert!(factory("trust-dns").is_none());
    }
}
