//! One stream task: pick an upstream (falling over to the next on a failed connect), wrap it in
//! TLS (or TLCP) when `tls_client` is set, and relay with px-io.

use std::time::Duration;

use px_core::{ClientInfo, ConnectError, TcpConnectRequest, UpstreamConn};
use px_io::RelayOpts;
use tokio::io::{AsyncRead, AsyncWrite};

use super::config::StreamConfig;
use crate::common::check_target;
use crate::common::pick::client_key;

/// Upper bound on one connect through the escaper, over its own timeouts.
const CONNECT_GUARD: Duration = Duration::from_secs(60);

/// Whether a connect error says the upstream itself is unusable now.
fn upstream_down(e: &ConnectError) -> bool {
    matches!(
        e,
        ConnectError::Refused
            | ConnectError::TimedOut
            | ConnectError::HostUnreachable
            | ConnectError::NetworkUnreachable
            | ConnectError::Resolve(_)
            | ConnectError::Io(_)
    )
}

/// Connects to the first upstream that answers, in the picker's order.
pub(crate) async fn connect(
    cfg: &StreamConfig,
    kind: &str,
    client: &ClientInfo,
) -> Option<(UpstreamConn, usize)> {
    let key = client_key(client.peer_addr.ip(), client.local_addr.ip());
    let escaper = cfg.common.escaper.get();
    for idx in cfg.upstreams.order(key) {
        let Some(target) = cfg.upstreams.get(idx) else {
            continue;
        };
        if let Err(denied) = check_target(&cfg.common, target) {
            log::debug!("{kind} {}: {denied}", cfg.common.name);
            continue;
        }
        let req = TcpConnectRequest {
            target: target.clone(),
            client_addr: client.peer_addr,
            resolve_strategy: None,
        };
        match tokio::time::timeout(CONNECT_GUARD, escaper.connect_tcp(&req)).await {
            Ok(Ok(conn)) => {
                cfg.upstreams.mark_up(idx);
                return Some((conn, idx));
            }
            Ok(Err(e)) => {
                log::info!(
                    "{kind} {}: upstream {target} for {}: {e}",
                    cfg.common.name,
                    client.peer_addr
                );
                if upstream_down(&e) {
                    cfg.upstreams.mark_down(idx);
                }
            }
            Err(_) => {
                log::info!(
                    "{kind} {}: upstream {target}: connect timed out",
                    cfg.common.name
                );
                cfg.upstreams.mark_down(idx);
            }
        }
    }
    None
}

/// Serves one client stream until the relay ends.
pub(crate) async fn serve<S>(cfg: &StreamConfig, kind: &str, mut stream: S, client: ClientInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    cfg.common.stats.add_connection();
    if !cfg.common.ingress_allowed(client.peer_addr.ip()) {
        log::debug!(
            "{kind} {}: client {} refused by ingress_network_filter",
            cfg.common.name,
            client.peer_addr
        );
        return;
    }
    let _task = cfg.common.stats.task();
    let Some((mut conn, idx)) = connect(cfg, kind, &client).await else {
        log::info!(
            "{kind} {}: no upstream reachable for {}",
            cfg.common.name,
            client.peer_addr
        );
        return;
    };
    let Some(target) = cfg.upstreams.get(idx) else {
        return;
    };
    if let Some(tls) = &cfg.tls_client {
        let name = cfg.upstream_tls_name.as_ref().unwrap_or(&target.host);
        conn = match tls.connect_upstream(conn, name).await {
            Ok(c) => c,
            Err(e) => {
                log::info!(
                    "{kind} {}: {} to upstream {target} (as {name}) failed: {e}",
                    cfg.common.name,
                    tls.protocol()
                );
                return;
            }
        };
    }
    let opts = RelayOpts {
        buf_size: cfg.keys.buf_size,
        idle_timeout: Some(cfg.keys.idle_timeout),
        client_limit: cfg.common.tcp_sock_speed_limit,
        ..Default::default()
    };
    let peer = conn.peer_addr;
    let outcome = px_io::relay_upstream(&mut stream, &mut conn, b"", b"", &opts).await;
    crate::common::stats::fold_relay(&cfg.common.stats, None, &outcome);
    log::debug!(
        "{kind} {}: {} -> {target} ({peer}) ended: {}, up {} down {} ({:?})",
        cfg.common.name,
        client.peer_addr,
        outcome.end.reason(),
        outcome.up_bytes,
        outcome.down_bytes,
        outcome.path
    );
}
