//! Reading the registry into samples: counters become the change since the
//! last collection, gauges their value now. The emitter sends the samples; a
//! Prometheus renderer can read the same objects.

use std::collections::HashMap;

use crate::registry::StatsRegistry;

/// How a sample is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A StatsD counter (`|c`): the change since the previous emission.
    Counter,
    /// A StatsD gauge (`|g`): the value now.
    Gauge,
}

/// One metric to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The metric name without the global prefix (`server.task.total`).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: SampleKind,
    /// The counter's change, or the gauge's value.
    pub value: u64,
    /// The tags of the object (`server`, `stat_id`, ...) and of the metric (`transport`, ...).
    pub tags: Vec<(&'static str, String)>,
}

impl Sample {
    /// The value of one tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One value read from a stats object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub(crate) name: &'static str,
    /// A metric tag besides the object's (`transport`, `rr_type`).
    pub(crate) extra: Option<(&'static str, &'static str)>,
    pub(crate) value: Value,
}

/// A monotonic total or a gauge.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    Total(u64),
    Gauge(u64),
}

impl Reading {
    pub(crate) fn total(name: &'static str, v: u64) -> Self {
        Reading {
            name,
            extra: None,
            value: Value::Total(v),
        }
    }

    pub(crate) fn gauge(name: &'static str, v: u64) -> Self {
        Reading {
            name,
            extra: None,
            value: Value::Gauge(v),
        }
    }

    pub(crate) fn with(mut self, key: &'static str, value: &'static str) -> Self {
        self.extra = Some((key, value));
        self
    }
}

/// A stats object the collector can read.
pub(crate) trait Readable {
    /// Its unique id in the registry (the `stat_id` tag).
    fn stat_id(&self) -> u64;
    /// Its tags (`server: NAME`, ...), without `stat_id` and `daemon_group`.
    fn tags(&self) -> Vec<(&'static str, String)>;
    /// Its values, always in the same order.
    fn read(&self, out: &mut Vec<Reading>);
    /// Whether to send nothing for it when no counter moved and every gauge is 0
    /// (objects that come and go in numbers, like users).
    fn quiet_when_idle(&self) -> bool {
        false
    }
}

/// Remembers the totals sent last, per object, to send counters as changes.
#[derive(Debug, Default)]
pub struct Collector {
    last: HashMap<u64, Vec<u64>>,
    scratch: Vec<Reading>,
}

impl Collector {
    /// Reads every object of the registry; objects no module holds any more
    /// are read one last time and dropped from the registry.
    pub fn collect(&mut self, registry: &StatsRegistry) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        registry.visit(&mut |obj: &dyn Readable, dropped: bool| {
            self.read(obj, &mut out);
            if dropped {
                gone.push(obj.stat_id());
            }
        });
        for id in gone {
            self.last.remove(&id);
        }
        out
    }

    fn read(&mut self, obj: &dyn Readable, out: &mut Vec<Sample>) {
        self.scratch.clear();
        obj.read(&mut self.scratch);
        let last = self.last.entry(obj.stat_id()).or_default();
        last.resize(self.scratch.len(), 0);
        let mut samples = Vec::with_capacity(self.scratch.len());
        let mut active = false;
        for (r, prev) in self.scratch.iter().zip(last.iter_mut()) {
            let (kind, value) = match r.value {
                Value::Total(now) => {
                    let delta = now.saturating_sub(*prev);
                    *prev = now;
                    (SampleKind::Counter, delta)
                }
                Value::Gauge(v) => {
                    // a gauge that just fell to 0 is news too
                    active |= *prev != v;
                    *prev = v;
                    (SampleKind::Gauge, v)
                }
            };
            active |= value > 0;
            samples.push((r, kind, value));
        }
        if !active && obj.quiet_when_idle() {
            return;
        }
        let mut base = obj.tags();
        base.push((crate::names::TAG_STAT_ID, obj.stat_id().to_string()));
        for (r, kind, value) in samples {
            let mut tags = base.clone();
            if let Some((k, v)) = r.extra {
                tags.push((k, v.to_string()));
            }
            out.push(Sample {
                name: r.name,
                kind,
                value,
                tags,
            });
        }
    }
}
