//! CONNECT tunnels.
//!
//! The authority is checked against `dst_port_filter` and `dst_host_filter_set` (403), the escaper
//! connects (403 / 502 / 504 on failure), the client gets `HTTP/1.1 200 Connection established`,
//! and px-io relays both ways with the server's `tcp_sock_speed_limit` on the client side and the
//! escaper's limit on the upstream side, until both sides close or nothing moves for the task idle
//! time. Bytes the client sent right behind its CONNECT head are forwarded first.

use std::sync::Arc;
use std::time::Duration;

use px_core::{UpstreamAddr, UpstreamConn, UserCtx};
use px_http::{RequestHead, RequestTarget};
use tokio::io::AsyncWriteExt;

use super::config::HttpProxyConfig;
use super::conn::{ClientConn, ClientStream};
use super::io::into_stream;
use super::reply::status_for_connect_error;
use super::upstream::{connect_raw, upstream_addr};
use crate::common::check_target;
use crate::common::stats::fold_relay;
use crate::common::user::{TaskUser, client_limit, task_target};

/// The reply that opens a tunnel.
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// How long sending the 200 reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A tunnel whose upstream is connected and whose client got the 200 reply.
struct OpenTunnel<S> {
    /// The client stream, unbuffered.
    client: S,
    /// Bytes the client sent right behind its CONNECT head.
    pending: Vec<u8>,
    /// The connected upstream.
    upstream: UpstreamConn,
    /// What the client asked for, for the log line.
    target: UpstreamAddr,
    /// The user the escaper connected for, for the log line.
    user_name: Option<Arc<str>>,
}

/// Runs one CONNECT request to its end; the client connection ends with it.
pub(crate) async fn tunnel<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: ClientConn<S>,
    head: RequestHead,
    user: Option<TaskUser>,
) {
    let info = conn.info;
    let user_ctx = user.as_ref().map(|u| &u.ctx);
    // the set-up runs boxed and is freed before the relay: an idle tunnel then holds only
    // what the relay needs (this future lives as long as the tunnel)
    let Some(mut open) = Box::pin(open_tunnel(cfg, conn, head, user_ctx)).await else {
        return;
    };
    let opts = px_io::RelayOpts {
        buf_size: cfg.tcp_copy_buffer_size,
        idle_timeout: Some(cfg.task_idle_timeout),
        client_limit: client_limit(cfg.common.tcp_sock_speed_limit, user_ctx),
        ..Default::default()
    };
    let outcome = px_io::relay_upstream(
        &mut open.client,
        &mut open.upstream,
        &open.pending,
        b"",
        &opts,
    )
    .await;
    fold_relay(&cfg.common.stats, user_ctx, &outcome);
    log::debug!(
        "http_proxy: tunnel {} (user {}) -> {}: up {} down {}, {}",
        info.peer_addr,
        open.user_name.as_deref().unwrap_or("-"),
        open.target,
        outcome.up_bytes,
        outcome.down_bytes,
        outcome.end.reason()
    );
}

/// Checks the target, connects through the escaper and sends the 200 reply; every refusal
/// and failure is answered here and gives `None`.
async fn open_tunnel<S: ClientStream>(
    cfg: &HttpProxyConfig,
    mut conn: ClientConn<S>,
    head: RequestHead,
    user_ctx: Option<&UserCtx>,
) -> Option<OpenTunnel<S>> {
    let RequestTarget::Authority(authority) = &head.target else {
        conn.fail(400, "CONNECT needs a host:port target").await;
        return None;
    };
    let target = upstream_addr(authority);
    if let Err(denied) = check_target(&cfg.common, &target) {
        conn.fail(403, &denied.to_string()).await;
        return None;
    }
    let plan = match task_target(user_ctx, &target) {
        Ok(p) => p,
        Err(refused) => {
            conn.fail(refused.http_status(), &refused.to_string()).await;
            return None;
        }
    };
    conn.upstream = None;
    let upstream = match connect_raw(cfg, &plan, &conn.info).await {
        Ok(u) => u,
        Err(e) => {
            let text = format!("cannot connect to {target}: {e}");
            conn.fail(status_for_connect_error(&e), &text).await;
            return None;
        }
    };
    let sent = tokio::time::timeout(REPLY_TIMEOUT, async {
        conn.io.write_all(ESTABLISHED).await?;
        conn.io.flush().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return None;
    }
    let pending = conn.io.buffer().to_vec();
    Some(OpenTunnel {
        client: into_stream(conn.io),
        pending,
        upstream,
        target,
        user_name: plan.user,
    })
}
