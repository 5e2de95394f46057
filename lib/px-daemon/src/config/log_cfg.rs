//! `log:`: where the daemon's logs go.
//!
//! ```yaml
//! log: stdout          # or stderr, syslog, journal, discard
//! # or
//! log:
//!   default: journal
//!   task: stdout       # accepted; all loggers share one driver for now
//! ```

use px_yaml::{ConfigError, Val, normalize_key};

/// A log driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogDriver {
    /// Drop logs.
    Discard,
    /// Standard output.
    Stdout,
    /// Standard error (the default when `log:` is absent, so errors are seen).
    #[default]
    Stderr,
    /// The local syslog daemon (/dev/log).
    Syslog,
    /// systemd-journald, natively.
    Journal,
}

/// The `log:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// The driver for every logger.
    pub driver: LogDriver,
    /// Whether the config has a `log:` section (else `-s` picks journald).
    pub explicit: bool,
}

fn driver(v: &Val<'_>) -> Result<LogDriver, ConfigError> {
    if v.is_map() {
        let mut m = v.map()?;
        let mut found = None;
        for (key, val) in m.rest() {
            let d = match normalize_key(&key).as_str() {
                "journal" => LogDriver::Journal,
                "syslog" => {
                    let mut sm = val.map()?;
                    sm.unimplemented(&[
                        "target_unix",
                        "target_udp",
                        "target",
                        "format_rfc5424",
                        "emit_hostname",
                        "append_report_ts",
                    ])?;
                    sm.finish()?;
                    LogDriver::Syslog
                }
                "fluentd" => {
                    return Err(val.err(
                        "log driver `fluentd` is known to g3proxy but not implemented yet by this proxy",
                    ));
                }
                "async_channel_size" | "async_thread_number" | "io_error_sampling_offset" => {
                    val.as_u64()?;
                    continue;
                }
                other => return Err(val.err(format!("unknown log config key `{other}`"))),
            };
            found = Some(d);
        }
        m.finish()?;
        return Ok(found.unwrap_or(LogDriver::Discard));
    }
    let s = v.as_str()?;
    match normalize_key(s).as_str() {
        "discard" => Ok(LogDriver::Discard),
        "stdout" => Ok(LogDriver::Stdout),
        "stderr" => Ok(LogDriver::Stderr),
        "syslog" => Ok(LogDriver::Syslog),
        "journal" => Ok(LogDriver::Journal),
        "fluentd" => Err(
            v.err("log driver `fluentd` is known to g3proxy but not implemented yet by this proxy")
        ),
        other => Err(v.err(format!(
            "unknown log driver `{other}` (discard, stdout, stderr, syslog, journal)"
        ))),
    }
}

impl LogConfig {
    /// Parses `log:` as a driver name or a map of loggers.
    pub fn parse(v: &Val<'_>) -> Result<Self, ConfigError> {
        if !v.is_map() {
            return Ok(LogConfig {
                driver: driver(v)?,
                explicit: true,
            });
        }
        let mut m = v.map()?;
        let mut cfg = LogConfig {
            explicit: true,
            ..LogConfig::default()
        };
        if let Some(d) = m.get("default") {
            cfg.driver = driver(&d)?;
        }
        for logger in ["task", "escape", "resolve", "audit", "intercept", "inspect"] {
            if let Some(d) = m.get(logger) {
                driver(&d)?;
            }
        }
        if m.has("syslog") || m.has("fluentd") {
            m.unimplemented(&["syslog", "fluentd"])?;
        }
        m.finish()?;
        Ok(cfg)
    }
}
