//! The `UserGroup` trait: authentication and per-user policy.
//!
//! A server with a `user_group` asks its group to authenticate every task
//! ([`UserGroup::authenticate`] with the client's credentials, or
//! [`UserGroup::anonymous`] when it sent none) and gets an [`AuthResult`]:
//!
//! - `Ok(UserCtx)`: who the user is and its [`UserPolicy`] (target rules,
//!   redirection, resolve strategy, explicit sites, speed and rate limits);
//! - `Denied`: the user is known but may not use the proxy now (blocked,
//!   expired, client address refused): HTTP 403, SOCKS failure, after the
//!   user's `block_and_delay`;
//! - `Challenge`: no usable credentials (none, unknown user, wrong password):
//!   HTTP 407 with `Proxy-Authenticate`, SOCKS5 auth failure.
//!
//! Passwords travel in [`Password`], whose `Debug` never shows them; no
//! implementation may log one.
//!
//! ```yaml
//! user_group:
//!   - name: default
//!     static_users:
//!       - name: root
//!         token: {salt: 113323bdab6fd2cc, md5: 5c81f2becadde7fa5fde9026652ccc84, sha1: ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96}
//! server:
//!   - name: http
//!     type: http_proxy
//!     escaper: default
//!     user_group: default
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::addr::UpstreamAddr;
use crate::resolver::ResolveStrategy;
use crate::server::ClientInfo;
use crate::value::{SpeedLimit, UdpSpeedLimit};

/// A password as the client sent it. `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    /// Wraps the bytes of a password.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Password(bytes.into())
    }

    /// The bytes, for hashing. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Username and password from `Proxy-Authorization: Basic`, RFC 1929 or a SOCKS4 user id.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user name (UTF-8).
    pub username: String,
    /// The password.
    pub password: Password,
}

/// Why a client must (re)send credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeReason {
    /// The client sent none and the group has no anonymous user.
    NoCredentials,
    /// The credentials could not be parsed.
    Malformed,
    /// No user of that name (and no anonymous user to fall back to).
    UnknownUser,
    /// The password is wrong, or the user has no password token.
    BadPassword,
}

impl std::fmt::Display for ChallengeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChallengeReason::NoCredentials => "authentication required",
            ChallengeReason::Malformed => "malformed credentials",
            ChallengeReason::UnknownUser => "unknown user",
            ChallengeReason::BadPassword => "wrong password",
        })
    }
}

/// Why a known user may not use the proxy now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedReason {
    /// `block_and_delay` is set on the user.
    Blocked,
    /// The user's `expire` time has passed.
    Expired,
    /// The user's `ingress_network_filter` refuses the client address.
    ClientAddress,
}

impl std::fmt::Display for DeniedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeniedReason::Blocked => "user blocked",
            DeniedReason::Expired => "user expired",
            DeniedReason::ClientAddress => "client address not allowed for this user",
        })
    }
}

/// A known user refused: the reason, and how long to wait before replying.
#[derive(Debug, Clone)]
pub struct AuthDenied {
    /// The user's name.
    pub user: String,
    /// Why.
    pub reason: DeniedReason,
    /// Hold the reply back this long (`block_and_delay`); zero for none.
    pub delay: Duration,
}

/// What authentication gives a server.
pub enum AuthResult {
    /// The user, with its policy.
    Ok(UserCtx),
    /// A known user who may not pass.
    Denied(AuthDenied),
    /// Credentials needed (HTTP 407, SOCKS5 auth failure).
    Challenge(ChallengeReason),
}

impl std::fmt::Debug for AuthResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthResult::Ok(u) => write!(f, "Ok({}/{})", u.group, u.name),
            AuthResult::Denied(d) => write!(f, "Denied({d:?})"),
            AuthResult::Challenge(r) => write!(f, "Challenge({r:?})"),
        }
    }
}

/// Where a user comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// `static_users` in the config.
    Static,
    /// The dynamic `source` (or a publish).
    Dynamic,
    /// The group's `anonymous_user`.
    Anonymous,
}

/// An authenticated user, as a task carries it.
#[derive(Clone)]
pub struct UserCtx {
    /// The user group's name.
    pub group: Arc<str>,
    /// The user's name (the anonymous user's configured name).
    pub name: Arc<str>,
    /// Static, dynamic or anonymous.
    pub kind: UserKind,
    /// The user's rules and limits.
    pub policy: Arc<dyn UserPolicy>,
}

impl std::fmt::Debug for UserCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCtx")
            .field("group", &self.group)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Why a user's rules or limits refused a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRefusal {
    /// The user's `dst_port_filter` refused the port.
    Port(u16),
    /// The user's `dst_host_filter_set` refused the host.
    Host(String),
    /// The user's `tcp_conn_rate_limit` is spent.
    ConnectionRate,
    /// The user's `request_rate_limit` is spent.
    RequestRate,
    /// The user has `request_max_alive` tasks running already.
    MaxAlive(usize),
}

