//! What the proxy servers share about users: the `user_group` key, HTTP Basic credentials,
//! and applying a [`UserCtx`]'s policy to a task.
//!
//! Per task, a server with a user group:
//!
//! 1. authenticates (its own protocol: `http_proxy/auth.rs`, `socks_proxy/auth.rs`);
//! 2. counts the client connection once per user ([`UserPolicy::acquire_connection`],
//!    `tcp_conn_rate_limit`) and the request ([`UserPolicy::acquire_request`],
//!    `request_rate_limit`, `request_max_alive`), keeping the permit in a [`TaskUser`] for the
//!    task's life;
//! 3. checks the target against the server's filters and then the user's ([`task_target`]),
//!    which also applies `resolve_redirection`, the user's or explicit site's `resolve_strategy`;
//! 4. relays with the stricter of the server's and the user's speed limits ([`client_limit`],
//!    [`udp_limit`]).
//!
//! ```yaml
//! server:
//!   - name: http
//!     type: http_proxy
//!     escaper: default
//!     user_group: default
//! ```

use std::sync::Arc;

use base64::Engine;
use px_core::value::{SpeedLimit, UdpSpeedLimit};
use px_core::{
    Credentials, Handle, ModuleLookup, Password, RequestPermit, ResolveStrategy, TcpConnectRequest,
    UpstreamAddr, UserCtx, UserGroup, UserRefusal,
};
use px_yaml::{ConfigError, MapReader};

/// Reads the `user_group` key: the named group must exist.
pub fn parse_user_group(
    map: &mut MapReader<'_>,
    lookup: &dyn ModuleLookup,
) -> Result<Option<Arc<Handle<dyn UserGroup>>>, ConfigError> {
    let Some(v) = map.get("user_group") else {
        return Ok(None);
    };
    let name = v.as_text()?;
    if name.is_empty() {
        // g3proxy: an empty name means no user group
        return Ok(None);
    }
    lookup.user_group(&name).map(Some).map_err(|e| v.err(e))
}

/// Decodes `Basic <base64(user:password)>` (the scheme in any case).
pub fn parse_basic(value: &[u8]) -> Option<Credentials> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let username = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some(Credentials {
        username,
        password: Password::new(&raw[colon + 1..]),
    })
}

/// An authenticated user for the life of one task (the `request_max_alive` slot is held).
#[derive(Debug)]
pub struct TaskUser {
    /// The user.
    pub ctx: UserCtx,
    _permit: RequestPermit,
}

impl TaskUser {
    /// Counts a new request for the user (and, when `new_connection`, a new client connection).
    pub fn admit(ctx: UserCtx, new_connection: bool) -> Result<TaskUser, UserRefusal> {
        if new_connection {
            ctx.policy.acquire_connection()?;
        }
        let permit = ctx.policy.acquire_request()?;
        Ok(TaskUser {
            ctx,
            _permit: permit,
        })
    }
}

/// Where a task goes, after the user's rules.
#[derive(Debug, Clone)]
pub struct TaskTarget {
    /// The target the client asked for.
    pub requested: UpstreamAddr,
    /// The target to connect to (differs when `resolve_redirection` applies).
    pub connect_to: UpstreamAddr,
    /// The user's or explicit site's resolve strategy.
    pub resolve_strategy: Option<ResolveStrategy>,
    /// The user's `tcp_sock_speed_limit`.
    pub user_limit: SpeedLimit,
    /// The user's name (to keep upstream connections per user).
    pub user: Option<Arc<str>>,
    /// The explicit site of the target, if any.
    pub site: Option<Arc<str>>,
}

impl TaskTarget {
    /// The request for the escaper.
    pub fn request(&self, client_addr: std::net::SocketAddr) -> TcpConnectRequest {
        TcpConnectRequest {
            target: self.connect_to.clone(),
            client_addr,
            resolve_strategy: self.resolve_strategy,
        }
    }
}

