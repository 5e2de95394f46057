//! Forwarding one non-CONNECT request and its response.
//!
//! The request must be absolute-form `http://`, or `https://` when `tls_client` is enabled (the
//! origin connection is then TLS, see `tls.rs`); origin-form gets 400, other schemes 501. After
//! the filters (403) and framing checks (400), the head goes out in origin-form without hop-by-hop
//! fields, on the connection kept from the previous request to the same host and port if it is
//! still good, else on a new one. A request without a body that fails on a reused connection
//! before any response byte is retried once on a fresh connection.
//!
//! `Expect: 100-continue` is forwarded: the proxy waits until either the upstream answers (its
//! `100 Continue` is relayed, a final status ends the exchange without the body) or the client
//! stops waiting and sends the body anyway. When the kept upstream is known to speak only HTTP/1.0,
//! the proxy drops the expectation and answers `100 Continue` itself. Other interim responses are
//! relayed to HTTP/1.1 clients. Bodies stream both ways with px-http's `copy_body_with`; a body copy
//! ends when nothing moves for the task idle time.
//!
//! Returns whether the client connection may carry another request.

use std::sync::Arc;

use px_http::{
    BodyFraming, BodyLimits, ConnectionDirective, CopyError, ForwardOptions, HeadError, HeadLimits,
    RequestHead, RequestTarget, ResponseHead, Scheme, Version, copy_body_with, request_framing,
    response_framing, write_request_head, write_response_head,
};
use px_io::idle_guard;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::config::HttpProxyConfig;
use super::conn::{ClientConn, ClientStream, MAX_HEADERS};
use super::reply::{linger_close, status_for_connect_error};
use super::upstream::{Upstream, upstream_addr};
use crate::common::check_target;
use crate::common::user::{TaskTarget, TaskUser, task_target};

/// The interim response the proxy sends itself for an HTTP/1.0 upstream.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A completed exchange: which connections may carry another request.
struct Done {
    /// The client connection.
    client_keep: bool,
    /// The upstream connection.
    upstream_keep: bool,
}

/// How an exchange on one upstream connection ended before the final response head.
enum Failure {
    /// Reply to the client with this status and text, then close.
    Reply(u16, String),
    /// Close the client connection without a reply (it failed, or a reply is impossible).
    Close,
    /// A reused upstream connection failed before any response byte: retry on a new one.
    Retry,
}

/// Forwards one request; returns whether the client connection stays open.
pub(crate) async fn forward<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: &mut ClientConn<S>,
    mut head: RequestHead,
    user: Option<&TaskUser>,
) -> bool {
    let RequestTarget::Absolute(uri) = &mut head.target else {
        conn.fail(400, "a proxy request needs an absolute http:// URI")
            .await;
        return false;
    };
    // https:// goes out over TLS when tls_client is enabled (see tls.rs)
    let tls = uri.scheme == Scheme::Https && cfg.tls.client.is_some();
    if uri.scheme != Scheme::Http && !tls {
        let text = format!("forwarding {}:// is not implemented", uri.scheme.as_str());
        conn.fail(501, &text).await;
        return false;
    }
    let target = upstream_addr(&uri.authority);
    if cfg.drop_default_port_in_host {
        drop_default_port(uri);
    }
    if !cfg.allow_custom_host {
        let same = head.headers.get("host").is_none_or(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| px_http::Authority::parse(h, Some(80)).ok())
                .is_some_and(|a| upstream_addr(&a).host == target.host)
        });
        if !same {
            conn.fail(400, "Host header does not match the request target")
                .await;
            return false;
        }
    }
    let req_framing = match request_framing(&head) {
        Ok(f) => f,
        Err(e) => {
            conn.fail(400, &e.to_string()).await;
            return false;
        }
    };
    if let Err(denied) = check_target(&cfg.common, &target) {
        conn.fail(403, &denied.to_string()).await;
        return false;
    }
    let target = match task_target(user.map(|u| &u.ctx), &target) {
        Ok(plan) => plan,
        Err(refused) => {
            conn.fail(refused.http_status(), &refused.to_string()).await;
            return false;
        }
    };
    if cfg.steal_forwarded_for {
        head.headers.remove("forwarded");
        head.headers.remove("x-forwarded-for");
    }

    let mut retried = false;
    loop {
        let mut up = match take_upstream(cfg, conn, &target, tls).await {
            Ok(up) => up,
            Err((status, text)) => {
                conn.fail(status, &text).await;
                return false;
            }
        };
        match exchange(cfg, conn, &mut up, &head, req_framing).await {
            Ok(done) => {
                if done.upstream_keep {
                    conn.upstream = Some(up);
                }
                if !done.client_keep {
                    linger_close(&mut conn.io).await;
                }
                return done.client_keep;
            }
            Err(Failure::Retry) if !retried => {
                log::debug!(
                    "http_proxy: kept connection to {} failed, retrying",
                    target.requested
                );
                retried = true;
            }
            Err(Failure::Retry) => {
                conn.fail(502, "upstream closed the connection").await;
                return false;
            }
            Err(Failure::Reply(status, text)) => {
                conn.fail(status, &text).await;
                return false;
            }
            Err(Failure::Close) => return false,
        }
    }
}

