//! The one list mapping each `type:` name (and its aliases) to a factory, per kind.
//! Adding a module type is one line here plus its module in a library crate.

use std::sync::Arc;

use px_core::{Auditor, ModuleLookup, UserGroup};
use px_daemon::build::Wiring;
use px_yaml::{ConfigError, MapReader};

/// Every module type this build knows.
pub(crate) fn wiring() -> Wiring {
    Wiring {
        resolvers: vec![
            (&["c-ares", "c_ares", "cares"], px_resolver::build_cares),
            (&["hickory", "trust-dns"], px_resolver::build_hickory),
            (&["fail_over", "failover"], px_resolver::build_fail_over),
            (&["deny_all", "denyall"], px_resolver::build_deny_all),
        ],
        escapers: vec![
            (
                &["direct_fixed", "directfixed"],
                px_escapers::build_direct_fixed,
            ),
            (
                &["direct_float", "directfloat"],
                px_escapers::build_direct_float,
            ),
        ],
        user_groups: vec![
            (&["basic", "hashed_user"], px_auth::build_basic),
            (&["facts", "ldap"], unimplemented_user_group),
        ],
        auditors: vec![(&["default"], unimplemented_auditor)],
        servers: vec![
            (&["http_proxy", "httpproxy"], px_servers::http_proxy::build),
            (
                &["socks_proxy", "socksproxy"],
                px_servers::socks_proxy::build,
            ),
            (&["tcp_stream", "tcpstream"], px_servers::tcp_stream::build),
            (&["tls_stream", "tlsstream"], px_servers::tls_stream::build),
            (&["sni_proxy", "sniproxy"], px_servers::sni_proxy::build),
            (
                &["native_tls_port", "nativetlsport", "native_tls"],
                px_servers::native_tls_port::build,
            ),
            (
                &["plain_tcp_port", "plaintcpport", "plain_tcp"],
                px_servers::plain_tcp_port::build,
            ),
            (
                &["plain_tls_port", "plaintlsport", "plain_tls"],
                px_servers::plain_tls_port::build,
            ),
            (
                &["intelli_proxy", "intelliproxy", "ppdp_tcp_port"],
                px_servers::intelli_proxy::build,
            ),
        ],
    }
}

fn unimplemented_user_group(
    _name: &str,
    map: MapReader<'_>,
    _lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn UserGroup>, ConfigError> {
    Err(map.err("user groups are known to g3proxy but not implemented yet by this proxy"))
}

fn unimplemented_auditor(
    _name: &str,
    map: MapReader<'_>,
    _lookup: &dyn ModuleLookup,
) -> Result<Arc<dyn Auditor>, ConfigError> {
    Err(map.err("auditors are known to g3proxy but not implemented yet by this proxy"))
}
