//! Reloads: build, validate, then commit.
//!
//! - [`reload_module`] (`g3proxy-ctl reload-escaper NAME` and friends):
//!   re-reads that kind's section of the main file (inline, its own file or a
//!   directory), builds the one module against the running set (so its
//!   references resolve to running handles), and commits it.
//! - [`reload_changed`] (SIGHUP): re-reads everything, rebuilds the modules
//!   whose document changed (`Node::fingerprint`), creates new ones, removes
//!   the ones gone from the config, and commits all at once.
//!
//! A failure before the commit changes nothing and returns every error
//! (`file:line:col: key: reason`, one per line). The commit binds the new
//! listening sockets first (the only step that can fail), then stores each
//! new module into its running [`px_core::Handle`]: dependents see it on their
//! next task, tasks in flight finish on the `Arc` they hold. A server is
//! re-bound only when its listen address changed; otherwise its accept loop
//! goes on and takes the new server object for the next connection. When
//! only `listen_in_worker`, `instance` or `follow_cpu_affinity` changed, the
//! running sockets move to new accept loops (more are bound if needed; none
//! is closed, so no waiting client is dropped).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use log::info;
use px_core::value::ListenConfig;
use px_core::{Auditor, Escaper, Handle, Resolver, Server, UserGroup};
use px_yaml::ConfigError;
use px_yaml::section::ModuleDoc;

use crate::app::App;
use crate::build::{BuiltSet, ExistingModules, build_modules, module_name};
use crate::config::{Kind, load_kind, load_main};
use crate::listen::{Prepared, same_shape};

fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reloads one module by kind and name. Must run on the daemon's runtime.
pub async fn reload_module(app: &Arc<App>, kind: Kind, name: &str) -> Result<String, String> {
    let _guard = app.control_lock.lock().await;
    if app.is_offline() {
        return Err("the daemon is going offline: no reloads".into());
    }
    let docs = load_kind(&app.config_file, kind).map_err(|e| join_errors(&e))?;
    let mut found = None;
    for doc in docs {
        if module_name(kind, &doc).ok().as_deref() == Some(name) {
            if found.is_some() {
                return Err(format!("{} `{name}` is defined twice", kind.label()));
            }
            found = Some(doc);
        }
    }
    let Some(doc) = found else {
        return Err(format!(
            "no {} named `{name}` in {} (removing a module takes a full reload: SIGHUP)",
            kind.label(),
            app.config_file.display()
        ));
    };
    let fp = doc.node.fingerprint();
    let built = build_modules(
        &app.wiring,
        &[(kind, doc)],
        Some(&**app as &dyn ExistingModules),
    )
    .map_err(|e| join_errors(&e))?;
    let created = !exists(app, kind, name);
    commit(app, built).await?;
    app.fingerprints
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((kind, name.to_string()), fp);
    let verb = if created { "created" } else { "reloaded" };
    info!("{} {name} {verb}", kind.label());
    Ok(format!("{} {name} {verb}", kind.label()))
}

fn exists(app: &App, kind: Kind, name: &str) -> bool {
    match kind {
        Kind::Resolver => app.resolvers.get(name).is_some(),
        Kind::Escaper => app.escapers.get(name).is_some(),
        Kind::UserGroup => app.user_groups.get(name).is_some(),
        Kind::Auditor => app.auditors.get(name).is_some(),
        Kind::Server => app.servers.get(name).is_some(),
    }
}

/// The running set without the modules a reload removes.
struct Without<'a> {
    app: &'a App,
    gone: &'a HashSet<(Kind, String)>,
}

macro_rules! without {
    ($fn:ident, $kind:expr, $t:ty) => {
        fn $fn(&self, name: &str) -> Option<Arc<Handle<$t>>> {
            if self.gone.contains(&($kind, name.to_string())) {
                return None;
            }
            self.app.$fn(name)
        }
    };
}

impl ExistingModules for Without<'_> {
    without!(resolver, Kind::Resolver, dyn Resolver);
    without!(escaper, Kind::Escaper, dyn Escaper);
    without!(user_group, Kind::UserGroup, dyn UserGroup);
    without!(auditor, Kind::Auditor, dyn Auditor);
    without!(server, Kind::Server, dyn Server);

    fn stats(&self) -> Option<px_core::stats::StatsRegistry> {
        ExistingModules::stats(self.app)
    }
}

