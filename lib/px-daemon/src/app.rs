//! [`App`]: the running daemon as a value (no process-global state): one
//! registry per module kind, the listeners, and the task tracker.

use std::path::PathBuf;
use std::sync::Arc;

use px_core::{Auditor, Escaper, Handle, Registry, Resolver, Server, UserGroup};
use px_yaml::ConfigError;
use tokio_util::task::TaskTracker;

use crate::build::{BuiltSet, ExistingModules, Wiring, build_modules};
use crate::config::{MainConfig, load_main};
use crate::listen::ListenerSet;

/// The running daemon.
pub struct App {
    /// The main config file.
    pub config_file: PathBuf,
    /// The daemon group name (`-G`).
    pub group: String,
    /// Resolvers by name.
    pub resolvers: Registry<dyn Resolver>,
    /// Escapers by name.
    pub escapers: Registry<dyn Escaper>,
    /// User groups by name.
    pub user_groups: Registry<dyn UserGroup>,
    /// Auditors by name.
    pub auditors: Registry<dyn Auditor>,
    /// Servers by name.
    pub servers: Registry<dyn Server>,
    /// Every client task, so quitting can wait for them.
    pub tasks: TaskTracker,
    /// The listening sockets.
    pub listeners: ListenerSet,
    /// The type -> factory table.
    pub wiring: Arc<Wiring>,
}

impl ExistingModules for App {
    fn resolver(&self, name: &str) -> Option<Arc<Handle<dyn Resolver>>> {
        self.resolvers.get(name)
    }
    fn escaper(&self, name: &str) -> Option<Arc<Handle<dyn Escaper>>> {
        self.escapers.get(name)
    }
    fn user_group(&self, name: &str) -> Option<Arc<Handle<dyn UserGroup>>> {
        self.user_groups.get(name)
    }
    fn auditor(&self, name: &str) -> Option<Arc<Handle<dyn Auditor>>> {
        self.auditors.get(name)
    }
    fn server(&self, name: &str) -> Option<Arc<Handle<dyn Server>>> {
        self.servers.get(name)
    }
}

/// Loads and builds a whole config without running it (`g3proxy -t`).
pub fn check_config(
    wiring: &Wiring,
    path: &std::path::Path,
) -> Result<MainConfig, Vec<ConfigError>> {
    let main = load_main(path)?;
    build_modules(wiring, &main.modules, None)?;
    Ok(main)
}

impl App {
    /// Builds every module of a loaded config into a new App (nothing listens yet).
    pub fn build(
        wiring: Arc<Wiring>,
        main: &MainConfig,
        group: &str,
    ) -> Result<Arc<App>, Vec<ConfigError>> {
        let built: BuiltSet = build_modules(&wiring, &main.modules, None)?;
        let tasks = TaskTracker::new();
        let app = App {
            config_file: main.file.clone(),
            group: group.to_string(),
            resolvers: Registry::default(),
            escapers: Registry::default(),
            user_groups: Registry::default(),
            auditors: Registry::default(),
            servers: Registry::default(),
            listeners: ListenerSet::new(tasks.clone()),
            tasks,
            wiring,
        };
        for h in built.resolvers.into_values() {
            app.resolvers.insert_handle(h);
        }
        for h in built.escapers.into_values() {
            app.escapers.insert_handle(h);
        }
        for h in built.user_groups.into_values() {
            app.user_groups.insert_handle(h);
        }
        for h in built.auditors.into_values() {
            app.auditors.insert_handle(h);
        }
        for h in built.servers.into_values() {
            app.servers.insert_handle(h);
        }
        Ok(Arc::new(app))
    }

    /// Opens the listening socket of every server that has one.
    pub fn start_listeners(&self) -> std::io::Result<()> {
        for h in self.servers.handles() {
            let server = h.get();
            if let Some(listen) = server.listen() {
                self.listeners.spawn(Arc::clone(&h), listen)?;
            }
        }
        Ok(())
    }
}
