//! The `http_proxy` config: the common server keys plus the HTTP-specific ones.
//!
//! ```yaml
//! name: http
//! type: http_proxy
//! listen: 127.0.0.1:8080
//! escaper: default
//! req_header_max_size: 64K
//! req_header_recv_timeout: 30s
//! rsp_header_recv_timeout: 60s
//! pipeline_read_idle_timeout: 5m
//! http_forward_upstream_keepalive: {enable: true, idle_expire: 60s}
//! ```
//!
//! Every key is described in `doc/config/server/http_proxy.md`. Keys g3proxy documents for
//! `http_proxy` that this proxy does not implement yet are refused with px-yaml's "not implemented
//! yet" error; anything else unknown is an "unknown key" error.

use std::time::Duration;

use px_core::ModuleLookup;
use px_yaml::{ConfigError, MapReader, Val, Value, values};

use crate::common::CommonServerConfig;

/// g3proxy's keys for http_proxy (and the common server keys it takes) not implemented yet.
const UNIMPLEMENTED: &[&str] = &[
    "auditor",
    "shared_logger",
    "tls_ticketer",
    "tcp_copy_yield_size",
    "tcp_misc_opts",
    "flush_task_log_on_created",
    "flush_task_log_on_connected",
    "task_log_flush_interval",
    "extra_metrics_tags",
    "local_server_name",
    "server_id",
    "ftp_client",
    "log_uri_max_chars",
    "pipeline_size",
    "no_early_error_reply",
    "http_forward_mark_upstream",
    "echo_chained_info",
    "untrusted_read_speed_limit",
    "untrusted_read_limit",
    "egress_path_selection_header",
    "path_selection_header",
    "username_params",
];

/// `http_forward_upstream_keepalive`: whether and how long upstream connections are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpKeepalive {
    /// Keep upstream connections for the next request of the same client connection.
    pub(crate) enable: bool,
    /// Drop a kept connection idle for longer than this.
    pub(crate) idle_expire: Duration,
}

impl Default for HttpKeepalive {
    fn default() -> Self {
        HttpKeepalive {
            enable: true,
            idle_expire: Duration::from_secs(60),
        }
    }
}

/// The parsed `http_proxy` config.
pub(crate) struct HttpProxyConfig {
    /// listen, escaper, filters, tcp_sock_speed_limit.
    pub(crate) common: CommonServerConfig,
    /// `req_header_max_size`: largest request head.
    pub(crate) req_header_max_size: usize,
    /// `rsp_header_max_size`: largest response head.
    pub(crate) rsp_header_max_size: usize,
    /// `req_header_recv_timeout`: time for a whole request head once the first byte is readable.
    pub(crate) req_header_recv_timeout: Duration,
    /// `rsp_header_recv_timeout`: time from request sent to whole response head received.
    pub(crate) rsp_header_recv_timeout: Duration,
    /// `pipeline_read_idle_timeout`: how long an idle keep-alive client connection is kept.
    pub(crate) pipeline_read_idle_timeout: Duration,
    /// `body_line_max_length`: longest chunk-size or trailer line.
    pub(crate) body_line_max_length: usize,
    /// `http_forward_upstream_keepalive`.
    pub(crate) upstream_keepalive: HttpKeepalive,
    /// `allow_custom_host`: a `Host` naming another host than the URI is accepted.
    pub(crate) allow_custom_host: bool,
    /// `drop_default_port_in_host`: forward `Host: example.com` for `http://example.com:80/`.
    pub(crate) drop_default_port_in_host: bool,
    /// `steal_forwarded_for`: remove `Forwarded` and `X-Forwarded-For` from requests.
    pub(crate) steal_forwarded_for: bool,
    /// `tcp_copy_buffer_size`: buffer size per direction.
    pub(crate) tcp_copy_buffer_size: usize,
    /// `task_idle_check_interval` x `task_idle_max_count`: a task with no traffic that long ends.
    pub(crate) task_idle_timeout: Duration,
    /// `tls_server` and `tls_client` (see `tls.rs`).
    pub(crate) tls: super::tls::HttpTls,
    /// `auth_realm`: the realm of the `Proxy-Authenticate` challenge.
    pub(crate) auth_realm: String,
}

/// g3proxy's default for both head size limits.
const DEFAULT_HEADER_MAX_SIZE: usize = 64 * 1024;
/// Smallest `tcp_copy_buffer_size` g3proxy accepts (smaller values are raised to it).
const MIN_COPY_BUFFER: usize = 4 * 1024;

