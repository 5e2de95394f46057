//! Relay keys of the stream servers (`tcp_stream`, `tls_stream`, `sni_proxy`):
//! `tcp_copy_buffer_size` (default 16K, at least 4K), `task_idle_check_interval` (alias
//! `task_idle_check_duration`, default 60s, clamped to 2s..=30min) and `task_idle_max_count`
//! (default 5): a task with no traffic for interval x count ends.

use std::time::Duration;

use px_yaml::{ConfigError, MapReader, values};

/// The parsed relay keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamKeys {
    /// Buffer size per direction.
    pub buf_size: usize,
    /// The task idle time.
    pub idle_timeout: Duration,
}

impl StreamKeys {
    /// Takes the keys out of a server map.
    pub fn parse(map: &mut MapReader<'_>) -> Result<StreamKeys, ConfigError> {
        let mut buf_size = px_io::DEFAULT_BUF_SIZE;
        if let Some(v) = map.get("tcp_copy_buffer_size") {
            let n = usize::try_from(values::size(&v)?).map_err(|_| v.err("size out of range"))?;
            buf_size = n.clamp(4 * 1024, 16 * 1024 * 1024);
        }
        let mut interval = Duration::from_secs(60);
        if let Some(v) = map.get_any(&["task_idle_check_interval", "task_idle_check_duration"]) {
            interval =
                values::duration(&v)?.clamp(Duration::from_secs(2), Duration::from_secs(1800));
        }
        let mut count: u32 = 5;
        if let Some(v) = map.get("task_idle_max_count") {
            count = v.as_int::<u32>()?.max(1);
        }
        Ok(StreamKeys {
            buf_size,
            idle_timeout: interval.saturating_mul(count),
        })
    }
}
