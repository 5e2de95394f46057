//! The `tcp_stream` config (also the stream part of `tls_stream`).
//!
//! Keys besides the common `listen`, `escaper`, `ingress_network_filter`,
//! `tcp_sock_speed_limit`: `proxy_pass` (alias `upstream`, required: one address or a weighted
//! list), `upstream_pick_policy` (default random), `tls_client` (bool or map: TLS towards the
//! upstream; `protocol: tlcp` for TLCP in `vendored-tongsuo` builds), `upstream_tls_name` (the
//! name the upstream certificate is verified against; the upstream host by default),
//! `listen_in_worker`, and the relay keys `tcp_copy_buffer_size`,
//! `task_idle_check_interval`, `task_idle_max_count`. Every key is in
//! `doc/config/server/tcp_stream.md`.

use px_core::{Host, ModuleLookup};
use px_tls::UpstreamTlsClient;
use px_yaml::{ConfigError, MapReader, values};

use crate::common::CommonServerConfig;
use crate::common::pick::{PickPolicy, UpstreamPicker, parse_upstreams};
use crate::common::stream_keys::StreamKeys;

/// g3proxy's keys for the stream servers not implemented yet.
pub(crate) const UNIMPLEMENTED: &[&str] = &[
    "auditor",
    "shared_logger",
    "tcp_copy_yield_size",
    "tcp_misc_opts",
    "flush_task_log_on_created",
    "flush_task_log_on_connected",
    "task_log_flush_interval",
    "extra_metrics_tags",
];

/// The parsed stream config.
pub(crate) struct StreamConfig {
    /// listen, escaper, ingress filter, speed limit.
    pub(crate) common: CommonServerConfig,
    /// The upstreams and how one is picked.
    pub(crate) upstreams: UpstreamPicker,
    /// TLS (or TLCP) towards the upstream.
    pub(crate) tls_client: Option<UpstreamTlsClient>,
    /// The name the upstream certificate must carry.
    pub(crate) upstream_tls_name: Option<Host>,
    /// Relay buffer and idle time.
    pub(crate) keys: StreamKeys,
}

impl StreamConfig {
    /// Takes the stream keys out of `map` (the caller finishes the map).
    pub(crate) fn parse(
        name: &str,
        map: &mut MapReader<'_>,
        lookup: &dyn ModuleLookup,
    ) -> Result<StreamConfig, ConfigError> {
        let common = CommonServerConfig::parse(name, map, lookup)?;
        let list = match map.get_any(&["proxy_pass", "upstream"]) {
            Some(v) => parse_upstreams(&v)?,
            None => return Err(map.err("missing required key `proxy_pass` (alias `upstream`)")),
        };
        let policy = match map.get("upstream_pick_policy") {
            Some(v) => PickPolicy::parse(&v)?,
            None => PickPolicy::Random,
        };
        let tls_client = match map.get("tls_client") {
            Some(v) => UpstreamTlsClient::parse(&v)?,
            None => None,
        };
        let upstream_tls_name = map
            .get("upstream_tls_name")
            .map(|v| values::host(&v))
            .transpose()?;
        let keys = StreamKeys::parse(map)?;
        map.unimplemented(UNIMPLEMENTED)?;
        Ok(StreamConfig {
            common,
            upstreams: UpstreamPicker::new(list, policy),
            tls_client,
            upstream_tls_name,
            keys,
        })
    }
}
