//! Upstream selection for `tcp_stream` and `tls_stream`: `proxy_pass` (alias `upstream`) as one
//! address or a weighted list, and `upstream_pick_policy`.
//!
//! Policies (g3proxy's "selective pick policy"): `random` (weighted, the default), `serial`
//! (alias `sequence`: the configured order, heavier first), `round_robin` (alias `rr`: a smooth
//! weighted rotation), `ketama` (consistent hash ring), `rendezvous` (weighted highest random
//! weight) and `jump_hash` (jump consistent hash). The hash policies key on the client IP and the
//! server IP, so one client stays on one upstream.
//!
//! [`UpstreamPicker::order`] gives every upstream in the order to try: the policy's choice
//! first, then fallbacks. An upstream whose connect failed is marked down for
//! [`DOWN_HOLD`] and moved behind the healthy ones, so later tasks skip it without waiting.
//!
//! ```yaml
//! proxy_pass:
//!   - 127.0.0.1:5201
//!   - {addr: 127.0.0.1:5202, weight: 2}
//! upstream_pick_policy: rr
//! ```

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use px_core::UpstreamAddr;
use px_yaml::{ConfigError, Val, values};

/// How long an upstream whose connect failed is tried only after the others.
pub const DOWN_HOLD: Duration = Duration::from_secs(10);

/// Virtual nodes per unit of weight on the ketama ring.
const KETAMA_POINTS: u32 = 64;

/// An `upstream_pick_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickPolicy {
    /// Weighted random.
    Random,
    /// The configured order.
    Serial,
    /// Weighted rotation.
    RoundRobin,
    /// Ketama consistent hashing.
    Ketama,
    /// Rendezvous hashing.
    Rendezvous,
    /// Jump consistent hashing.
    JumpHash,
}

impl PickPolicy {
    /// Parses a policy name.
    pub fn parse(v: &Val<'_>) -> Result<PickPolicy, ConfigError> {
        let s = v.as_text()?;
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "random" => Ok(PickPolicy::Random),
            "serial" | "sequence" => Ok(PickPolicy::Serial),
            "round_robin" | "roundrobin" | "rr" => Ok(PickPolicy::RoundRobin),
            "ketama" => Ok(PickPolicy::Ketama),
            "rendezvous" => Ok(PickPolicy::Rendezvous),
            "jump_hash" | "jumphash" | "jump" => Ok(PickPolicy::JumpHash),
            other => Err(v.err(format!(
                "unknown pick policy `{other}` (random, serial, round_robin, ketama, rendezvous, jump_hash)"
            ))),
        }
    }

    /// Whether the policy keys on the client.
    pub fn is_hash(self) -> bool {
        matches!(
            self,
            PickPolicy::Ketama | PickPolicy::Rendezvous | PickPolicy::JumpHash
        )
    }
}

/// A weighted upstream list with its pick policy and health marks.
#[derive(Debug)]
pub struct UpstreamPicker {
    items: Vec<UpstreamAddr>,
    weights: Vec<u32>,
    /// Per item hash of its address, for the hash policies.
    item_hash: Vec<u64>,
    policy: PickPolicy,
    /// round_robin: the smooth weighted sequence of item indices.
    rr_seq: Vec<usize>,
    rr_next: AtomicUsize,
    /// ketama: sorted (point, item) pairs.
    ring: Vec<(u64, usize)>,
    /// jump_hash: each item index repeated by its weight.
    slots: Vec<usize>,
    /// Milliseconds after `base` until which an item is down; 0 when up.
    down_until: Vec<AtomicU64>,
    base: Instant,
}

/// Parses `proxy_pass`: one `host:port`, or a list of `host:port` or `{addr, weight}`.
pub fn parse_upstreams(v: &Val<'_>) -> Result<Vec<(UpstreamAddr, u32)>, ConfigError> {
    let mut out = Vec::new();
    for item in v.list() {
        if item.is_map() {
            let mut m = item.map()?;
            let addr = values::upstream_addr(&m.required("addr")?, None)?;
            let weight = match m.get("weight") {
                Some(w) => weight_of(&w)?,
                None => 1,
            };
            m.finish()?;
            out.push((addr, weight));
        } else {
            out.push((values::upstream_addr(&item, None)?, 1));
        }
    }
    if out.is_empty() {
        return Err(v.err("at least one upstream address is needed"));
    }
    Ok(out)
}

fn weight_of(v: &Val<'_>) -> Result<u32, ConfigError> {
    let w = v.as_f64()?;
    if !(w > 0.0 && w <= 10_000.0) {
        return Err(v.err("weight must be above 0 and at most 10000"));
    }
    // the smallest integer at or above the weight
    Ok(w.ceil() as u32)
}

