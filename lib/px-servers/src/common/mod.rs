//! What several server types share: the common keys and the policy checks
//! on clients and targets.

mod config;
mod policy;

pub use config::CommonServerConfig;
pub use policy::{Denied, check_target};
