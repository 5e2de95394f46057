//! [`ModuleLookup`]: how a factory finds the modules its config names.
//!
//! The daemon implements it over the modules being built and the running
//! registries, so a factory just asks for `escaper: default` by name and gets
//! the handle, or an error message it reports at that key.

use std::sync::Arc;

use crate::handle::Handle;
use crate::{Auditor, Escaper, Resolver, Server, UserGroup};

/// Finds other modules by name while building one.
pub trait ModuleLookup {
    /// A resolver by name.
    fn resolver(&self, name: &str) -> Result<Arc<Handle<dyn Resolver>>, String>;
    /// An escaper by name.
    fn escaper(&self, name: &str) -> Result<Arc<Handle<dyn Escaper>>, String>;
    /// A user group by name.
    fn user_group(&self, name: &str) -> Result<Arc<Handle<dyn UserGroup>>, String>;
    /// An auditor by name.
    fn auditor(&self, name: &str) -> Result<Arc<Handle<dyn Auditor>>, String>;
    /// A server by name (port servers hand streams to it).
    fn server(&self, name: &str) -> Result<Arc<Handle<dyn Server>>, String>;

    /// The daemon's stats registry: a module takes its stats object from it by
    /// name (the same object across reloads). `None` (`g3proxy -t`, tests):
    /// the module counts into a detached object nobody emits.
    fn stats(&self) -> Option<px_stats::StatsRegistry> {
        None
    }
}