impl HttpProxyConfig {
    /// Parses the map (with `name` and `type` already taken) and checks for leftover keys.
    pub(crate) fn parse(
        name: &str,
        mut map: MapReader<'_>,
        lookup: &dyn ModuleLookup,
    ) -> Result<Self, ConfigError> {
        let mut common = CommonServerConfig::parse(name, &mut map, lookup)?;
        // g3proxy's deprecated spellings of tcp_sock_speed_limit
        if let Some(v) = map.get_any(&["tcp_conn_speed_limit", "tcp_conn_limit", "conn_limit"]) {
            if !common.tcp_sock_speed_limit.is_unlimited() {
                return Err(v.err("deprecated alias of tcp_sock_speed_limit, which is also set"));
            }
            common.tcp_sock_speed_limit = values::tcp_speed_limit(&v)?;
        }
        let mut cfg = HttpProxyConfig {
            common,
            req_header_max_size: DEFAULT_HEADER_MAX_SIZE,
            rsp_header_max_size: DEFAULT_HEADER_MAX_SIZE,
            req_header_recv_timeout: Duration::from_secs(30),
            rsp_header_recv_timeout: Duration::from_secs(60),
            pipeline_read_idle_timeout: Duration::from_secs(300),
            body_line_max_length: 8192,
            upstream_keepalive: HttpKeepalive::default(),
            allow_custom_host: true,
            drop_default_port_in_host: false,
            steal_forwarded_for: false,
            tcp_copy_buffer_size: px_io::DEFAULT_BUF_SIZE,
            task_idle_timeout: Duration::from_secs(300),
            tls: Default::default(),
            auth_realm: super::auth::parse_realm(&mut map)?,
        };
        if let Some(v) = map.get("req_header_max_size") {
            cfg.req_header_max_size = nonzero_size(&v)?;
        }
        if let Some(v) = map.get("rsp_header_max_size") {
            cfg.rsp_header_max_size = nonzero_size(&v)?;
        }
        if let Some(v) = map.get("req_header_recv_timeout") {
            cfg.req_header_recv_timeout = nonzero_duration(&v)?;
        }
        if let Some(v) = map.get("rsp_header_recv_timeout") {
            cfg.rsp_header_recv_timeout = nonzero_duration(&v)?;
        }
        if let Some(v) = map.get("pipeline_read_idle_timeout") {
            cfg.pipeline_read_idle_timeout = nonzero_duration(&v)?;
        }
        if let Some(v) = map.get("body_line_max_length") {
            let n: usize = v.as_int()?;
            if n < 16 {
                return Err(v.err("body_line_max_length must be at least 16"));
            }
            cfg.body_line_max_length = n;
        }
        if let Some(v) = map.get("http_forward_upstream_keepalive") {
            cfg.upstream_keepalive = http_keepalive(&v)?;
        }
        if let Some(v) = map.get("allow_custom_host") {
            cfg.allow_custom_host = v.as_bool()?;
        }
        if let Some(v) = map.get("drop_default_port_in_host") {
            cfg.drop_default_port_in_host = v.as_bool()?;
        }
        if let Some(v) = map.get("steal_forwarded_for") {
            cfg.steal_forwarded_for = v.as_bool()?;
        }
        if let Some(v) = map.get("tcp_copy_buffer_size") {
            let n = usize::try_from(values::size(&v)?).map_err(|_| v.err("size out of range"))?;
            cfg.tcp_copy_buffer_size = n.max(MIN_COPY_BUFFER);
        }
        let mut check_interval = Duration::from_secs(60);
        if let Some(v) = map.get_any(&["task_idle_check_interval", "task_idle_check_duration"]) {
            let d = values::duration(&v)?;
            check_interval = d.clamp(Duration::from_secs(2), Duration::from_secs(1800));
        }
        let mut max_count: u32 = 5;
        if let Some(v) = map.get("task_idle_max_count") {
            max_count = v.as_int::<u32>()?.max(1);
        }
        cfg.task_idle_timeout = check_interval.saturating_mul(max_count);
        cfg.tls = super::tls::parse(&mut map)?;
        map.unimplemented(UNIMPLEMENTED)?;
        map.finish()?;
        Ok(cfg)
    }
}

/// A size above zero that fits usize.
fn nonzero_size(v: &Val<'_>) -> Result<usize, ConfigError> {
    let n = values::size(v)?;
    if n == 0 {
        return Err(v.err("size must be greater than 0"));
    }
    usize::try_from(n).map_err(|_| v.err("size out of range"))
}

/// A duration above zero.
fn nonzero_duration(v: &Val<'_>) -> Result<Duration, ConfigError> {
    let d = values::duration(v)?;
    if d.is_zero() {
        return Err(v.err("duration must be greater than 0"));
    }
    Ok(d)
}

