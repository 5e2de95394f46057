//! Socket helpers: listeners from a [`px_core::value::ListenConfig`], socket
//! options for outgoing TCP and UDP sockets, a single connect with a bind
//! address and a timeout, and a happy-eyeballs (RFC 8305) connect that
//! resolves both families, filters every address through the egress network
//! ACL and races staggered attempts.
//!
//! ```no_run
//! # async fn demo(resolver: &dyn px_core::Resolver) -> Result<(), px_core::ConnectError> {
//! use px_core::{UpstreamAddr, ResolveStrategy, value::NetworkAcl};
//! use px_socket::{Bind, EgressConfig, happy_eyeballs_connect};
//! let target = UpstreamAddr::parse("example.com:443", None).unwrap_or_else(|| unreachable!());
//! let (stream, peer_addr) = happy_eyeballs_connect(resolver, &target, ResolveStrategy::default(),
//!     &NetworkAcl::permit_all(), &Bind::default(), &EgressConfig::default()).await?;
//! # drop((stream, peer_addr)); Ok(()) }
//! ```

pub mod connect;
pub mod happy;
pub mod listen;
pub mod opts;
pub mod rand;

pub use connect::{Bind, BindIp, connect_tcp, more_informative};
pub use happy::{EgressConfig, HappyEyeballs, TcpConnectConfig, happy_eyeballs_connect};
pub use listen::{bind_tcp_listener, bind_tcp_listener_opts, bind_udp_socket};
pub use opts::{TcpKeepaliveOpts, TcpMiscOpts, UdpMiscOpts};
