//! Error enums that servers branch on to pick a status code or SOCKS reply.

use std::io;
use std::net::IpAddr;

use thiserror::Error;

/// Why a name could not be resolved.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN) or has no record of the asked family.
    #[error("no address found for {0}")]
    NotFound(String),
    /// No answer within the resolver's timeout.
    #[error("resolve timed out")]
    Timeout,
    /// The resolver refuses this name by policy (`deny_all`, a blocked domain).
    #[error("resolve refused by policy")]
    Refused,
    /// The upstream DNS server failed (SERVFAIL, bad reply, transport error).
    #[error("dns server failure: {0}")]
    ServerFailure(String),
    /// The name is not a valid domain.
    #[error("invalid domain name")]
    InvalidName,
}

/// Why a connection to a target could not be made.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The target host name could not be resolved.
    #[error("resolve failed: {0}")]
    Resolve(#[from] ResolveError),
    /// The target (after resolution) is refused by an egress network filter.
    #[error("target ip {0} forbidden by egress filter")]
    ForbiddenIp(IpAddr),
    /// The target is refused by a rule (port filter, host filter).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The target actively refused the connection.
    #[error("connection refused")]
    Refused,
    /// The network of the target is unreachable.
    #[error("network unreachable")]
    NetworkUnreachable,
    /// The target host is unreachable (or has no usable address).
    #[error("host unreachable")]
    HostUnreachable,
    /// No connection within the connect timeout.
    #[error("connect timed out")]
    TimedOut,
    /// The escaper cannot do what was asked (UDP through a TCP-only escaper).
    #[error("not supported by this escaper: {0}")]
    Unsupported(&'static str),
    /// Any other socket error.
    #[error("connect failed: {0}")]
    Io(io::Error),
}

impl ConnectError {
    /// Maps a connect(2) error to the matching variant.
    pub fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::TimedOut,
            io::ErrorKind::NetworkUnreachable => ConnectError::NetworkUnreachable,
            io::ErrorKind::HostUnreachable => ConnectError::HostUnreachable,
            _ => match e.raw_os_error() {
                // ENETUNREACH, EHOSTUNREACH on Linux
                Some(101) => ConnectError::NetworkUnreachable,
                Some(113) => ConnectError::HostUnreachable,
                _ => ConnectError::Io(e),
            },
        }
    }

    /// True when the failure is a timeout (connect or resolve): HTTP 504 rather than 502.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ConnectError::TimedOut | ConnectError::Resolve(ResolveError::Timeout)
        )
    }

    /// True when the failure is a policy decision: HTTP 403, SOCKS5 reply 0x02.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            ConnectError::ForbiddenIp(_)
                | ConnectError::Forbidden(_)
                | ConnectError::Resolve(ResolveError::Refused)
        )
    }
}