/// Removes `:80` from the `Host` value forwarded for an `http://` URI.
fn drop_default_port(uri: &mut px_http::AbsoluteUri) {
    let suffix = format!(":{}", uri.authority.port);
    if Some(uri.authority.port) == uri.scheme.default_port() && uri.host_text.ends_with(&suffix) {
        uri.host_text.truncate(uri.host_text.len() - suffix.len());
    }
}

/// The kept upstream connection if it fits and is still good, else a new one.
async fn take_upstream<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: &mut ClientConn<S>,
    target: &TaskTarget,
    tls: bool,
) -> Result<Upstream, (u16, String)> {
    if let Some(mut up) = conn.upstream.take()
        && up.addr == target.requested
        && up.tls == tls
        && up.user == target.user
        && up.usable(cfg.upstream_keepalive.idle_expire).await
    {
        up.reused = true;
        return Ok(up);
    }
    Upstream::connect(cfg, target, &conn.info, &conn.activity, tls)
        .await
        .map_err(|e| {
            let text = format!("cannot connect to {}: {e}", target.requested);
            (status_for_connect_error(&e), text)
        })
}

/// Runs one request/response exchange on `up`.
async fn exchange<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: &mut ClientConn<S>,
    up: &mut Upstream,
    head: &RequestHead,
    req_framing: BodyFraming,
) -> Result<Done, Failure> {
    let can_retry = up.reused && req_framing == BodyFraming::Empty;
    let expect = head.expects_continue() && req_framing != BodyFraming::Empty;
    let answer_continue_ourselves = expect && up.version == Some(Version::Http10);

    let mut out = Vec::with_capacity(1024);
    let opts = ForwardOptions {
        absolute_form: false,
        connection: if cfg.upstream_keepalive.enable && head.keep_alive() {
            ConnectionDirective::KeepAlive
        } else {
            ConnectionDirective::Close
        },
        keep_upgrade: false,
    };
    if answer_continue_ourselves {
        let mut head = head.clone();
        head.headers.remove("expect");
        write_request_head(&head, &opts, &mut out);
    } else {
        write_request_head(head, &opts, &mut out);
    }
    let up_io = &mut up.io;
    let sent = idle_guard(&conn.activity, cfg.task_idle_timeout, async {
        up_io.write_all(&out).await?;
        up_io.flush().await
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(_)) | Err(_) if can_retry => return Err(Failure::Retry),
        Ok(Err(e)) => return Err(Failure::Reply(502, format!("upstream write failed: {e}"))),
        Err(_) => return Err(Failure::Reply(504, "upstream stalled".into())),
    }
    let limits = BodyLimits {
        max_line: cfg.body_line_max_length,
        ..BodyLimits::default()
    };

    let mut body_sent = req_framing == BodyFraming::Empty;
    if answer_continue_ourselves {
        send_to_client(cfg, conn, CONTINUE).await?;
        send_body(cfg, conn, up, req_framing, &limits).await?;
        body_sent = true;
    } else if expect {
        let waited = tokio::time::timeout(cfg.rsp_header_recv_timeout, async {
            tokio::select! {
                biased;
                _ = up.io.fill_buf() => false,
                _ = conn.io.fill_buf() => true,
            }
        })
        .await;
        match waited {
            Ok(true) => {
                send_body(cfg, conn, up, req_framing, &limits).await?;
                body_sent = true;
            }
            Ok(false) => {}
            Err(_) => {
                return Err(Failure::Reply(
                    504,
                    "no response from upstream in time".into(),
                ));
            }
        }
    } else if !body_sent {
        send_body(cfg, conn, up, req_framing, &limits).await?;
        body_sent = true;
    }

    let rsp_limits = HeadLimits {
        max_size: cfg.rsp_header_max_size,
        max_headers: MAX_HEADERS,
    };
    let deadline = Instant::now() + cfg.rsp_header_recv_timeout;
    let rsp = loop {
        let read =
            tokio::time::timeout_at(deadline, ResponseHead::read(&mut up.io, &rsp_limits)).await;
        let rsp = match read {
            Ok(Ok(rsp)) => rsp,
            Ok(Err(HeadError::Closed | HeadError::Io(_))) if can_retry => {
                return Err(Failure::Retry);
            }
            Ok(Err(HeadError::Closed)) => {
                return Err(Failure::Reply(502, "upstream closed the connection".into()));
            }
            Ok(Err(HeadError::Io(e))) => {
                return Err(Failure::Reply(502, format!("upstream read failed: {e}")));
            }
            Ok(Err(e)) => {
                return Err(Failure::Reply(
                    502,
                    format!("invalid upstream response: {e}"),
                ));
            }
            Err(_) => {
                return Err(Failure::Reply(
                    504,
                    "no response from upstream in time".into(),
                ));
            }
        };
        if !rsp.is_interim() {
            break rsp;
        }
        if head.version == Version::Http11 {
            let mut interim = Vec::with_capacity(256);
            let opts = ForwardOptions {
                connection: ConnectionDirective::Omit,
                ..ForwardOptions::default()
            };
            write_response_head(&rsp, &opts, &mut interim);
            send_to_client(cfg, conn, &interim).await?;
        }
        if rsp.status == 100 && !body_sent {
            send_body(cfg, conn, up, req_framing, &limits).await?;
            body_sent = true;
        }
    };

    let rsp_framing = match response_framing(&head.method, &rsp) {
        Ok(BodyFraming::Tunnel) => {
            return Err(Failure::Reply(502, "upstream switched protocols".into()));
        }
        Ok(f) => f,
        Err(e) => {
            return Err(Failure::Reply(
                502,
                format!("invalid upstream response: {e}"),
            ));
        }
    };
    let mut client_keep = head.keep_alive() && body_sent && rsp_framing != BodyFraming::UntilClose;
    if head.version == Version::Http10 && rsp_framing == BodyFraming::Chunked {
        client_keep = false;
    }
    let up_keep = cfg.upstream_keepalive.enable
        && rsp.keep_alive()
        && body_sent
        && rsp_framing != BodyFraming::UntilClose;

    let mut out = Vec::with_capacity(1024);
    let opts = ForwardOptions {
        connection: if client_keep {
            ConnectionDirective::KeepAlive
        } else {
            ConnectionDirective::Close
        },
        ..ForwardOptions::default()
    };
    write_response_head(&rsp, &opts, &mut out);
    send_to_client(cfg, conn, &out).await?;
    let activity = Arc::clone(&conn.activity);
    let copy = copy_body_with(
        &mut up.io,
        &mut conn.io,
        rsp_framing,
        &mut conn.scratch,
        &limits,
    );
    let copied = idle_guard(&activity, cfg.task_idle_timeout, copy).await;
    match copied {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            log::debug!("http_proxy: response body from {}: {e}", up.addr);
            return Err(Failure::Close);
        }
        Err(_) => return Err(Failure::Close),
    }
    if up_keep {
        up.idle_since = Instant::now();
        up.version = Some(rsp.version);
    }
    Ok(Done {
        client_keep,
        upstream_keep: up_keep,
    })
}

