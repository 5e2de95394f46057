//! Proxy authentication of `http_proxy` (when the server has a `user_group`).
//!
//! Every request is authenticated on its own `Proxy-Authorization: Basic` value (the client
//! may change credentials between keep-alive requests); a request without one gets the group's
//! anonymous user, if any. Outcomes:
//!
//! - no usable credentials (none, malformed, unknown user, wrong password): `407 Proxy
//!   Authentication Required` with `Proxy-Authenticate: Basic realm="<auth_realm>"`, and the
//!   connection closes;
//! - a user refused (`block_and_delay`, expired, the user's `ingress_network_filter`): `403`
//!   with the reason, sent after the user's `block_and_delay`;
//! - a user over a limit: `429` (`tcp_conn_rate_limit`, counted once per client connection and
//!   user; `request_rate_limit`; `request_max_alive`) with the reason.
//!
//! `auth_realm` (default `proxy`) is the realm of the challenge.

use std::sync::Arc;

use px_core::{AuthResult, ChallengeReason, UserGroup};
use px_http::RequestHead;
use px_yaml::{ConfigError, MapReader};
use tokio::io::AsyncWriteExt;

use super::config::HttpProxyConfig;
use super::conn::{ClientConn, ClientStream};
use super::reply::linger_close;
use crate::common::user::{TaskUser, parse_basic};

/// Reads `auth_realm` (default `proxy`).
pub(crate) fn parse_realm(map: &mut MapReader<'_>) -> Result<String, ConfigError> {
    let Some(v) = map.get("auth_realm") else {
        return Ok("proxy".to_string());
    };
    let realm = v.as_text()?;
    if realm.is_empty()
        || realm
            .bytes()
            .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
    {
        return Err(v.err("auth_realm must be non-empty text without quotes or backslashes"));
    }
    Ok(realm)
}

/// Sends the 407 challenge and closes.
async fn challenge<S: ClientStream>(cfg: &HttpProxyConfig, conn: &mut ClientConn<S>, why: &str) {
    log::debug!(
        "http_proxy {}: client {} challenged: {why}",
        cfg.common.name,
        conn.info.peer_addr
    );
    let body = format!("{why}\n");
    let msg = format!(
        "HTTP/1.1 407 Proxy Authentication Required\r\n\
         Proxy-Authenticate: Basic realm=\"{}\"\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        cfg.auth_realm,
        body.len()
    );
    let sent = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        conn.io.write_all(msg.as_bytes()).await?;
        conn.io.flush().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        linger_close(&mut conn.io).await;
    }
}

/// Authenticates one request. `Ok(None)`: the server has no user group. `Err(())`: the client
/// was answered (407 / 403 / 429) and the connection is closed. `counted` is the user whose
/// connection count already includes this client connection.
pub(crate) async fn authenticate<S: ClientStream>(
    cfg: &HttpProxyConfig,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
    counted: &mut Option<Arc<str>>,
) -> Result<Option<TaskUser>, ()> {
    let Some(handle) = &cfg.common.user_group else {
        return Ok(None);
    };
    let group: Arc<dyn UserGroup> = handle.get();
    let result = match head.proxy_authorization() {
        Some(v) => match parse_basic(v) {
            Some(creds) => group.authenticate(&creds, &conn.info).await,
            None => AuthResult::Challenge(ChallengeReason::Malformed),
        },
        None => group.anonymous(&conn.info),
    };
    let ctx = match result {
        AuthResult::Ok(ctx) => ctx,
        AuthResult::Challenge(why) => {
            cfg.common.stats.add_auth_failed();
            challenge(cfg, conn, &why.to_string()).await;
            return Err(());
        }
        AuthResult::Denied(d) => {
            log::info!(
                "http_proxy {}: user {} from {} refused: {}",
                cfg.common.name,
                d.user,
                conn.info.peer_addr,
                d.reason
            );
            if !d.delay.is_zero() {
                tokio::time::sleep(d.delay).await;
            }
            conn.fail(403, &d.reason.to_string()).await;
            return Err(());
        }
    };
    let new_conn = counted.as_deref() != Some(&*ctx.name);
    let name = Arc::clone(&ctx.name);
    match TaskUser::admit(ctx, new_conn) {
        Ok(u) => {
            *counted = Some(name);
            Ok(Some(u))
        }
        Err(refusal) => {
            log::debug!(
                "http_proxy {}: user {name} from {}: {refusal}",
                cfg.common.name,
                conn.info.peer_addr
            );
            conn.fail(refusal.http_status(), &refusal.to_string()).await;
            Err(())
        }
    }
}
