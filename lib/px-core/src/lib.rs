//! Core types shared by every part of the proxy: the five module traits
//! (server, escaper, resolver, user group, auditor), the hot-swappable
//! [`Handle`], per-kind [`Registry`], target addresses and the error enums
//! callers branch on. No implementations live here.

pub mod addr;
pub mod auditor;
pub mod error;
pub mod escaper;
pub mod handle;
pub mod lookup;
pub mod resolver;
pub mod server;
pub mod user_group;
pub mod value;

pub use addr::{Host, UpstreamAddr};
pub use auditor::Auditor;
pub use error::{ConnectError, ResolveError};
pub use escaper::{
    AsyncStream, Escaper, TcpConnectRequest, UdpRelay, UdpRelayRequest, UpstreamConn,
    UpstreamStream,
};
pub use handle::{Handle, Registry};
pub use lookup::ModuleLookup;
/// The stats objects modules count into (px-stats), re-exported for module crates.
pub use px_stats as stats;
pub use resolver::{AddrFamily, PickStrategy, QueryStrategy, ResolveStrategy, Resolver};
pub use server::{AcceptedStream, ClientInfo, Server};
pub use user_group::{
    AuthDenied, AuthResult, ChallengeReason, Credentials, DeniedReason, Password, Redirect,
    RequestPermit, TargetPlan, UserCtx, UserGroup, UserKind, UserPolicy, UserRefusal,
};
