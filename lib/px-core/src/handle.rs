//! [`Handle`]: an atomically swappable module reference, and [`Registry`]:
//! the per-kind map from module name to handle.
//!
//! Consumers keep the handle, not the object, so reloading a module is one
//! `store` that dependents see on their next task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

/// A hot-swappable reference to one module (`Arc<dyn Escaper>` and so on).
pub struct Handle<T: ?Sized> {
    name: String,
    cell: ArcSwap<Arc<T>>,
}

impl<T: ?Sized> Handle<T> {
    /// Wraps a freshly built module.
    pub fn new(name: &str, value: Arc<T>) -> Self {
        Handle {
            name: name.to_string(),
            cell: ArcSwap::from_pointee(value),
        }
    }

    /// The module name this handle stands for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current module: two atomic operations, no lock.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.cell.load())
    }

    /// Swaps in a new module; tasks holding the old `Arc` finish on it.
    pub fn store(&self, value: Arc<T>) {
        self.cell.store(Arc::new(value));
    }
}

impl<T: ?Sized> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handle({})", self.name)
    }
}

/// Name -> handle map for one module kind.
pub struct Registry<T: ?Sized> {
    map: Mutex<BTreeMap<String, Arc<Handle<T>>>>,
}

impl<T: ?Sized> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            map: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<T: ?Sized> Registry<T> {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Handle<T>>>> {
        // a poisoned lock only means a panic elsewhere; the map itself is still consistent
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle of a module, if one with that name exists.
    pub fn get(&self, name: &str) -> Option<Arc<Handle<T>>> {
        self.lock().get(name).cloned()
    }

    /// Adds or replaces the module of that name: an existing handle is swapped in
    /// place (dependents see the new object), a new name gets a new handle.
    pub fn upsert(&self, name: &str, value: Arc<T>) -> Arc<Handle<T>> {
        let mut map = self.lock();
        match map.get(name) {
            Some(h) => {
                h.store(value);
                Arc::clone(h)
            }
            None => {
                let h = Arc::new(Handle::new(name, value));
                map.insert(name.to_string(), Arc::clone(&h));
                h
            }
        }
    }

    /// Inserts an already made handle (used when committing a validated build).
    pub fn insert_handle(&self, handle: Arc<Handle<T>>) {
        self.lock().insert(handle.name().to_string(), handle);
    }

    /// Removes a module; returns its handle so the caller can drain it.
    pub fn remove(&self, name: &str) -> Option<Arc<Handle<T>>> {
        self.lock().remove(name)
    }

    /// All module names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// All handles, sorted by name.
    pub fn handles(&self) -> Vec<Arc<Handle<T>>> {
        self.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Named: Send + Sync {
        fn n(&self) -> u32;
    }
    struct A(u32);
    impl Named for A {
        fn n(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn swap_is_seen_by_holders() {
        let reg: Registry<dyn Named> = Registry::default();
        let h = reg.upsert("x", Arc::new(A(1)));
        let old = h.get();
        reg.upsert("x", Arc::new(A(2)));
        assert_eq!(h.get().n(), 2);
        assert_eq!(old.n(), 1);
        assert_eq!(reg.names(), vec!["x".to_string()]);
        assert!(reg.remove("x").is_some());
        assert!(reg.get("x").is_none());
    }
}
