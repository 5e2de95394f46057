//! Escaper types: one module per `type:`, each with its `config.rs` beside
//! its code, and the value readers they share in [`common`].
//!
//! - [`direct_fixed`]: connect to targets from this host (resolve, filter, bind,
//!   happy-eyeballs connect), TCP and UDP.
//! - [`direct_float`]: the same, from bind addresses published at run time.

pub mod common;
pub mod direct_fixed;
pub mod direct_float;

pub use direct_fixed::{DirectFixed, build_direct_fixed};
pub use direct_float::{DirectFloat, build_direct_float};
