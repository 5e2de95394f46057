//! CONNECT tasks (SOCKS4, 4a and 5): policy, escaper connect, reply, relay.
//!
//! The relay is px-io's: the server's `tcp_sock_speed_limit` on the client side, the escaper's
//! limit (carried by the `UpstreamConn`) on the upstream side, the stricter winning each way;
//! `tcp_copy_buffer_size` per direction; the task idle time (`task_idle_check_interval` ×
//! `task_idle_max_count`); half-close. Bytes the client sent right behind its request are
//! forwarded first. A plain TCP client with no limit either way takes px-io's zero-copy path.
//!
//! SOCKS5 reply codes: 0x02 when `dst_host_filter_set`, `dst_port_filter` or the escaper's egress
//! filter refuses the target, 0x03 network unreachable, 0x04 host unreachable (also a failed or
//! invalid name), 0x05 refused, 0x06 connect timeout, 0x07 unsupported by the escaper, 0x01 anything
//! else. SOCKS4 answers 0x5B for every failure.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use px_core::{ConnectError, Host, ResolveError, UpstreamAddr, UpstreamConn, UserCtx};
use px_io::{RelayOpts, RelayOutcome};
use px_socks::{Socks4Reply, Socks5Reply, SocksAddr};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use super::config::SocksProxyConfig;
use super::negotiate::SOCKS4_UNSPECIFIED;
use crate::common::check_target;
use crate::common::stats::fold_relay;
use crate::common::user::{TaskUser, client_limit, task_target};
use px_core::ClientInfo;

/// Upper bound on an escaper's connect, over its own timeouts.
pub(crate) const CONNECT_GUARD: Duration = Duration::from_secs(120);

/// The SOCKS5 reply for a failed connect.
pub(crate) fn reply_for(e: &ConnectError) -> Socks5Reply {
    match e {
        ConnectError::ForbiddenIp(_)
        | ConnectError::Forbidden(_)
        | ConnectError::Resolve(ResolveError::Refused) => Socks5Reply::NotAllowed,
        ConnectError::Resolve(_) | ConnectError::HostUnreachable => Socks5Reply::HostUnreachable,
        ConnectError::NetworkUnreachable => Socks5Reply::NetworkUnreachable,
        ConnectError::Refused => Socks5Reply::ConnectionRefused,
        ConnectError::TimedOut => Socks5Reply::TtlExpired,
        ConnectError::Unsupported(_) => Socks5Reply::CommandNotSupported,
        ConnectError::Io(_) => Socks5Reply::GeneralFailure,
    }
}

/// The target as px-core sees it; `None` for a domain that is not a valid host name.
pub(crate) fn upstream_of(a: &SocksAddr) -> Option<UpstreamAddr> {
    match a {
        SocksAddr::Ip(sa) => Some(UpstreamAddr::new(
            Host::Ip(sa.ip().to_canonical()),
            sa.port(),
        )),
        SocksAddr::Domain(d, port) => Host::parse(d).map(|h| UpstreamAddr::new(h, *port)),
    }
}

/// Checks the target and connects through the escaper, mapping every failure to a reply.
async fn open(
    cfg: &SocksProxyConfig,
    client: &ClientInfo,
    target: &SocksAddr,
    user: Option<&UserCtx>,
) -> Result<UpstreamConn, Socks5Reply> {
    let Some(upstream) = upstream_of(target) else {
        log::debug!("socks {}: invalid target host {target}", cfg.common.name);
        return Err(Socks5Reply::HostUnreachable);
    };
    if let Err(denied) = check_target(&cfg.common, &upstream) {
        log::debug!("socks {}: {denied}", cfg.common.name);
        return Err(Socks5Reply::NotAllowed);
    }
    let req = match task_target(user, &upstream) {
        Ok(plan) => plan.request(client.peer_addr),
        Err(refused) => {
            log::debug!("socks {}: {refused}", cfg.common.name);
            return Err(Socks5Reply::NotAllowed);
        }
    };
    let escaper = cfg.common.escaper.get();
    match tokio::time::timeout(CONNECT_GUARD, escaper.connect_tcp(&req)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            log::debug!("socks {}: connect to {target} failed: {e}", cfg.common.name);
            Err(reply_for(&e))
        }
        Err(_) => Err(Socks5Reply::TtlExpired),
    }
}

/// Relays the client (its handshake reader unwrapped, read-ahead bytes sent first) and the
/// upstream with px-io until both close, one fails, or the task idles out.
async fn relay<S>(
    cfg: &SocksProxyConfig,
    stream: BufReader<S>,
    mut conn: UpstreamConn,
    user: Option<&UserCtx>,
) -> RelayOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let pending = stream.buffer().to_vec();
    let mut client = stream.into_inner();
    let opts = RelayOpts {
        buf_size: cfg.tcp_copy_buffer_size,
        idle_timeout: Some(cfg.idle_timeout()),
        client_limit: client_limit(cfg.common.tcp_sock_speed_limit, user),
        ..Default::default()
    };
    let outcome = px_io::relay_upstream(&mut client, &mut conn, &pending, b"", &opts).await;
    fold_relay(&cfg.common.stats, user, &outcome);
    outcome
}

