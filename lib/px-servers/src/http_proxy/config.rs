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
    "user_group",
    "shared_logger",
    "tls_server",
    "tls_ticketer",
    "tcp_copy_yield_size",
    "tcp_misc_opts",
    "flush_task_log_on_created",
    "flush_task_log_on_connected",
    "task_log_flush_interval",
    "extra_metrics_tags",
    "local_server_name",
    "server_id",
    "auth_realm",
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
    "tcp_conn_speed_limit",
    "tcp_conn_limit",
    "conn_limit",
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
        let common = CommonServerConfig::parse(name, &mut map, lookup)?;
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
        if let Some(v) = map.get("tls_client") {
            empty_map_only(&v)?;
        }
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

/// `tls_client`: https forwarding is not implemented, so only an empty map is accepted.
fn empty_map_only(v: &Val<'_>) -> Result<(), ConfigError> {
    if v.is_null() {
        return Ok(());
    }
    let mut m = v.map()?;
    if m.rest().is_empty() {
        return Ok(());
    }
    Err(v.err(
        "key `tls_client` is known to g3proxy but not implemented yet by this proxy \
         (only `{}` is accepted)",
    ))
}