/// 64-bit FNV-1a.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A strong 64-bit finalizer (splitmix64), so nearby inputs spread.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash key of a client: its IP followed by the server's IP.
pub fn client_key(client: IpAddr, server: IpAddr) -> u64 {
    let mut bytes = Vec::with_capacity(32);
    match client.to_canonical() {
        IpAddr::V4(a) => bytes.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => bytes.extend_from_slice(&a.octets()),
    }
    match server.to_canonical() {
        IpAddr::V4(a) => bytes.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => bytes.extend_from_slice(&a.octets()),
    }
    mix(fnv1a(&bytes))
}

/// Google's jump consistent hash: a bucket in `0..buckets`.
fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    let n = i64::try_from(buckets).unwrap_or(i64::MAX);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b.wrapping_add(1) as f64)
            * ((1u64 << 31) as f64 / ((key >> 33).wrapping_add(1)) as f64)) as i64;
    }
    usize::try_from(b).unwrap_or(0)
}

/// The smooth weighted round robin sequence (nginx's): heavier items spread, not bunched.
fn smooth_sequence(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut seq = Vec::new();
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += i64::from(*w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        seq.push(best);
    }
    seq
}

impl UpstreamPicker {
    /// A picker over weighted upstreams.
    pub fn new(list: Vec<(UpstreamAddr, u32)>, policy: PickPolicy) -> UpstreamPicker {
        let (items, weights): (Vec<_>, Vec<_>) = list.into_iter().unzip();
        let item_hash: Vec<u64> = items
            .iter()
            .map(|a| mix(fnv1a(a.to_string().as_bytes())))
            .collect();
        let rr_seq = smooth_sequence(&weights);
        let mut ring = Vec::new();
        if policy == PickPolicy::Ketama {
            for (i, w) in weights.iter().enumerate() {
                for p in 0..w.saturating_mul(KETAMA_POINTS) {
                    ring.push((mix(item_hash[i] ^ mix(u64::from(p))), i));
                }
            }
            ring.sort_unstable();
        }
        let mut slots = Vec::new();
        if policy == PickPolicy::JumpHash {
            for (i, w) in weights.iter().enumerate() {
                for _ in 0..*w {
                    slots.push(i);
                }
            }
        }
        let down_until = items.iter().map(|_| AtomicU64::new(0)).collect();
        UpstreamPicker {
            items,
            weights,
            item_hash,
            policy,
            rr_seq,
            rr_next: AtomicUsize::new(0),
            ring,
            slots,
            down_until,
            base: Instant::now(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> PickPolicy {
        self.policy
    }

    /// The upstream at an index given by [`UpstreamPicker::order`].
    pub fn get(&self, idx: usize) -> Option<&UpstreamAddr> {
        self.items.get(idx)
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks an upstream down after a failed connect.
    pub fn mark_down(&self, idx: usize) {
        if let Some(d) = self.down_until.get(idx) {
            let until = self.now_ms() + u64::try_from(DOWN_HOLD.as_millis()).unwrap_or(10_000);
            d.store(until.max(1), Ordering::Relaxed);
        }
    }

    /// Marks an upstream up after a good connect.
    pub fn mark_up(&self, idx: usize) {
        if let Some(d) = self.down_until.get(idx) {
            d.store(0, Ordering::Relaxed);
        }
    }

    fn is_down(&self, idx: usize, now: u64) -> bool {
        self.down_until
            .get(idx)
            .map(|d| d.load(Ordering::Relaxed) > now)
            .unwrap_or(false)
    }

    /// Rendezvous order: items by weighted score for `key`, best first.
    fn rendezvous(&self, key: u64) -> Vec<usize> {
        let mut scored: Vec<(f64, usize)> = (0..self.items.len())
            .map(|i| {
                let h = mix(key ^ self.item_hash[i]);
                // a uniform value in (0, 1)
                let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                (-f64::from(self.weights[i]) / u.ln(), i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(_, i)| i).collect()
    }

    fn random_order(&self) -> Vec<usize> {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut left: Vec<usize> = (0..self.items.len()).collect();
        let mut out = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let total: u64 = left.iter().map(|i| u64::from(self.weights[*i])).sum();
            let mut r = rng.random_range(0..total.max(1));
            let mut pos = 0;
            for (p, i) in left.iter().enumerate() {
                let w = u64::from(self.weights[*i]);
                if r < w {
                    pos = p;
                    break;
                }
                r -= w;
            }
            out.push(left.remove(pos));
        }
        out
    }

    /// Puts `first` ahead of the rest of `order`.
    fn with_first(first: usize, order: Vec<usize>) -> Vec<usize> {
        let mut out = vec![first];
        out.extend(order.into_iter().filter(|i| *i != first));
        out
    }

    /// The policy's order for a task, before health is considered.
    pub fn policy_order(&self, key: u64) -> Vec<usize> {
        let n = self.items.len();
        if n <= 1 {
            return (0..n).collect();
        }
        match self.policy {
            PickPolicy::Random => self.random_order(),
            PickPolicy::Serial => {
                let mut idx: Vec<usize> = (0..n).collect();
                idx.sort_by(|a, b| self.weights[*b].cmp(&self.weights[*a]));
                idx
            }
            PickPolicy::RoundRobin => {
                let len = self.rr_seq.len().max(1);
                let start = self.rr_next.fetch_add(1, Ordering::Relaxed) % len;
                let mut out = Vec::with_capacity(n);
                for k in 0..self.rr_seq.len() {
                    let i = self.rr_seq[(start + k) % len];
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
                out
            }
            PickPolicy::Rendezvous => self.rendezvous(key),
            PickPolicy::Ketama => {
                let pos = self.ring.partition_point(|(p, _)| *p < key);
                let first = self
                    .ring
                    .get(pos)
                    .or_else(|| self.ring.first())
                    .map(|(_, i)| *i)
                    .unwrap_or(0);
                Self::with_first(first, self.rendezvous(key))
            }
            PickPolicy::JumpHash => {
                let slot = jump_hash(key, self.slots.len());
                let first = self.slots.get(slot).copied().unwrap_or(0);
                Self::with_first(first, self.rendezvous(key))
            }
        }
    }

    /// Every upstream in the order to try: the policy's order, upstreams marked down last.
    pub fn order(&self, key: u64) -> Vec<usize> {
        let order = self.policy_order(key);
        let now = self.now_ms();
        let (up, down): (Vec<usize>, Vec<usize>) =
            order.into_iter().partition(|i| !self.is_down(*i, now));
        up.into_iter().chain(down).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn picker(n: usize, policy: PickPolicy) -> UpstreamPicker {
        let list = (0..n)
            .map(|i| {
                (
                    UpstreamAddr::parse(&format!("10.0.0.{i}:80"), None).unwrap(),
                    1,
                )
            })
            .collect();
        UpstreamPicker::new(list, policy)
    }

    fn key(i: u8) -> u64 {
        client_key(IpAddr::from([192, 168, 0, i]), IpAddr::from([10, 1, 1, 1]))
    }

    #[test]
    fn round_robin_is_even_and_weighted() {
        let p = picker(3, PickPolicy::RoundRobin);
        let mut count = HashMap::new();
        for _ in 0..30 {
            *count.entry(p.order(0)[0]).or_insert(0) += 1;
        }
        assert_eq!(
            count.values().copied().collect::<Vec<_>>(),
            vec![10, 10, 10]
        );
        let list = vec![
            (UpstreamAddr::parse("a.test:1", None).unwrap(), 1),
            (UpstreamAddr::parse("b.test:1", None).unwrap(), 3),
        ];
        let p = UpstreamPicker::new(list, PickPolicy::RoundRobin);
        let firsts: Vec<usize> = (0..8).map(|_| p.order(0)[0]).collect();
        assert_eq!(firsts.iter().filter(|i| **i == 1).count(), 6);
        // smooth: the light one is not bunched
        assert_ne!(firsts[..2], [0, 0]);
    }

    #[test]
    fn hash_policies_are_sticky_and_spread() {
        for policy in [
            PickPolicy::Ketama,
            PickPolicy::Rendezvous,
            PickPolicy::JumpHash,
        ] {
            let p = picker(3, policy);
            let mut seen = std::collections::HashSet::new();
            for c in 0..60u8 {
                let first = p.order(key(c))[0];
                for _ in 0..5 {
                    assert_eq!(p.order(key(c))[0], first, "{policy:?}");
                }
                seen.insert(first);
                assert_eq!(p.order(key(c)).len(), 3);
            }
            assert_eq!(seen.len(), 3, "{policy:?} uses every upstream");
        }
    }

    #[test]
    fn consistent_when_one_is_added() {
        let small = picker(3, PickPolicy::JumpHash);
        let big = picker(4, PickPolicy::JumpHash);
        let moved = (0..200u8)
            .filter(|c| {
                let a = small.order(key(*c))[0];
                let b = big.order(key(*c))[0];
                a != b && b != 3
            })
            .count();
        assert_eq!(moved, 0, "jump hash only moves clients to the new bucket");
    }

    #[test]
    fn down_upstreams_go_last() {
        let p = picker(3, PickPolicy::Serial);
        assert_eq!(p.order(0), vec![0, 1, 2]);
        p.mark_down(0);
        assert_eq!(p.order(0), vec![1, 2, 0]);
        p.mark_up(0);
        assert_eq!(p.order(0), vec![0, 1, 2]);
    }

    #[test]
    fn random_respects_weights() {
        let list = vec![
            (UpstreamAddr::parse("a.test:1", None).unwrap(), 1),
            (UpstreamAddr::parse("b.test:1", None).unwrap(), 9),
        ];
        let p = UpstreamPicker::new(list, PickPolicy::Random);
        let heavy = (0..1000).filter(|_| p.order(0)[0] == 1).count();
        assert!(heavy > 800, "{heavy}");
        assert_eq!(p.order(0).len(), 2);
    }

    #[test]
    fn jump_hash_reference_values() {
        // values from the paper's reference implementation
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(1, 1), 0);
        let b = jump_hash(0xdead_beef, 10);
        assert!(b < 10);
    }
}
