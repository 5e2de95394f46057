//! `runtime:`: the main tokio runtime and graceful quit timings.
//!
//! ```yaml
//! runtime:
//!   thread_number: 2
//!   task_wait_timeout: 30s
//!   offline_handover_wait: 5s   # after `g3proxy-ctl offline`: wait for a successor
//! ```

use std::time::Duration;

use px_yaml::{ConfigError, Val, values};

/// The `runtime:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Worker threads; 0 is a current-thread scheduler; `None` is one per CPU.
    pub thread_number: Option<usize>,
    /// Worker thread name.
    pub thread_name: String,
    /// Worker thread stack size.
    pub thread_stack_size: Option<usize>,
    /// Max I/O events per scheduler tick.
    pub max_io_events_per_tick: Option<usize>,
    /// Delay before listeners close after a quit signal.
    pub server_offline_delay: Duration,
    /// Delay before counting alive tasks once listeners are closed.
    pub task_wait_delay: Duration,
    /// How long running tasks may go on after a quit signal.
    pub task_wait_timeout: Duration,
    /// How long to wait after forcing tasks to quit.
    pub task_quit_timeout: Duration,
    /// After `g3proxy-ctl offline` (systemd's stop, or the first half of a
    /// restart), how long the listeners go on accepting while waiting for a
    /// new daemon of the group to take them over; they close at once when one
    /// does.
    pub offline_handover_wait: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            thread_number: None,
            thread_name: "tokio".to_string(),
            thread_stack_size: None,
            max_io_events_per_tick: None,
            server_offline_delay: Duration::ZERO,
            task_wait_delay: Duration::from_secs(2),
            task_wait_timeout: Duration::from_secs(10 * 3600),
            task_quit_timeout: Duration::from_secs(1),
            offline_handover_wait: Duration::from_secs(5),
        }
    }
}

impl RuntimeConfig {
    /// Parses the `runtime:` map.
    pub fn parse(v: &Val<'_>) -> Result<Self, ConfigError> {
        let mut cfg = RuntimeConfig::default();
        let mut m = v.map()?;
        if let Some(x) = m.get("thread_number") {
            cfg.thread_number = Some(x.as_int()?);
        }
        if let Some(x) = m.get("thread_name") {
            let s = x.as_str()?;
            if !s.is_ascii() {
                return Err(x.err("thread_name must be ASCII"));
            }
            cfg.thread_name = s.to_string();
        }
        if let Some(x) = m.get("thread_stack_size") {
            cfg.thread_stack_size = Some(values::size(&x)? as usize);
        }
        if let Some(x) = m.get("max_io_events_per_tick") {
            cfg.max_io_events_per_tick = Some(x.as_int()?);
        }
        if let Some(x) = m.get("server_offline_delay") {
            cfg.server_offline_delay = values::duration(&x)?;
        }
        if let Some(x) = m.get("task_wait_delay") {
            cfg.task_wait_delay = values::duration(&x)?;
        }
        if let Some(x) = m.get("task_wait_timeout") {
            cfg.task_wait_timeout = values::duration(&x)?;
        }
        if let Some(x) = m.get("task_quit_timeout") {
            cfg.task_quit_timeout = values::duration(&x)?;
        }
        if let Some(x) = m.get("offline_handover_wait") {
            cfg.offline_handover_wait = values::duration(&x)?;
        }
        m.finish()?;
        Ok(cfg)
    }
}
