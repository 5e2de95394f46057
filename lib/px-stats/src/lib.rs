//! Statistics of the running modules and their StatsD output.
//!
//! Every module keeps its counters in one `Arc`'d stats object of its kind:
//! [`ServerStats`], [`EscaperStats`], [`ResolverStats`], and [`UserStats`] per
//! (user group, user, server). The counters are atomics that a task touches
//! once when it starts (`task.total`, `task.alive`) and once when it ends (bytes
//! each way, folded from the task's own plain fields or its relay outcome):
//! never per read or write.
//!
//! A [`StatsRegistry`] owned by the daemon's `App` hands out the stats object
//! of a module by name, the same `Arc` for the same name, so a module rebuilt
//! by a reload keeps counting where the old one stopped. Modules reach it
//! through `px_core::ModuleLookup::stats()` while they are built; a module
//! built without one (`g3proxy -t`, unit tests) gets a detached object that
//! counts but is never emitted.
//!
//! The [`StatsdEmitter`] thread wakes every `emit_interval`, reads every
//! object of the registry and sends counters (the change since its last
//! visit) and gauges to a StatsD server over UDP or a Unix datagram socket
//! (cadence), with g3proxy's metric names and tags ([`names`]). Objects no
//! module holds any more are dropped from the registry after their last
//! emission.
//!
//! Process-wide totals that no module owns (relays per data path, kTLS
//! outcomes) are read through functions the daemon installs on the registry
//! ([`process`]), because the crates that count them sit above this one.
//!
//! ```
//! use px_stats::{StatsRegistry, collect::Collector};
//! let registry = StatsRegistry::new();
//! let server = registry.server("http");
//! server.add_connection();
//! let task = server.task();
//! server.add_tcp_traffic(120, 4096);
//! drop(task);
//! let mut collector = Collector::default();
//! let samples = collector.collect(&registry);
//! assert!(samples.iter().any(|s| s.name == "server.task.total" && s.value == 1));
//! ```

pub mod collect;
pub mod escaper;
pub mod names;
pub mod process;
pub mod registry;
pub mod resolver;
pub mod server;
pub mod statsd;
pub mod user;

pub use escaper::EscaperStats;
pub use process::{KtlsTotals, RelayPathTotals};
pub use registry::StatsRegistry;
pub use resolver::{DriverResult, ResolverStats, RrType};
pub use server::{ServerStats, ServerTask};
pub use statsd::{StatsdConfig, StatsdEmitter, StatsdTarget};
pub use user::{UserStats, UserTask};
