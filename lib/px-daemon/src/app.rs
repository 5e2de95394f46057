//! [`App`]: the running daemon as a value (no process-global state): one
//! registry per module kind, the listeners, the task tracker, the control
//! lock that serializes reloads, and the daemon's state (online, going
//! offline, listeners handed to a successor).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use px_core::{Auditor, Escaper, Handle, Registry, Resolver, Server, UserGroup};
use px_yaml::ConfigError;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::build::{BuiltSet, ExistingModules, Wiring, build_modules};
use crate::config::{ControllerConfig, Kind, MainConfig, RuntimeConfig, load_main};
use crate::listen::{Inherited, ListenerSet};
use crate::stats::AppStats;
use crate::worker::Workers;

/// Why the daemon goes offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineCause {
    /// SIGTERM or SIGINT: quit.
    Signal,
    /// `g3proxy-ctl offline`: a successor may come for the listeners.
    Ctl,
    /// A successor took the listeners and asked us to go.
    HandedOver,
}

/// What the daemon is doing, watched by the quit sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaemonState {
    /// Set once the daemon goes offline (the first cause wins).
    pub offline: Option<OfflineCause>,
    /// A successor accepts on our listening sockets now.
    pub handed_over: bool,
}

/// The running daemon.
pub struct App {
    /// The main config file.
    pub config_file: PathBuf,
    /// The daemon group name (`-G`).
    pub group: String,
    /// `runtime:` as loaded at start (not reloaded).
    pub runtime: RuntimeConfig,
    /// `controller:` as loaded at start (not reloaded).
    pub controller: ControllerConfig,
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
    /// The worker runtimes (`worker:`); empty without that section.
    pub workers: Arc<Workers>,
    /// The modules' stats and the StatsD emitter (`stat:`).
    pub stats: AppStats,
    /// The type -> factory table.
    pub wiring: Arc<Wiring>,
    /// The document each running module was built from (`Node::fingerprint`).
    pub(crate) fingerprints: Mutex<BTreeMap<(Kind, String), String>>,
    /// Held by every reload, so two never interleave.
    pub(crate) control_lock: tokio::sync::Mutex<()>,
    state: watch::Sender<DaemonState>,
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
    fn stats(&self) -> Option<px_core::stats::StatsRegistry> {
        Some(self.stats.registry.clone())
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
        let mut stats = AppStats::new();
        let built: BuiltSet = build_modules(&wiring, &main.modules, Some(&stats.registry))?;
        stats.start_emitter(main.stat.as_ref(), group, &main.file)?;
        let workers = match &main.worker {
            Some(cfg) => Workers::start(cfg).map_err(|e| {
                vec![ConfigError::file(
                    &main.file,
                    format!("worker: cannot start the worker runtimes: {e}"),
                )]
            })?,
            None => Workers::none(),
        };
        let workers = Arc::new(workers);
        let tasks = TaskTracker::new();
        let (state, _) = watch::channel(DaemonState::default());
        let app = App {
            config_file: main.file.clone(),
            group: group.to_string(),
            runtime: main.runtime.clone(),
            controller: main.controller,
            resolvers: Registry::default(),
            escapers: Registry::default(),
            user_groups: Registry::default(),
            auditors: Registry::default(),
            servers: Registry::default(),
            listeners: ListenerSet::new(tasks.clone(), Arc::clone(&workers)),
            workers,
            stats,
            tasks,
            wiring,
            fingerprints: Mutex::new(built.fingerprints.clone()),
            control_lock: tokio::sync::Mutex::new(()),
            state,
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

    /// Opens the listening socket of every server that has one, taking
    /// sockets inherited from a previous daemon where the address matches.
    pub fn start_listeners(&self, inherited: Option<&Inherited>) -> std::io::Result<()> {
        for h in self.servers.handles() {
            let server = h.get();
            if let Some(listen) = server.listen() {
                self.listeners.spawn(Arc::clone(&h), listen, inherited)?;
            }
        }
        Ok(())
    }

    /// The listen addresses of every server, as a successor asks for them.
    pub fn listen_keys(&self) -> Vec<String> {
        self.servers
            .handles()
            .iter()
            .filter_map(|h| h.get().listen().map(crate::listen::handover_key))
            .collect()
    }

    /// The daemon's state now.
    pub fn state(&self) -> DaemonState {
        *self.state.borrow()
    }

    /// Watches the daemon's state.
    pub fn subscribe(&self) -> watch::Receiver<DaemonState> {
        self.state.subscribe()
    }

    /// Asks the daemon to go offline (the first cause is kept).
    pub fn request_offline(&self, cause: OfflineCause) {
        self.state.send_modify(|s| {
            s.offline.get_or_insert(cause);
        });
    }

    /// A successor listens on our sockets now: stop accepting at once.
    pub fn handed_over(&self) {
        self.state.send_modify(|s| {
            s.handed_over = true;
            s.offline.get_or_insert(OfflineCause::HandedOver);
        });
    }

    /// Whether the daemon went offline.
    pub fn is_offline(&self) -> bool {
        self.state.borrow().offline.is_some()
    }

    /// Names of the running modules of one kind, sorted.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Resolver => self.resolvers.names(),
            Kind::Escaper => self.escapers.names(),
            Kind::UserGroup => self.user_groups.names(),
            Kind::Auditor => self.auditors.names(),
            Kind::Server => self.servers.names(),
        }
    }
}