/// Writes bytes to the client and flushes them.
async fn send_to_client<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: &mut ClientConn<S>,
    data: &[u8],
) -> Result<(), Failure> {
    let activity = Arc::clone(&conn.activity);
    let io = &mut conn.io;
    let sent = idle_guard(&activity, cfg.task_idle_timeout, async {
        io.write_all(data).await?;
        io.flush().await
    })
    .await;
    match sent {
        Ok(Ok(())) => Ok(()),
        _ => Err(Failure::Close),
    }
}

/// Copies the request body from the client to the upstream.
async fn send_body<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: &mut ClientConn<S>,
    up: &mut Upstream,
    framing: BodyFraming,
    limits: &BodyLimits,
) -> Result<(), Failure> {
    let activity = Arc::clone(&conn.activity);
    let copy = copy_body_with(&mut conn.io, &mut up.io, framing, &mut conn.scratch, limits);
    match idle_guard(&activity, cfg.task_idle_timeout, copy).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(CopyError::Chunked(e))) => {
            Err(Failure::Reply(400, format!("invalid request body: {e}")))
        }
        Ok(Err(CopyError::Write(e))) => {
            Err(Failure::Reply(502, format!("upstream write failed: {e}")))
        }
        Ok(Err(CopyError::Read(_) | CopyError::UnexpectedEof)) => Err(Failure::Close),
        Err(_) => Err(Failure::Reply(408, "request body stalled".into())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn uri(s: &str) -> px_http::AbsoluteUri {
        match RequestTarget::parse(&px_http::Method::Get, s).unwrap() {
            RequestTarget::Absolute(u) => u,
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn default_port_is_dropped_from_host() {
        for (from, to) in [
            ("http://a.example:80/", "a.example"),
            ("http://[::1]:80/", "[::1]"),
            ("http://a.example:8080/", "a.example:8080"),
            ("http://a.example/", "a.example"),
        ] {
            let mut u = uri(from);
            drop_default_port(&mut u);
            assert_eq!(u.host_text, to);
        }
    }
}
