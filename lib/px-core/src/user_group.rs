//! The `UserGroup` trait: authentication and per-user policy.

/// A user group module.
pub trait UserGroup: Send + Sync {
    /// The module name.
    fn name(&self) -> &str;
}
