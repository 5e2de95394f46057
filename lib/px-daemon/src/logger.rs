//! The daemon logger behind the `log` facade: stdout, stderr, syslog or
//! journald, chosen by `log:`; verbosity by `-v` on the command line.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

use crate::config::LogDriver;

struct StreamLogger {
    stdout: bool,
    level: LevelFilter,
}

impl Log for StreamLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let line = format!(
            "{now} {:<5} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        // a closed stdout must not take the daemon down: drop the line
        if self.stdout {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        } else {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// The level for a `-v` count: 0 info, 1 debug, 2+ trace.
pub fn level_for(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the process logger; falls back to stderr when syslog or journald
/// cannot be reached, saying so.
pub fn init(driver: LogDriver, level: LevelFilter, program: &str) {
    let installed = match driver {
        LogDriver::Discard => {
            log::set_max_level(LevelFilter::Off);
            return;
        }
        LogDriver::Stdout => log::set_boxed_logger(Box::new(StreamLogger {
            stdout: true,
            level,
        }))
        .map_err(|e| e.to_string()),
        LogDriver::Stderr => log::set_boxed_logger(Box::new(StreamLogger {
            stdout: false,
            level,
        }))
        .map_err(|e| e.to_string()),
        LogDriver::Syslog => {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_DAEMON,
                hostname: None,
                process: program.to_string(),
                pid: std::process::id(),
            };
            match syslog::unix(formatter) {
                Ok(writer) => log::set_boxed_logger(Box::new(syslog::BasicLogger::new(writer)))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot reach syslog: {e}")),
            }
        }
        LogDriver::Journal => match systemd_journal_logger::JournalLog::new() {
            Ok(j) => j
                .with_syslog_identifier(program.to_string())
                .install()
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot reach journald: {e}")),
        },
    };
    match installed {
        Ok(()) => log::set_max_level(level),
        Err(e) => {
            let _ = log::set_boxed_logger(Box::new(StreamLogger {
                stdout: false,
                level,
            }));
            log::set_max_level(level);
            log::warn!("{e}; logging to stderr instead");
        }
    }
}
