//! Authentication of `socks_proxy` (when the server has a `user_group`).
//!
//! SOCKS5: a client offering username/password (0x02) gets it selected and its RFC 1929
//! credentials are checked: status 0x00 on success, 0x01 (then close) for wrong or unknown
//! credentials, and also for a refused user (blocked, expired, client address), sent after the
//! user's `block_and_delay`. A client offering only "no authentication" (0x00) is served as the
//! group's anonymous user when there is one; otherwise the selection is 0xFF and the connection
//! closes.
//!
//! SOCKS4 has no password exchange. With `socks4_user_id_auth: true` the request's USERID field
//! is read as `username:password` and checked like SOCKS5 credentials (0x5D when they do not
//! pass, 0x5B for a refused user); without it, SOCKS4 clients get the anonymous user, or 0x5B.
//!
//! After the request is read, [`admit`] counts the connection and the request against the
//! user's `tcp_conn_rate_limit`, `request_rate_limit` and `request_max_alive`; a refusal is
//! answered 0x02 (SOCKS5) or 0x5B (SOCKS4).

use px_core::{AuthResult, ClientInfo, Credentials, Password, UserCtx, UserGroup, UserRefusal};
use px_socks::{
    AuthMethod, Socks4Reply, Socks4Request, Socks5Greeting, Socks5Reply, SocksAddr, SocksError,
    UserPassRequest, write_user_pass_reply,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::negotiate::{Request, SOCKS4_UNSPECIFIED};
use crate::common::user::TaskUser;

/// What negotiation needs to authenticate.
pub(crate) struct SocksAuth<'a> {
    /// The group.
    pub(crate) group: &'a dyn UserGroup,
    /// The client.
    pub(crate) client: &'a ClientInfo,
    /// `socks4_user_id_auth`.
    pub(crate) socks4_user_id: bool,
}

fn log_refused(auth: &SocksAuth<'_>, who: &str, why: &dyn std::fmt::Display) {
    log::debug!(
        "socks: client {} ({who}) not authenticated: {why}",
        auth.client.peer_addr
    );
}

/// SOCKS5 method selection and sub-negotiation; `None` when the server has no user group.
pub(crate) async fn socks5<S>(
    s: &mut S,
    greeting: &Socks5Greeting,
    auth: Option<&SocksAuth<'_>>,
) -> Result<Option<UserCtx>, SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(auth) = auth else {
        if !greeting.offers(AuthMethod::NoAuth) {
            AuthMethod::NoAcceptable.write_selection(s).await?;
            return Err(SocksError::Malformed(
                "no acceptable authentication method offered",
            ));
        }
        AuthMethod::NoAuth.write_selection(s).await?;
        return Ok(None);
    };
    if greeting.offers(AuthMethod::UserPass) {
        AuthMethod::UserPass.write_selection(s).await?;
        let req = UserPassRequest::read(s).await?;
        let result = match req.username_str() {
            Some(name) => {
                let creds = Credentials {
                    username: name.to_string(),
                    password: Password::new(req.password.clone()),
                };
                auth.group.authenticate(&creds, auth.client).await
            }
            None => AuthResult::Challenge(px_core::ChallengeReason::Malformed),
        };
        return match result {
            AuthResult::Ok(u) => {
                write_user_pass_reply(s, true).await?;
                Ok(Some(u))
            }
            AuthResult::Challenge(why) => {
                log_refused(auth, &String::from_utf8_lossy(&req.username), &why);
                let _ = write_user_pass_reply(s, false).await;
                Err(SocksError::Malformed("authentication failed"))
            }
            AuthResult::Denied(d) => {
                log::info!(
                    "socks: user {} from {} refused: {}",
                    d.user,
                    auth.client.peer_addr,
                    d.reason
                );
                if !d.delay.is_zero() {
                    tokio::time::sleep(d.delay).await;
                }
                let _ = write_user_pass_reply(s, false).await;
                Err(SocksError::Malformed("user refused"))
            }
        };
    }
    if greeting.offers(AuthMethod::NoAuth)
        && let AuthResult::Ok(u) = auth.group.anonymous(auth.client)
    {
        AuthMethod::NoAuth.write_selection(s).await?;
        return Ok(Some(u));
    }
    AuthMethod::NoAcceptable.write_selection(s).await?;
    Err(SocksError::Malformed(
        "no acceptable authentication method offered",
    ))
}

/// SOCKS4 user check; on failure the SOCKS4 reply is sent here.
pub(crate) async fn socks4<S>(
    s: &mut S,
    req: &Socks4Request,
    auth: Option<&SocksAuth<'_>>,
) -> Result<Option<UserCtx>, SocksError>
where
    S: AsyncWrite + Unpin,
{
    let Some(auth) = auth else {
        return Ok(None);
    };
    let result = if auth.socks4_user_id {
        let id = String::from_utf8_lossy(&req.user_id);
        match id.split_once(':') {
            Some((u, p)) => {
                let creds = Credentials {
                    username: u.to_string(),
                    password: Password::new(p.as_bytes()),
                };
                auth.group.authenticate(&creds, auth.client).await
            }
            None => AuthResult::Challenge(px_core::ChallengeReason::Malformed),
        }
    } else {
        auth.group.anonymous(auth.client)
    };
    let code = match result {
        AuthResult::Ok(u) => return Ok(Some(u)),
        AuthResult::Challenge(why) => {
            log_refused(auth, "socks4", &why);
            Socks4Reply::IdentdMismatch
        }
        AuthResult::Denied(d) => {
            log::info!(
                "socks: user {} from {} refused: {}",
                d.user,
                auth.client.peer_addr,
                d.reason
            );
            if !d.delay.is_zero() {
                tokio::time::sleep(d.delay).await;
            }
            Socks4Reply::Rejected
        }
    };
    let _ = code.write(s, SOCKS4_UNSPECIFIED).await;
    Err(SocksError::Malformed("socks4 user not accepted"))
}

/// Counts the connection and the request for the user; on a refusal, replies and gives `Err`.
pub(crate) async fn admit<S>(
    stream: &mut S,
    request: &Request,
    user: Option<UserCtx>,
    timeout: std::time::Duration,
) -> Result<Option<TaskUser>, UserRefusal>
where
    S: AsyncWrite + Unpin,
{
    let Some(ctx) = user else {
        return Ok(None);
    };
    let name = ctx.name.clone();
    match TaskUser::admit(ctx, true) {
        Ok(u) => Ok(Some(u)),
        Err(refusal) => {
            log::debug!("socks: user {name}: {refusal}");
            let _ = tokio::time::timeout(timeout, async {
                match request {
                    Request::V4Connect(_) => {
                        Socks4Reply::Rejected
                            .write(stream, SOCKS4_UNSPECIFIED)
                            .await
                    }
                    _ => {
                        Socks5Reply::NotAllowed
                            .write(stream, &SocksAddr::unspecified())
                            .await
                    }
                }
            })
            .await;
            Err(refusal)
        }
    }
}
