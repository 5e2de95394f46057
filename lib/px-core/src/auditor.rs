//! The `Auditor` trait: per-task audit decisions.

/// An auditor module.
pub trait Auditor: Send + Sync {
    /// The module name.
    fn name(&self) -> &str;
}
