//! The daemon's machinery, independent of which module types exist:
//! config loading ([`config`]), building and validating modules ([`build`]),
//! the running set of modules ([`app`]), listeners ([`listen`]), logging
//! ([`logger`]), reloads ([`reload`]), the control socket and listener
//! hand-over ([`control`]), the quit sequence ([`lifecycle`]) and the worker
//! runtimes ([`worker`]).

pub mod app;
pub mod build;
pub mod config;
pub mod control;
pub mod lifecycle;
pub mod listen;
pub mod logger;
pub mod reload;
pub mod stats;
pub mod worker;
