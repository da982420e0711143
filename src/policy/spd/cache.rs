//! A per-worker flow cache in front of the compiled SPD.
//!
//! Fixed capacity, allocated once: 4-way set-associative, one 64-byte entry
//! per flow. An entry remembers the policy generation it was filled under;
//! a lookup under another generation is a miss, so a policy change needs no
//! flush. Each worker owns its cache (`&mut self`), so there is no locking.

use std::net::IpAddr;

use super::{Action, FlowKey, Spd};

/// Ways per set.
const WAYS: usize = 4;

/// The flow, packed into five words for a fast compare.
type Packed = [u64; 5];

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    key: Packed,
    /// 0: empty (generations start at 1).
    generation: u64,
    action: Action,
}

const EMPTY: Entry = Entry { key: [0; 5], generation: 0, action: Action::Drop };

/// Per-worker cache of SPD decisions keyed on the flow.
pub struct FlowCache {
    entries: Vec<Entry>,
    set_mask: usize,
    clock: usize,
    hits: u64,
    misses: u64,
}

impl FlowCache {
    /// A cache of at least `capacity` flows (rounded up to a power of two,
    /// at least 4). This is the only allocation it makes.
    pub fn new(capacity: usize) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FlowCache { entries: vec![EMPTY; sets * WAYS], set_mask: sets - 1, clock: 0, hits: 0, misses: 0 }
    }

    /// Number of flows the cache holds.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The action for `key` under `spd`: cached if this flow was classified
    /// under the same policy generation, else looked up and remembered.
    #[inline]
    pub fn classify(&mut self, spd: &Spd, key: &FlowKey) -> Action {
        let k = pack(key);
        let generation = spd.generation();
        let set = (hash(&k) as usize & self.set_mask) * WAYS;
        if let Some(ways) = self.entries.get(set..set + WAYS) {
            for e in ways {
                if e.key == k && e.generation == generation {
                    self.hits += 1;
                    return e.action;
                }
            }
        }
        self.misses += 1;
        let action = spd.classify(key);
        self.insert(set, k, generation, action);
        action
    }

    fn insert(&mut self, set: usize, key: Packed, generation: u64, action: Action) {
        let Some(ways) = self.entries.get_mut(set..set + WAYS) else { return };
        // Prefer a slot that is empty or from an older policy, else rotate.
        let way = ways.iter().position(|e| e.generation != generation).unwrap_or_else(|| {
            self.clock = self.clock.wrapping_add(1);
            self.clock % WAYS
        });
        if let Some(e) = ways.get_mut(way) {
            *e = Entry { key, generation, action };
        }
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that went to the SPD.
    pub fn misses(&self) -> u64 {
        self.misses
    }
}

impl core::fmt::Debug for FlowCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowCache")
            .field("capacity", &self.entries.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

#[inline]
fn pack(k: &FlowKey) -> Packed {
    let (v6, s) = addr(k.src);
    let (_, d) = addr(k.dst);
    let port = |p: Option<u16>| p.map_or(0, |p| 0x1_0000 | u64::from(p));
    let meta = u64::from(v6) << 63
        | u64::from(k.dscp) << 48
        | u64::from(k.proto) << 40
        | port(k.src_port) << 20
        | port(k.dst_port);
    [(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64, meta]
}

#[inline]
fn addr(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(a) => (false, u32::from(a).into()),
        IpAddr::V6(a) => (true, a.into()),
    }
}

/// Multiply-xorshift mix of the packed key.
#[inline]
fn hash(k: &Packed) -> u64 {
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = 0u64;
    for w in k {
        h = (h ^ w).wrapping_mul(M);
        h ^= h >> 29;
    }
    h
}