/// g3proxy's "http keepalive" value: a bool (`enable`), a duration (`idle_expire`), or a map.
fn http_keepalive(v: &Val<'_>) -> Result<HttpKeepalive, ConfigError> {
    let mut ka = HttpKeepalive::default();
    match &v.node().value {
        Value::Map(_) => {
            let mut m = v.map()?;
            if let Some(e) = m.get("enable") {
                ka.enable = e.as_bool()?;
            }
            if let Some(d) = m.get("idle_expire") {
                ka.idle_expire = values::duration(&d)?;
            }
            m.finish()?;
        }
        Value::Bool(b) => ka.enable = *b,
        Value::Str(s) if values::parse_duration(s).is_none() => ka.enable = v.as_bool()?,
        _ => ka.idle_expire = values::duration(v)?,
    }
    Ok(ka)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::tests::parse_config;
    use super::*;

    fn parse(extra: &str) -> Result<HttpProxyConfig, ConfigError> {
        parse_config(&format!(
            "name: http\ntype: http_proxy\nlisten: 127.0.0.1:8080\nescaper: default\n{extra}"
        ))
    }

    fn err(extra: &str) -> ConfigError {
        match parse(extra) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.req_header_max_size, 65536);
        assert_eq!(c.rsp_header_max_size, 65536);
        assert_eq!(c.req_header_recv_timeout, Duration::from_secs(30));
        assert_eq!(c.rsp_header_recv_timeout, Duration::from_secs(60));
        assert_eq!(c.pipeline_read_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.body_line_max_length, 8192);
        assert_eq!(c.upstream_keepalive, HttpKeepalive::default());
        assert!(c.allow_custom_host && !c.drop_default_port_in_host && !c.steal_forwarded_for);
        assert_eq!(c.tcp_copy_buffer_size, 16384);
        assert_eq!(c.task_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.common.listen.map(|l| l.address.port()), Some(8080));
    }

    #[test]
    fn every_key() {
        let c = parse(
            "req-header-max-size: 8KiB\nrsp_header_max_size: 1MiB\nreq_header_recv_timeout: 5s\n\
             rsp_header_recv_timeout: 1m\npipeline_read_idle_timeout: 10\nbody_line_max_length: 1024\n\
             http_forward_upstream_keepalive: {enable: false, idle_expire: 5s}\nallow_custom_host: false\n\
             drop_default_port_in_host: true\nsteal_forwarded_for: yes\ntcp_copy_buffer_size: 1K\n\
             task_idle_check_interval: 10s\ntask_idle_max_count: 3\ntls_client: {}\n\
             dst_port_filter: [80, 443]\ntcp_sock_speed_limit: 10M/s\n",
        )
        .unwrap();
        assert_eq!(c.req_header_max_size, 8192);
        assert_eq!(c.rsp_header_max_size, 1 << 20);
        assert_eq!(c.req_header_recv_timeout, Duration::from_secs(5));
        assert_eq!(c.pipeline_read_idle_timeout, Duration::from_secs(10));
        assert_eq!(c.body_line_max_length, 1024);
        assert_eq!(
            c.upstream_keepalive,
            HttpKeepalive {
                enable: false,
                idle_expire: Duration::from_secs(5)
            }
        );
        assert!(!c.allow_custom_host && c.drop_default_port_in_host && c.steal_forwarded_for);
        assert_eq!(c.tcp_copy_buffer_size, 4096, "raised to the 4K minimum");
        assert_eq!(c.task_idle_timeout, Duration::from_secs(30));
        assert!(c.common.dst_port_filter.is_some());
    }

    #[test]
    fn deprecated_speed_limit_spellings() {
        let c = parse("tcp_conn_limit: 1000\n").unwrap();
        assert!(!c.common.tcp_sock_speed_limit.is_unlimited());
        assert!(parse("tcp_sock_speed_limit: 1M\nconn_limit: 1M\n").is_err());
    }

    #[test]
    fn keepalive_forms() {
        let ka = |v: &str| {
            parse(&format!("http_forward_upstream_keepalive: {v}\n"))
                .unwrap()
                .upstream_keepalive
        };
        assert!(!ka("false").enable);
        assert!(!ka("\"off\"").enable);
        assert_eq!(ka("30s").idle_expire, Duration::from_secs(30));
        assert_eq!(ka("90").idle_expire, Duration::from_secs(90));
        assert!(ka("30s").enable);
        assert!(parse("http_forward_upstream_keepalive: {bogus: 1}\n").is_err());
    }

    #[test]
    fn rejected_values() {
        assert!(
            err("req_header_max_size: 0\n")
                .message
                .contains("greater than 0")
        );
        assert!(
            err("req_header_recv_timeout: 0s\n")
                .message
                .contains("greater than 0")
        );
        assert!(
            err("body_line_max_length: 4\n")
                .message
                .contains("at least 16")
        );
        let e = err("tls_client: {ca_certificate: a.pem}\n");
        assert!(e.message.contains("a.pem"), "{e}");
        let e = err("tls_server: {}\n");
        assert!(e.message.contains("cert_pairs"), "{e}");
        assert!(
            err("rsp_header_recv_timeout: soon\n")
                .message
                .contains("invalid duration")
        );
    }

    #[test]
    fn unknown_and_unimplemented_keys() {
        for key in ["pipeline_size: 4", "tls_ticketer: {}", "server_id: a"] {
            let e = err(&format!("{key}\n"));
            assert!(e.message.contains("not implemented yet"), "{key}: {e}");
        }
        let e = err("no_such_key: 1\n");
        assert!(e.message.contains("unknown key"), "{e}");
        assert_eq!(e.line, 5);
        assert_eq!(e.key_path, "server[http].no_such_key");
    }

    #[test]
    fn escaper_must_exist() {
        let e = parse_config("name: http\ntype: http_proxy\nescaper: nowhere\n")
            .err()
            .unwrap();
        assert!(e.message.contains("nowhere"), "{e}");
        let e = parse_config("name: http\ntype: http_proxy\n")
            .err()
            .unwrap();
        assert!(e.message.contains("escaper"), "{e}");
    }
}