/// Reloads every module whose document changed (SIGHUP). Must run on the
/// daemon's runtime. `runtime:`, `log:` and `controller:` need a restart.
pub async fn reload_changed(app: &Arc<App>) -> Result<String, String> {
    let _guard = app.control_lock.lock().await;
    if app.is_offline() {
        return Err("the daemon is going offline: no reloads".into());
    }
    let main = load_main(&app.config_file).map_err(|e| join_errors(&e))?;
    let running = app
        .fingerprints
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut now: BTreeMap<(Kind, String), String> = BTreeMap::new();
    let mut changed: Vec<(Kind, ModuleDoc)> = Vec::new();
    for (kind, doc) in &main.modules {
        // a nameless document fails the build below with its position
        let name = module_name(*kind, doc).unwrap_or_default();
        let fp = doc.node.fingerprint();
        if running.get(&(*kind, name.clone())) != Some(&fp) {
            changed.push((*kind, doc.clone()));
        }
        now.insert((*kind, name), fp);
    }
    let gone: HashSet<(Kind, String)> = running
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    if changed.is_empty() && gone.is_empty() {
        return Ok("no module changed".into());
    }
    if !gone.is_empty() {
        // a module left unchanged may still name a removed one: check the whole set
        build_modules(&app.wiring, &main.modules, None).map_err(|e| join_errors(&e))?;
    }
    let existing = Without { app, gone: &gone };
    let built = build_modules(
        &app.wiring,
        &changed,
        Some(&existing as &dyn ExistingModules),
    )
    .map_err(|e| join_errors(&e))?;
    let mut done: Vec<String> = built
        .fingerprints
        .keys()
        .map(|(k, n)| format!("{}[{n}]", k.section()))
        .collect();
    commit(app, built).await?;
    for (kind, name) in &gone {
        match kind {
            Kind::Server => {
                app.listeners.stop_server(name).await;
                app.servers.remove(name);
            }
            Kind::Resolver => drop(app.resolvers.remove(name)),
            Kind::Escaper => drop(app.escapers.remove(name)),
            Kind::UserGroup => drop(app.user_groups.remove(name)),
            Kind::Auditor => drop(app.auditors.remove(name)),
        }
        done.push(format!("removed {}[{name}]", kind.section()));
    }
    *app.fingerprints.lock().unwrap_or_else(|e| e.into_inner()) = now;
    let summary = format!("reloaded: {}", done.join(", "));
    info!("{summary}");
    Ok(summary)
}

/// What happens to a server's listening sockets on commit.
enum ListenPlan {
    /// Same address (or still none): the accept loops go on.
    Keep,
    /// New sockets (or none) replace the old ones.
    Rebind(Option<Prepared>),
}

fn plan_listen(app: &App, name: &str, new: &Arc<dyn Server>) -> Result<ListenPlan, String> {
    let old = app.servers.get(name).map(|h| h.get());
    let old_listen = old.as_ref().and_then(|s| s.listen().cloned());
    let new_listen = new.listen();
    let fail = |cfg: &ListenConfig, e: std::io::Error| {
        format!("server {name}: cannot listen on {}: {e}", cfg.address)
    };
    match (old.is_some(), old_listen.as_ref(), new_listen) {
        (true, None, None) => Ok(ListenPlan::Keep),
        (true, Some(o), Some(n)) if same_shape(o, n) => Ok(ListenPlan::Keep),
        // same address, other sockets (listen_in_worker, instance): the
        // sockets move to the new loops, none is closed with clients waiting
        (true, Some(o), Some(n)) if o.address == n.address => app
            .listeners
            .prepare_reshape(n)
            .map(|p| ListenPlan::Rebind(Some(p)))
            .map_err(|e| fail(n, e)),
        (_, _, Some(n)) => app
            .listeners
            .prepare(n, None)
            .map(|p| ListenPlan::Rebind(Some(p)))
            .map_err(|e| fail(n, e)),
        (_, _, None) => Ok(ListenPlan::Rebind(None)),
    }
}

fn store_all<T: ?Sized>(registry: &px_core::Registry<T>, built: BTreeMap<String, Arc<Handle<T>>>) {
    for (name, fresh) in built {
        match registry.get(&name) {
            Some(running) => running.store(fresh.get()),
            None => registry.insert_handle(fresh),
        }
    }
}

/// Commits a validated build: binds what must be bound, then stores.
async fn commit(app: &App, built: BuiltSet) -> Result<(), String> {
    let mut plans = Vec::new();
    for (name, fresh) in &built.servers {
        plans.push((name.clone(), plan_listen(app, name, &fresh.get())?));
    }
    store_all(&app.resolvers, built.resolvers);
    store_all(&app.escapers, built.escapers);
    store_all(&app.user_groups, built.user_groups);
    store_all(&app.auditors, built.auditors);
    store_all(&app.servers, built.servers);
    for (name, plan) in plans {
        let ListenPlan::Rebind(prepared) = plan else {
            continue;
        };
        let Some(handle) = app.servers.get(&name) else {
            continue;
        };
        if let Err(e) = app.listeners.replace(handle, prepared).await {
            // bound already: only registering with the runtime can fail here
            log::error!("server {name}: cannot start its new listener: {e}");
        }
    }
    Ok(())
}
