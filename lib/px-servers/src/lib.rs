//! Server types, one module per type, each with its config parsing beside its code.
//!
//! Every type exposes `pub fn build(name, map, lookup) -> Result<Arc<dyn Server>, ConfigError>`
//! where `map` is the module's YAML map with `name` and `type` already taken;
//! `g3proxy/src/wiring.rs` maps `type:` names to these functions.

pub mod common;
pub mod http_proxy;
pub mod intelli_proxy;
pub mod native_tls_port;
pub mod plain_tcp_port;
pub mod plain_tls_port;
pub mod sni_proxy;
pub mod socks_proxy;
pub mod tcp_stream;
pub mod tls_stream;
