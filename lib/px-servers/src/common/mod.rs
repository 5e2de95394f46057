//! What several server types share: the common keys and the policy checks
//! on clients and targets.

mod config;
mod policy;

pub mod pick;
pub mod port;
pub mod proxy_protocol;
pub mod rewind;
pub mod stats;
pub mod stream_keys;
pub mod user;

pub use config::CommonServerConfig;
pub use policy::{Denied, check_target};