impl UserRefusal {
    /// True for the limits (HTTP 429), false for the rules (HTTP 403).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            UserRefusal::ConnectionRate | UserRefusal::RequestRate | UserRefusal::MaxAlive(_)
        )
    }

    /// The HTTP status for this refusal.
    pub fn http_status(&self) -> u16 {
        if self.is_limit() { 429 } else { 403 }
    }
}

impl std::fmt::Display for UserRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserRefusal::Port(p) => write!(f, "port {p} is not allowed for this user"),
            UserRefusal::Host(h) => write!(f, "host {h} is not allowed for this user"),
            UserRefusal::ConnectionRate => f.write_str("user connection rate limit reached"),
            UserRefusal::RequestRate => f.write_str("user request rate limit reached"),
            UserRefusal::MaxAlive(n) => {
                write!(f, "user already has {n} requests alive (request_max_alive)")
            }
        }
    }
}

/// Where a user's `resolve_redirection` sends a target host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// Connect to one of these addresses instead of resolving the name.
    Addrs(Vec<IpAddr>),
    /// Resolve this name instead.
    Name(String),
}

/// How to reach a target for this user: redirection, resolve strategy, site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPlan {
    /// The target to connect to when a redirection applies (else the requested one).
    pub connect_to: Option<UpstreamAddr>,
    /// The user's or the explicit site's resolve strategy.
    pub resolve_strategy: Option<ResolveStrategy>,
    /// The id of the explicit site the target belongs to.
    pub site: Option<Arc<str>>,
    /// The site's `emit_stats`.
    pub site_emit_stats: bool,
}

/// Holds one of the user's `request_max_alive` slots until dropped.
#[derive(Debug, Default)]
pub struct RequestPermit {
    alive: Option<Arc<AtomicUsize>>,
}

impl RequestPermit {
    /// A permit counting against `alive` (already incremented by the caller).
    pub fn counted(alive: Arc<AtomicUsize>) -> Self {
        RequestPermit { alive: Some(alive) }
    }

    /// A permit for a user without `request_max_alive`.
    pub fn unlimited() -> Self {
        RequestPermit { alive: None }
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        if let Some(a) = &self.alive {
            a.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A user's rules and limits, checked by servers per task.
pub trait UserPolicy: Send + Sync {
    /// Checks `dst_port_filter` and `dst_host_filter_set`.
    fn check_target(&self, target: &UpstreamAddr) -> Result<(), UserRefusal>;

    /// Redirection, resolve strategy and explicit site for a target.
    fn plan(&self, target: &UpstreamAddr) -> TargetPlan;

    /// The user's own `resolve_strategy` (for tasks without one target, as UDP associations).
    fn resolve_strategy(&self) -> Option<ResolveStrategy>;

    /// The user's `tcp_sock_speed_limit` (unlimited when not set).
    fn tcp_sock_speed_limit(&self) -> SpeedLimit;

    /// The user's `udp_sock_speed_limit` (unlimited when not set).
    fn udp_sock_speed_limit(&self) -> UdpSpeedLimit;

    /// Counts a new client connection against `tcp_conn_rate_limit`.
    fn acquire_connection(&self) -> Result<(), UserRefusal>;

    /// Counts a new request against `request_rate_limit` and takes a
    /// `request_max_alive` slot, held by the permit.
    fn acquire_request(&self) -> Result<RequestPermit, UserRefusal>;
}

/// A user group module.
#[async_trait]
pub trait UserGroup: Send + Sync {
    /// The module name.
    fn name(&self) -> &str;

    /// Authenticates a client's credentials. An unknown user name falls back to
    /// the anonymous user when the group has one.
    async fn authenticate(&self, creds: &Credentials, client: &ClientInfo) -> AuthResult;

    /// The anonymous user for a client that sent no credentials, or a challenge.
    fn anonymous(&self, client: &ClientInfo) -> AuthResult;

    /// True when the group has an anonymous user (SOCKS5 may then accept "no authentication").
    fn has_anonymous(&self) -> bool {
        false
    }

    /// Takes dynamic users pushed at run time (a JSON list of users).
    fn publish_dynamic(&self, _json: &str) -> Result<(), String> {
        Err(format!(
            "user group {} does not support publishing users",
            self.name()
        ))
    }

    /// The names of the users from the config.
    fn static_users(&self) -> Vec<String> {
        Vec::new()
    }

    /// The names of the users from the dynamic source.
    fn dynamic_users(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted() {
        let c = Credentials {
            username: "u".into(),
            password: Password::new("secret"),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("secret"), "{s}");
        assert!(s.contains("<redacted>"), "{s}");
    }

    #[test]
    fn permit_releases_its_slot() {
        let alive = Arc::new(AtomicUsize::new(1));
        let p = RequestPermit::counted(Arc::clone(&alive));
        drop(p);
        assert_eq!(alive.load(Ordering::Acquire), 0);
        drop(RequestPermit::unlimited());
    }

    #[test]
    fn refusal_statuses() {
        assert_eq!(UserRefusal::Port(25).http_status(), 403);
        assert_eq!(UserRefusal::Host("x".into()).http_status(), 403);
        assert_eq!(UserRefusal::RequestRate.http_status(), 429);
        assert_eq!(UserRefusal::MaxAlive(2).http_status(), 429);
    }
}
