//! YAML loading that keeps file, line and column for every node, and typed
//! readers for g3proxy's value types.
//!
//! - [`node`]: the position-keeping tree ([`Node`]) built from saphyr, with `<<` merge keys.
//! - [`error`]: [`ConfigError`] naming file, line, column, key path and reason.
//! - [`reader`]: [`Val`] (a node at a key path) and [`MapReader`] (a map whose
//!   unknown keys are errors).
//! - [`values`]: durations, sizes, speed limits, listen addresses, ACL rules, ...
//! - [`section`]: module sections written inline, as a file, or as a directory.

pub mod error;
pub mod node;
pub mod reader;
pub mod section;
pub mod values;

pub use error::ConfigError;
pub use node::{Node, Pos, Value, load_file, load_str};
pub use reader::{MapReader, Val, normalize_key, normalize_type};
