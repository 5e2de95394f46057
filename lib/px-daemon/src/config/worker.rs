//! `worker:`: the worker runtimes (g3's "unaided runtime"). When present, the
//! daemon starts `thread_number` threads, each running its own
//! current-thread tokio runtime, optionally pinned to CPUs; servers with
//! `listen_in_worker: true` get one SO_REUSEPORT listener per worker, and the
//! tasks of every other server are spread over the workers too.
//!
//! Keys:
//! - `thread_number` (default: the number of CPUs; `0` also means that),
//! - `thread_stack_size` (a size, default: the system's),
//! - `sched_affinity`: `true` pins worker *i* to CPU *i*; a map
//!   `{worker_id: cpu | [cpus]}` pins the listed workers; `false` or absent
//!   pins none,
//! - `max_io_events_per_tick` (default 1024, tokio's),
//! - `reuseport_balancing` (this project's): `kernel` (default, the kernel
//!   hashes the 4-tuple) or `cbpf` (a classic BPF program picks the worker's
//!   listener by client IP, so one client always lands on one worker).
//!
//! ```yaml
//! worker:
//!   thread_number: 2
//!   sched_affinity: {0: 0, 1: [1]}
//! ```

use std::collections::BTreeMap;

use px_yaml::{ConfigError, Val, values};

/// The highest CPU id `sched_setaffinity(2)` takes with a default `cpu_set_t`.
const MAX_CPU_ID: usize = 1023;

/// How connections are spread over the per-worker listeners of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReuseportBalancing {
    /// The kernel's SO_REUSEPORT hash of the 4-tuple.
    #[default]
    Kernel,
    /// A classic BPF program keyed on the client IP (SO_ATTACH_REUSEPORT_CBPF).
    Cbpf,
}

/// The `worker:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// How many worker threads (at least 1).
    pub thread_number: usize,
    /// Stack size of each worker thread.
    pub thread_stack_size: Option<usize>,
    /// The CPUs each pinned worker may run on, by worker id.
    pub sched_affinity: BTreeMap<usize, Vec<usize>>,
    /// Max I/O events per scheduler tick.
    pub max_io_events_per_tick: Option<usize>,
    /// How the per-worker listeners share connections.
    pub reuseport_balancing: ReuseportBalancing,
}

/// The number of CPUs this process may use (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn cpu_id(v: &Val<'_>) -> Result<usize, ConfigError> {
    let id: usize = v.as_int()?;
    if id > MAX_CPU_ID {
        return Err(v.err(format!("CPU id {id} is out of range (0..={MAX_CPU_ID})")));
    }
    Ok(id)
}

/// A g3 "cpu set": one CPU id or a list of them.
fn cpu_set(v: &Val<'_>) -> Result<Vec<usize>, ConfigError> {
    let mut cpus = Vec::new();
    for item in v.list() {
        let id = cpu_id(&item)?;
        if !cpus.contains(&id) {
            cpus.push(id);
        }
    }
    if cpus.is_empty() {
        return Err(v.err("expected a CPU id or a list of CPU ids"));
    }
    cpus.sort_unstable();
    Ok(cpus)
}

