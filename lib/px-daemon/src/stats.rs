//! The daemon's statistics: the [`StatsRegistry`] every module takes its
//! stats object from while it is built (through `ModuleLookup::stats`), and
//! the StatsD emitter thread started when the main file has a `stat:` section.
//!
//! The registry is the App's, not a global: a module rebuilt by a reload gets
//! the same object by name, so its counters go on; objects of modules gone
//! from the config are emitted once more and dropped.
//!
//! Besides the modules' objects, the emission carries process-wide totals
//! that px-stats cannot read itself (px-io and px-tls depend on it through
//! px-core): relays per data path (`relay.path.total`) and, built with the
//! `ktls` feature, TLS connections per kTLS outcome (`ktls.connection.total`).

use std::path::Path;
use std::sync::Arc;

use px_core::stats::{RelayPathTotals, StatsRegistry, StatsdConfig, StatsdEmitter};
use px_core::{Auditor, Escaper, Handle, Resolver, Server, UserGroup};
use px_yaml::ConfigError;

use crate::build::ExistingModules;

/// The registry and, with `stat:`, the emitter sending it.
#[derive(Debug, Default)]
pub struct AppStats {
    /// Every module's stats object.
    pub registry: StatsRegistry,
    emitter: Option<StatsdEmitter>,
}

impl AppStats {
    /// A registry without output.
    pub fn new() -> Self {
        AppStats::default()
    }

    /// Starts emitting the registry when `stat:` is configured.
    pub fn start_emitter(
        &mut self,
        config: Option<&StatsdConfig>,
        daemon_group: &str,
        main_file: &Path,
    ) -> Result<(), Vec<ConfigError>> {
        let Some(config) = config else {
            return Ok(());
        };
        // installed only when emitting, so a daemon without `stat:` hands out
        // the same stat_ids as before
        self.registry.set_relay_path_source(relay_path_totals);
        #[cfg(feature = "ktls")]
        self.registry.set_ktls_source(ktls_totals);
        let emitter =
            StatsdEmitter::start(config, self.registry.clone(), daemon_group).map_err(|e| {
                vec![ConfigError::file(
                    main_file,
                    format!("stat: cannot start the StatsD emitter: {e}"),
                )]
            })?;
        self.emitter = Some(emitter);
        Ok(())
    }

    /// Whether metrics are sent.
    pub fn emitting(&self) -> bool {
        self.emitter.is_some()
    }
}

/// px-io's relay totals in px-stats' shape (the crates do not know each other).
fn relay_path_totals() -> RelayPathTotals {
    let t = px_io::path_totals();
    RelayPathTotals {
        userspace: t.userspace,
        splice: t.splice,
        io_uring: t.io_uring,
    }
}

/// px-tls's kTLS totals in px-stats' shape; without the feature px-tls counts
/// nothing, so they are not emitted at all rather than as zeros.
#[cfg(feature = "ktls")]
fn ktls_totals() -> px_core::stats::KtlsTotals {
    let t = px_tls::ktls::totals();
    px_core::stats::KtlsTotals {
        ktls: t.ktls,
        fallback: t.fallback,
        failed: t.failed,
    }
}

/// The registry alone, as the "running modules" of a first build: no module
/// exists yet, only the stats to hand out.
impl ExistingModules for StatsRegistry {
    fn resolver(&self, _: &str) -> Option<Arc<Handle<dyn Resolver>>> {
        None
    }
    fn escaper(&self, _: &str) -> Option<Arc<Handle<dyn Escaper>>> {
        None
    }
    fn user_group(&self, _: &str) -> Option<Arc<Handle<dyn UserGroup>>> {
        None
    }
    fn auditor(&self, _: &str) -> Option<Arc<Handle<dyn Auditor>>> {
        None
    }
    fn server(&self, _: &str) -> Option<Arc<Handle<dyn Server>>> {
        None
    }
    fn stats(&self) -> Option<StatsRegistry> {
        Some(self.clone())
    }
}
