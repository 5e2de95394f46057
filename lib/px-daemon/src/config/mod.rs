//! The main config file: where it is, its top-level sections, and the module
//! documents each section holds.
//!
//! ```yaml
//! runtime: {thread_number: 2}
//! worker: {thread_number: 2, sched_affinity: true}
//! log: stdout
//! resolver: resolver.d/     # modules inline, in a file, or in a directory
//! escaper: [...]
//! server: [...]
//! ```

mod controller;
mod log_cfg;
mod runtime;
mod stat;
mod worker;

use std::path::{Path, PathBuf};

use px_yaml::section::{ModuleDoc, read_section};
use px_yaml::{ConfigError, Node, Val, load_file};

pub use controller::ControllerConfig;
pub use log_cfg::{LogConfig, LogDriver};
pub use runtime::RuntimeConfig;
pub use stat::parse as parse_stat;
pub use worker::{ReuseportBalancing, WorkerConfig, available_cpus};

/// The module kinds, in build order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `resolver:`
    Resolver,
    /// `escaper:`
    Escaper,
    /// `user_group:`
    UserGroup,
    /// `auditor:`
    Auditor,
    /// `server:`
    Server,
}

impl Kind {
    /// All kinds in build order: a kind only depends on kinds before it (or itself).
    pub const ALL: [Kind; 5] = [
        Kind::Resolver,
        Kind::Escaper,
        Kind::UserGroup,
        Kind::Auditor,
        Kind::Server,
    ];

    /// The kind whose section key (or `g3proxy-ctl` word) this is.
    pub fn from_name(name: &str) -> Option<Kind> {
        match name.replace('-', "_").as_str() {
            "resolver" => Some(Kind::Resolver),
            "escaper" => Some(Kind::Escaper),
            "user_group" => Some(Kind::UserGroup),
            "auditor" => Some(Kind::Auditor),
            "server" => Some(Kind::Server),
            _ => None,
        }
    }

    /// The kind in words, for messages (`user group`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::UserGroup => "user group",
            k => k.section(),
        }
    }

    /// The section key in the main file.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Resolver => "resolver",
            Kind::Escaper => "escaper",
            Kind::UserGroup => "user_group",
            Kind::Auditor => "auditor",
            Kind::Server => "server",
        }
    }
}

/// The whole config as read from disk, before any module is built.
#[derive(Debug, Clone)]
pub struct MainConfig {
    /// The main file.
    pub file: PathBuf,
    /// `runtime:`
    pub runtime: RuntimeConfig,
    /// `log:`
    pub log: LogConfig,
    /// `controller:`
    pub controller: ControllerConfig,
    /// `worker:`: worker runtimes, when present.
    pub worker: Option<WorkerConfig>,
    /// `stat:`: the StatsD output, when present.
    pub stat: Option<px_core::stats::StatsdConfig>,
    /// The module documents per kind, in file order.
    pub modules: Vec<(Kind, ModuleDoc)>,
}

/// Finds the main file: `path` itself, or `main.yaml`, `main.yml`, `g3proxy.yaml`
/// or `g3proxy.yml` inside a directory.
pub fn locate_main(path: &Path) -> Result<PathBuf, ConfigError> {
    if path.is_dir() {
        for name in ["main.yaml", "main.yml", "g3proxy.yaml", "g3proxy.yml"] {
            let p = path.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        return Err(ConfigError::file(
            path,
            "directory holds none of main.yaml, main.yml, g3proxy.yaml, g3proxy.yml",
        ));
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(ConfigError::file(path, "no such config file or directory"))
}

/// Reads the main file and every module document it points to. Every error
/// found is returned, not only the first.
pub fn load_main(path: &Path) -> Result<MainConfig, Vec<ConfigError>> {
    let file = locate_main(path).map_err(|e| vec![e])?;
    let root: Node = load_file(&file).map_err(|e| vec![e])?;
    let suffix = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("yaml")
        .to_string();
    let mut errors = Vec::new();
    let val = Val::root(&root, "");
    let mut map = match val.map() {
        Ok(m) => m,
        Err(e) => return Err(vec![e]),
    };
    let runtime = match map.get("runtime").map(|v| RuntimeConfig::parse(&v)) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            errors.push(e);
            RuntimeConfig::default()
        }
        None => RuntimeConfig::default(),
    };
    let log = match map.get("log").map(|v| LogConfig::parse(&v)) {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            errors.push(e);
            LogConfig::default()
        }
        None => LogConfig::default(),
    };
    let controller = match map.get("controller").map(|v| ControllerConfig::parse(&v)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            errors.push(e);
            ControllerConfig::default()
        }
        None => ControllerConfig::default(),
    };
    let worker = match map.get("worker").map(|v| WorkerConfig::parse(&v)) {
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    let stat = match map.get("stat").map(|v| stat::parse(&v)) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    let mut modules = Vec::new();
    for kind in Kind::ALL {
        if let Some(v) = map.get(kind.section()) {
            match read_section(&v, &suffix) {
                Ok(docs) => modules.extend(docs.into_iter().map(|d| (kind, d))),
                Err(e) => errors.push(e),
            }
        }
    }
    if let Err(e) = map.finish() {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(MainConfig {
            file,
            runtime,
            log,
            controller,
            worker,
            stat,
            modules,
        })
    } else {
        Err(errors)
    }
}

/// Reads the main file again and only the section of one kind (so a broken
/// file of another kind does not stop the reload of this one).
pub fn load_kind(path: &Path, kind: Kind) -> Result<Vec<ModuleDoc>, Vec<ConfigError>> {
    let file = locate_main(path).map_err(|e| vec![e])?;
    let root: Node = load_file(&file).map_err(|e| vec![e])?;
    let suffix = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("yaml")
        .to_string();
    let val = Val::root(&root, "");
    let mut map = val.map().map_err(|e| vec![e])?;
    match map.get(kind.section()) {
        Some(v) => read_section(&v, &suffix).map_err(|e| vec![e]),
        None => Ok(Vec::new()),
    }
}