/// Serves a SOCKS5 CONNECT whose request has been read.
pub(crate) async fn serve_socks5<S>(
    cfg: &SocksProxyConfig,
    mut stream: BufReader<S>,
    client: ClientInfo,
    target: SocksAddr,
    user: Option<TaskUser>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let user_ctx = user.as_ref().map(|u| &u.ctx);
    // boxed: the connect state is freed before the relay, which may idle for long
    let conn = match Box::pin(open(cfg, &client, &target, user_ctx)).await {
        Ok(c) => c,
        Err(code) => {
            let _ = tokio::time::timeout(
                cfg.negotiation_timeout,
                code.write(&mut stream, &SocksAddr::unspecified()),
            )
            .await;
            return;
        }
    };
    let bound = SocksAddr::Ip(SocketAddr::new(
        conn.local_addr.ip().to_canonical(),
        conn.local_addr.port(),
    ));
    let sent = tokio::time::timeout(
        cfg.negotiation_timeout,
        Socks5Reply::Succeeded.write(&mut stream, &bound),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let peer = conn.peer_addr;
    let outcome = relay(cfg, stream, conn, user_ctx).await;
    log::debug!(
        "socks {}: {} -> {target} ({peer}) ended: {}, up {} down {} ({:?})",
        cfg.common.name,
        client.peer_addr,
        outcome.end.reason(),
        outcome.up_bytes,
        outcome.down_bytes,
        outcome.path
    );
}

/// Serves a SOCKS4 or 4a CONNECT whose request has been read.
pub(crate) async fn serve_socks4<S>(
    cfg: &SocksProxyConfig,
    mut stream: BufReader<S>,
    client: ClientInfo,
    target: SocksAddr,
    user: Option<TaskUser>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let user_ctx = user.as_ref().map(|u| &u.ctx);
    // boxed: the connect state is freed before the relay, which may idle for long
    let conn = match Box::pin(open(cfg, &client, &target, user_ctx)).await {
        Ok(c) => c,
        Err(_) => {
            let _ = tokio::time::timeout(
                cfg.negotiation_timeout,
                Socks4Reply::Rejected.write(&mut stream, SOCKS4_UNSPECIFIED),
            )
            .await;
            return;
        }
    };
    let bound = match conn.local_addr.ip().to_canonical() {
        IpAddr::V4(ip) => SocketAddrV4::new(ip, conn.local_addr.port()),
        IpAddr::V6(_) => SOCKS4_UNSPECIFIED,
    };
    let sent = tokio::time::timeout(
        cfg.negotiation_timeout,
        Socks4Reply::Granted.write(&mut stream, bound),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let outcome = relay(cfg, stream, conn, user_ctx).await;
    log::debug!(
        "socks {}: socks4 {} -> {target} ended: {}, up {} down {} ({:?})",
        cfg.common.name,
        client.peer_addr,
        outcome.end.reason(),
        outcome.up_bytes,
        outcome.down_bytes,
        outcome.path
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_mapping() {
        use std::io;
        let cases = [
            (ConnectError::ForbiddenIp([127, 0, 0, 1].into()), 2),
            (ConnectError::Forbidden("x".into()), 2),
            (ConnectError::Resolve(ResolveError::Refused), 2),
            (ConnectError::NetworkUnreachable, 3),
            (ConnectError::HostUnreachable, 4),
            (ConnectError::Resolve(ResolveError::NotFound("x".into())), 4),
            (ConnectError::Resolve(ResolveError::Timeout), 4),
            (ConnectError::Refused, 5),
            (ConnectError::TimedOut, 6),
            (ConnectError::Unsupported("x"), 7),
            (ConnectError::Io(io::Error::other("x")), 1),
        ];
        for (e, code) in cases {
            assert_eq!(reply_for(&e) as u8, code, "{e}");
        }
    }

    #[test]
    fn targets() {
        let up = |s: SocksAddr| upstream_of(&s).map(|u| u.to_string());
        assert_eq!(
            up(SocksAddr::Domain("Example.COM".into(), 80)).as_deref(),
            Some("example.com:80")
        );
        assert_eq!(
            up(SocksAddr::Domain("10.1.2.3".into(), 80)).as_deref(),
            Some("10.1.2.3:80")
        );
        assert_eq!(up(SocksAddr::Domain("bad host".into(), 80)), None);
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:22"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(up(SocksAddr::Ip(mapped)).as_deref(), Some("10.0.0.1:22"));
    }
}