/// Applies the user's filters and plan to a target (the server's filters come first).
pub fn task_target(
    user: Option<&UserCtx>,
    target: &UpstreamAddr,
) -> Result<TaskTarget, UserRefusal> {
    let Some(u) = user else {
        return Ok(TaskTarget {
            requested: target.clone(),
            connect_to: target.clone(),
            resolve_strategy: None,
            user_limit: SpeedLimit::default(),
            user: None,
            site: None,
        });
    };
    u.policy.check_target(target)?;
    let plan = u.policy.plan(target);
    if let Some(to) = &plan.connect_to {
        log::debug!("user {}: {target} redirected to {to}", u.name);
    }
    Ok(TaskTarget {
        requested: target.clone(),
        connect_to: plan.connect_to.unwrap_or_else(|| target.clone()),
        resolve_strategy: plan.resolve_strategy,
        user_limit: u.policy.tcp_sock_speed_limit(),
        user: Some(Arc::clone(&u.name)),
        site: plan.site,
    })
}

/// The client-side TCP limit of a task: the server's and the user's, the stricter each way.
pub fn client_limit(server: SpeedLimit, user: Option<&UserCtx>) -> SpeedLimit {
    match user {
        Some(u) => server.stricter(u.policy.tcp_sock_speed_limit()),
        None => server,
    }
}

/// The stricter of two UDP limits, each field compared per second, on one slice width.
pub fn udp_limit(server: UdpSpeedLimit, user: Option<&UserCtx>) -> UdpSpeedLimit {
    let Some(u) = user else {
        return server;
    };
    let user = u.policy.udp_sock_speed_limit();
    let shift = server.shift_millis.max(user.shift_millis);
    // a limit per 2^s ms as a limit per 2^shift ms
    let scale = |v: Option<u64>, s: u8| v.filter(|n| *n > 0).map(|n| n << (shift - s));
    let pick = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    };
    let (ss, us) = (server.shift_millis, user.shift_millis);
    UdpSpeedLimit {
        shift_millis: shift,
        upload_bytes: pick(scale(server.upload_bytes, ss), scale(user.upload_bytes, us)),
        download_bytes: pick(
            scale(server.download_bytes, ss),
            scale(user.download_bytes, us),
        ),
        upload_packets: pick(
            scale(server.upload_packets, ss),
            scale(user.upload_packets, us),
        ),
        download_packets: pick(
            scale(server.download_packets, ss),
            scale(user.download_packets, us),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials() {
        let c = parse_basic(b"Basic cm9vdDp0b29y").unwrap();
        assert_eq!(c.username, "root");
        assert_eq!(c.password.expose(), b"toor");
        // the password may hold colons; the scheme is case-insensitive
        let c = parse_basic(b"basic  YTpiOmM=").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("a", &b"b:c"[..])
        );
        assert!(parse_basic(b"Bearer abc").is_none());
        assert!(parse_basic(b"Basic !!!").is_none());
        assert!(parse_basic(b"Basic bm9jb2xvbg==").is_none(), "no colon");
    }

    #[test]
    fn udp_stricter() {
        let a = UdpSpeedLimit {
            shift_millis: 10,
            upload_bytes: Some(1000),
            ..Default::default()
        };
        let b = UdpSpeedLimit {
            shift_millis: 9,
            upload_bytes: Some(400),
            download_packets: Some(5),
            ..Default::default()
        };
        struct P(UdpSpeedLimit);
        impl px_core::UserPolicy for P {
            fn check_target(&self, _: &UpstreamAddr) -> Result<(), UserRefusal> {
                Ok(())
            }
            fn plan(&self, _: &UpstreamAddr) -> px_core::TargetPlan {
                px_core::TargetPlan::default()
            }
            fn resolve_strategy(&self) -> Option<ResolveStrategy> {
                None
            }
            fn tcp_sock_speed_limit(&self) -> SpeedLimit {
                SpeedLimit::default()
            }
            fn udp_sock_speed_limit(&self) -> UdpSpeedLimit {
                self.0
            }
            fn acquire_connection(&self) -> Result<(), UserRefusal> {
                Ok(())
            }
            fn acquire_request(&self) -> Result<RequestPermit, UserRefusal> {
                Ok(RequestPermit::unlimited())
            }
        }
        let ctx = UserCtx {
            group: "g".into(),
            name: "u".into(),
            kind: px_core::UserKind::Static,
            policy: Arc::new(P(b)),
        };
        let l = udp_limit(a, Some(&ctx));
        assert_eq!(l.shift_millis, 10);
        assert_eq!(l.upload_bytes, Some(800));
        assert_eq!(l.download_packets, Some(10));
        assert_eq!(l.download_bytes, None);
        assert_eq!(udp_limit(a, None), a);
    }
}