impl WorkerConfig {
    /// Parses the `worker:` map (`worker: ~` or `{}` takes every default).
    pub fn parse(v: &Val<'_>) -> Result<Self, ConfigError> {
        let mut m = v.map()?;
        let thread_number = match m.get("thread_number") {
            Some(x) => match x.as_int::<usize>()? {
                0 => available_cpus(),
                n if n > 1024 => return Err(x.err("thread_number must be at most 1024")),
                n => n,
            },
            None => available_cpus(),
        };
        let thread_stack_size = match m.get("thread_stack_size") {
            Some(x) => {
                let s = values::size(&x)?;
                let s = usize::try_from(s).map_err(|_| x.err("thread_stack_size is too large"))?;
                if s < 64_000 {
                    return Err(x.err("thread_stack_size must be at least 64K"));
                }
                Some(s)
            }
            None => None,
        };
        let mut sched_affinity = BTreeMap::new();
        if let Some(x) = m.get("sched_affinity") {
            if x.is_map() {
                let mut am = x.map()?;
                for (key, val) in am.rest() {
                    let id: usize = key.trim().parse().map_err(|_| {
                        val.err(format!(
                            "sched_affinity keys are worker ids (0, 1, ...), got {key:?}"
                        ))
                    })?;
                    if id >= thread_number {
                        return Err(val.err(format!(
                            "worker {id} does not exist (thread_number is {thread_number})"
                        )));
                    }
                    sched_affinity.insert(id, cpu_set(&val)?);
                }
            } else if x.as_bool()? {
                for i in 0..thread_number {
                    if i > MAX_CPU_ID {
                        return Err(x.err(format!(
                            "sched_affinity: true pins worker i to CPU i, and CPU ids stop at {MAX_CPU_ID}"
                        )));
                    }
                    sched_affinity.insert(i, vec![i]);
                }
            }
        }
        let max_io_events_per_tick = match m.get("max_io_events_per_tick") {
            Some(x) => match x.as_int::<usize>()? {
                0 => return Err(x.err("max_io_events_per_tick must be at least 1")),
                n => Some(n),
            },
            None => None,
        };
        let reuseport_balancing = match m.get("reuseport_balancing") {
            Some(x) => match x.as_str()?.to_ascii_lowercase().as_str() {
                "kernel" | "default" => ReuseportBalancing::Kernel,
                "cbpf" => ReuseportBalancing::Cbpf,
                other => {
                    return Err(x.err(format!(
                        "reuseport_balancing is `kernel` or `cbpf`, got {other:?}"
                    )));
                }
            },
            None => ReuseportBalancing::Kernel,
        };
        m.finish()?;
        Ok(WorkerConfig {
            thread_number,
            thread_stack_size,
            sched_affinity,
            max_io_events_per_tick,
            reuseport_balancing,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<WorkerConfig, ConfigError> {
        let n = px_yaml::load_str(text, Path::new("m.yaml")).unwrap();
        WorkerConfig::parse(&Val::root(&n, "worker"))
    }

    #[test]
    fn defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.thread_number, available_cpus());
        assert!(c.sched_affinity.is_empty());
        assert_eq!(c.thread_stack_size, None);
        assert_eq!(c.max_io_events_per_tick, None);
        assert_eq!(c.reuseport_balancing, ReuseportBalancing::Kernel);
        assert_eq!(parse("~").unwrap(), c);
        assert_eq!(parse("{thread_number: 0}").unwrap(), c);
    }

    #[test]
    fn mapped_affinity() {
        let c = parse("{thread_number: 3, sched_affinity: true}").unwrap();
        assert_eq!(c.thread_number, 3);
        let want: BTreeMap<usize, Vec<usize>> = [(0, vec![0]), (1, vec![1]), (2, vec![2])]
            .into_iter()
            .collect();
        assert_eq!(c.sched_affinity, want);
        let c = parse("{thread_number: 2, sched_affinity: false}").unwrap();
        assert!(c.sched_affinity.is_empty());
    }

    #[test]
    fn map_affinity() {
        let c = parse("{thread_number: 4, sched_affinity: {0: 3, 2: [1, 0, 1], \"3\": \"2\"}}")
            .unwrap();
        let want: BTreeMap<usize, Vec<usize>> = [(0, vec![3]), (2, vec![0, 1]), (3, vec![2])]
            .into_iter()
            .collect();
        assert_eq!(c.sched_affinity, want);
    }

    #[test]
    fn other_keys() {
        let c = parse(
            "{thread_number: 2, thread_stack_size: 1M, max_io_events_per_tick: 256, \
             reuseport_balancing: cbpf}",
        )
        .unwrap();
        assert_eq!(c.thread_stack_size, Some(1_000_000));
        assert_eq!(c.max_io_events_per_tick, Some(256));
        assert_eq!(c.reuseport_balancing, ReuseportBalancing::Cbpf);
    }

    #[test]
    fn errors_point_at_the_key() {
        for (text, want) in [
            (
                "{thread_number: 2, sched_affinity: {2: 0}}",
                "worker 2 does not exist",
            ),
            ("{sched_affinity: {a: 0}}", "worker ids"),
            ("{sched_affinity: {0: 5000}}", "out of range"),
            ("{sched_affinity: {0: []}}", "CPU id"),
            ("{sched_affinity: maybe}", "boolean"),
            ("{thread_number: -1}", "non-negative"),
            ("{thread_stack_size: 1K}", "at least 64K"),
            ("{max_io_events_per_tick: 0}", "at least 1"),
            ("{reuseport_balancing: ebpf}", "kernel"),
            ("{thread_name: x}", "unknown key"),
            ("[1]", "expected a map"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = parse("{thread_number: 2,\n sched_affinity: {0: 9999}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.yaml:2:"), "{e}");
        assert!(e.contains("sched_affinity"), "{e}");
    }
}
