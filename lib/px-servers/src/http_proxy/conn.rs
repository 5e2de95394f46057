//! One client connection: read requests one after another and hand each to its handler.
//!
//! The first byte of a request is awaited for `req_header_recv_timeout` on a fresh connection and
//! `pipeline_read_idle_timeout` between keep-alive requests; from the first byte on, the whole
//! head must arrive within `req_header_recv_timeout` (408 otherwise) and fit
//! `req_header_max_size` (431 otherwise). A client refused by `ingress_network_filter` gets 403 for
//! its first request. CONNECT turns the connection into a tunnel; any other method is forwarded,
//! and the loop goes on while both the client and the exchange allow keep-alive.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use px_core::ClientInfo;
use px_http::{HeadError, HeadLimits, Method, RequestHead};
use px_io::Side;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite};

use super::config::HttpProxyConfig;
use super::io::{HEAD_BUFFER_SIZE, Io, buffered, take_counts};
use super::reply::{fail_and_close, linger_close};
use super::upstream::Upstream;
use super::{auth, connect, forward};
use crate::common::stats::{fold_tcp, start_task};

/// Most header fields accepted in one request or response head.
pub(crate) const MAX_HEADERS: usize = 512;

/// What a client stream must be.
pub(crate) trait ClientStream:
    AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static
{
}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> ClientStream for T {}

/// The state of one client connection.
pub(crate) struct ClientConn<S> {
    /// The client stream, buffered both ways.
    pub(crate) io: Io<S>,
    /// Who the client is.
    pub(crate) info: ClientInfo,
    /// Bytes moved on either side of this connection, for idle detection.
    pub(crate) activity: Arc<AtomicU64>,
    /// The upstream connection kept from the previous request.
    pub(crate) upstream: Option<Upstream>,
    /// Scratch space for chunked-body lines, reused across requests.
    pub(crate) scratch: Vec<u8>,
}

impl<S: ClientStream> ClientConn<S> {
    /// Replies with an error and closes the connection.
    pub(crate) async fn fail(&mut self, status: u16, text: &str) {
        log::debug!(
            "http_proxy: client {} answered {status}: {text}",
            self.info.peer_addr
        );
        fail_and_close(&mut self.io, status, text).await;
    }
}

/// Serves one client connection until it closes.
pub(crate) async fn serve<S: ClientStream>(cfg: Arc<HttpProxyConfig>, stream: S, info: ClientInfo) {
    let activity = Arc::new(AtomicU64::new(0));
    // upload limits what the client sends us, download what we send it
    let io = buffered(
        stream,
        Side::Client,
        cfg.common.tcp_sock_speed_limit,
        &activity,
        HEAD_BUFFER_SIZE,
    );
    let mut conn = ClientConn {
        io,
        info,
        activity,
        upstream: None,
        scratch: Vec::new(),
    };
    let allowed = cfg.common.ingress_allowed(info.peer_addr.ip());
    let limits = HeadLimits {
        max_size: cfg.req_header_max_size,
        max_headers: MAX_HEADERS,
    };
    let mut served = 0u64;
    // the user whose tcp_conn_rate_limit already counts this connection
    let mut counted_user: Option<Arc<str>> = None;
    loop {
        let wait = if served == 0 {
            cfg.req_header_recv_timeout
        } else {
            cfg.pipeline_read_idle_timeout
        };
        match tokio::time::timeout(wait, conn.io.fill_buf()).await {
            Ok(Ok(b)) if !b.is_empty() => {}
            Ok(_) => return,
            Err(_) if served == 0 => {
                return conn.fail(408, "no request received in time").await;
            }
            Err(_) => return linger_close(&mut conn.io).await,
        }
        let read = RequestHead::read(&mut conn.io, &limits);
        let head = match tokio::time::timeout(cfg.req_header_recv_timeout, read).await {
            Ok(Ok(head)) => head,
            Ok(Err(HeadError::Closed)) => return,
            Ok(Err(e)) => {
                if let Some(status) = e.status_code() {
                    conn.fail(status, &e.to_string()).await;
                }
                return;
            }
            Err(_) => return conn.fail(408, "request head not received in time").await,
        };
        if !allowed {
            return conn.fail(403, "client address not allowed").await;
        }
        served += 1;
        let Ok(user) = auth::authenticate(&cfg, &mut conn, &head, &mut counted_user).await else {
            return;
        };
        let user_ctx = user.as_ref().map(|u| &u.ctx);
        let _task = start_task(&cfg.common.stats, user_ctx, served == 1);
        if head.method == Method::Connect {
            // the head's bytes now, the tunnel's when it ends
            let (read, written) = take_counts(&mut conn.io);
            fold_tcp(&cfg.common.stats, user_ctx, read, written);
            return Box::pin(connect::tunnel(&cfg, conn, head, user)).await;
        }
        // boxed, like the tunnel: their states would otherwise make this future (which lives
        // as long as the connection) as large as the largest of them
        let keep = Box::pin(forward::forward(&cfg, &mut conn, head, user.as_ref())).await;
        let (read, written) = take_counts(&mut conn.io);
        fold_tcp(&cfg.common.stats, user_ctx, read, written);
        if !keep {
            return;
        }
    }
}
