//! Upstream connections of one client connection: connecting through the escaper, and keeping the
//! connection for the next request to the same host and port.
//!
//! A kept connection is reused only if it has been idle for less than `idle_expire`
//! (`http_forward_upstream_keepalive`) and the server has neither closed it nor sent anything
//! unasked since the last response; both are checked without waiting. The HTTP version of its
//! last response is remembered so that `Expect: 100-continue` can be answered by the proxy itself
//! when the upstream only speaks HTTP/1.0.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use px_core::{AsyncStream, ClientInfo, ConnectError, UpstreamAddr, UpstreamStream};
use px_http::Version;
use px_io::Side;
use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;

use super::config::HttpProxyConfig;
use super::io::{Io, buffered};
use crate::common::user::TaskTarget;

/// Outer bound on one connect through the escaper (which applies its own, shorter, timeouts).
const CONNECT_BOUND: Duration = Duration::from_secs(120);

/// An open upstream connection for HTTP forwarding.
pub(crate) struct Upstream {
    /// The target it is connected to.
    pub(crate) addr: UpstreamAddr,
    /// The stream.
    pub(crate) io: Io<Box<dyn AsyncStream>>,
    /// When the last exchange on it ended.
    pub(crate) idle_since: Instant,
    /// The version of its last response, if one was received.
    pub(crate) version: Option<Version>,
    /// Whether it has carried an exchange before the current one.
    pub(crate) reused: bool,
    /// Whether it speaks TLS to the origin (an `https://` request).
    pub(crate) tls: bool,
    /// The user it was opened for (kept connections serve that user only).
    pub(crate) user: Option<Arc<str>>,
}

impl Upstream {
    /// Connects to `target` through the server's escaper.
    pub(crate) async fn connect(
        cfg: &HttpProxyConfig,
        target: &TaskTarget,
        client: &ClientInfo,
        activity: &Arc<AtomicU64>,
        tls: bool,
    ) -> Result<Self, ConnectError> {
        let mut conn = connect_raw(cfg, target, client).await?;
        if tls {
            conn = super::tls::wrap_upstream(cfg, conn, &target.requested.host).await?;
        }
        // the escaper's limit and the user's, the stricter each way
        let limit = conn.speed_limit.stricter(target.user_limit);
        let stream: Box<dyn AsyncStream> = match conn.stream {
            UpstreamStream::Tcp(t) => {
                let _ = t.set_nodelay(true);
                Box::new(t)
            }
            UpstreamStream::Other(s) => s,
        };
        // upload limits what we write to the upstream, download what we read from it
        let io = buffered(
            stream,
            Side::Upstream,
            limit,
            activity,
            cfg.tcp_copy_buffer_size,
        );
        Ok(Upstream {
            addr: target.requested.clone(),
            io,
            idle_since: Instant::now(),
            version: None,
            reused: false,
            tls,
            user: target.user.clone(),
        })
    }

    /// Whether a kept connection can carry another request now (never waits).
    pub(crate) async fn usable(&mut self, idle_expire: Duration) -> bool {
        if self.idle_since.elapsed() > idle_expire {
            return false;
        }
        // a poll that is not ready means: open, and nothing unasked for
        tokio::time::timeout(Duration::ZERO, self.io.fill_buf())
            .await
            .is_err()
    }
}

/// Connects through the escaper within [`CONNECT_BOUND`].
pub(crate) async fn connect_raw(
    cfg: &HttpProxyConfig,
    target: &TaskTarget,
    client: &ClientInfo,
) -> Result<px_core::UpstreamConn, ConnectError> {
    let escaper = cfg.common.escaper.get();
    let req = target.request(client.peer_addr);
    match tokio::time::timeout(CONNECT_BOUND, escaper.connect_tcp(&req)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::TimedOut),
    }
}

/// The px-core form of a parsed authority.
pub(crate) fn upstream_addr(a: &px_http::Authority) -> UpstreamAddr {
    let host = match &a.host {
        px_http::Host::Ip(ip) => px_core::Host::Ip(*ip),
        px_http::Host::Domain(d) => {
            px_core::Host::Domain(d.strip_suffix('.').unwrap_or(d).to_string())
        }
    };
    UpstreamAddr::new(host, a.port)
}
