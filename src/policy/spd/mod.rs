//! The security policy database (SPD): ordered rules compiled for fast
//! per-packet classification, and a per-worker flow cache in front of it.
//!
//! # Semantics
//! An SPD is an ordered list of [`Rule`]s. Each selects packets by source
//! and destination address range, IP protocol, source and destination port
//! range and DSCP set, and says [`Action::Protect`] (via a child SA),
//! [`Action::Bypass`] or [`Action::Drop`] (RFC 4301 §4.4.1 PROTECT, BYPASS,
//! DISCARD). **The first rule that matches wins.** RFC 4301 §4.4.1 lets an
//! implementation decorrelate overlapping entries so that order does not
//! matter; we keep the order instead (as RFC 4301 also allows, "ordered SPD"),
//! which is what swanctl and firewall users expect. A packet that matches no
//! rule gets the default action given to [`Spd::compile`] (normally
//! [`Action::Drop`] on the protected interface).
//!
//! Ports follow RFC 7296 §3.13.1: for ICMP and ICMPv6 the "port" is
//! `type << 8 | code`. A packet whose ports are not available (a non-first
//! fragment: RFC 4301 "OPAQUE") matches only rules whose port ranges are the
//! full `0..=65535`. A packet matches only rules of its own family; a rule
//! whose source and destination are both [`AddrRange::Any`] applies to both.
//!
//! # Lookup structure
//! [`Spd::compile`] builds one classifier per address family
//! (`family.rs`). Each is a bit-vector classifier: each dimension is cut
//! into elementary intervals, each interval points at a bit vector of the
//! rules that contain it, and the AND of the vectors gives the matching
//! rules, the lowest index winning. Where the rules allow it (most rule
//! sets: destinations are mostly narrow), a family is first *split by
//! destination* (`split.rs`): a direct table on the leading 4-16 bits of
//! the destination picks a piece holding only the rules whose destination
//! overlaps it, renumbered in order, so a lookup is a few short branch-free
//! tree descents (destination, source, protocol with destination port,
//! protocol with source port), a DSCP class, and usually one word AND.
//! Otherwise the family is one classifier over all its rules (`bitvec.rs`:
//! compressed rows, direct port tables, word ANDs per candidate block of 64
//! rules until the first match). Costs and the measurements behind these
//! choices: `cargo bench --bench spd`, perf/RESULTS.md. On x86_64 CPUs with
//! POPCNT the lookup runs in a copy compiled with that instruction. Memory
//! grows with how much rules overlap (a split copies a rule into every
//! piece its destination overlaps, and is chosen only while the copies stay
//! within about twice the rules); compile refuses (with
//! [`SpdError::TooLarge`]) beyond 128 MiB of tables. Alternatives
//! considered: decision trees (HiCuts) replicate wildcard rules into every
//! leaf (the split replicates only along the destination, within a
//! budget); tuple-space search needs prefixes, not the ranges swanctl
//! allows, and its cost grows with the number of distinct prefix-length
//! tuples.
//!
//! [`FlowCache`] sits in front of it per worker: a fixed-size
//! set-associative cache keyed on the flow, invalidated by [`Spd::generation`].
//!
//! Non-goals: parsing configuration (see `policy::config`), inbound SA
//! selector checks (ESP does those against the SA's traffic selectors).

mod bitvec;
mod cache;
mod family;
mod rule;
mod split;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::wire::flow::FlowKey;
use bitvec::Point6;
pub use cache::FlowCache;
use family::Family;
pub use rule::{Action, AddrRange, ChildId, DscpSet, PortRange, Rule, RuleSelector, SelectorError, SpdError};

/// Most rules one SPD may hold.
pub const MAX_RULES: usize = 1 << 20;

/// Source of policy generations: every compiled SPD gets a fresh, non-zero
/// value, so a cache entry can never be mistaken for a newer policy's.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// A compiled, immutable SPD. Share it between workers (e.g. in an `Arc`);
/// a policy change compiles a new one with a new generation.
pub struct Spd {
    rules: Vec<Rule>,
    default: Action,
    generation: u64,
    /// The CPU has POPCNT (x86_64).
    popcnt: bool,
    v4: Family<u32>,
    v6: Family<u128>,
}

impl Spd {
    /// Checks and compiles `rules` (first match wins) with `default` for
    /// packets no rule matches.
    pub fn compile(rules: &[Rule], default: Action) -> Result<Spd, SpdError> {
        if rules.len() > MAX_RULES {
            return Err(SpdError::TooLarge("more than 1,048,576 rules"));
        }
        for (index, r) in rules.iter().enumerate() {
            r.selector.validate().map_err(|reason| SpdError::Rule { index, reason })?;
        }
        let v4 = family(rules, false, |a| a as u32)?;
        let v6 = family(rules, true, |a| a)?;
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        #[cfg(target_arch = "x86_64")]
        let popcnt = std::arch::is_x86_feature_detected!("popcnt");
        #[cfg(not(target_arch = "x86_64"))]
        let popcnt = false;
        Ok(Spd { rules: rules.to_vec(), default, generation, popcnt, v4, v6 })
    }

    /// The action for a packet: the first matching rule's, else the default.
    #[inline]
    pub fn classify(&self, key: &FlowKey) -> Action {
        #[cfg(target_arch = "x86_64")]
        if self.popcnt {
            // SAFETY: `popcnt` is true only if the CPU running us has the
            // POPCNT instruction (`is_x86_feature_detected!` in `compile`).
            return unsafe { self.classify_popcnt(key) };
        }
        self.classify_portable(key)
    }

    /// [`Spd::classify`] compiled with the POPCNT instruction (the lookup
    /// counts bits about twenty times a packet; without it each count is a
    /// dozen instructions).
    ///
    /// # Safety
    /// The CPU must have POPCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn classify_popcnt(&self, key: &FlowKey) -> Action {
        self.classify_portable(key)
    }

    #[inline(always)]
    fn classify_portable(&self, key: &FlowKey) -> Action {
        let found = match (key.src, key.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.v4.first_action(&point(key, s.into(), d.into())),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.v6.first_action(&point(key, s.into(), d.into())),
            _ => None,
        };
        found.unwrap_or(self.default)
    }

    /// Index of the first rule matching the packet, if any.
    #[inline]
    pub fn first_match(&self, key: &FlowKey) -> Option<usize> {
        let found = match (key.src, key.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.v4.first(&point(key, s.into(), d.into())),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.v6.first(&point(key, s.into(), d.into())),
            _ => None,
        };
        found.map(|i| i as usize)
    }

    /// The policy generation: unique per compiled SPD in this process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The action for packets no rule matches.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Approximate bytes used by the lookup tables (both families).
    pub fn table_bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }

    /// Rules that can never match because one earlier rule selects
    /// everything they select: `(shadowed, by)` pairs, `by` being the first
    /// such earlier rule. Exact for shadowing by a single rule; a rule
    /// covered only by the union of several earlier rules is not reported.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, rule) in self.rules.iter().enumerate() {
            let sel = &rule.selector;
            // Any rule covering `sel` contains its lowest point, so it is
            // among the rules matching that point; check each exactly.
            let v6 = !sel.has_v4();
            let Some(((s, _), (d, _))) = sel.src.bounds(v6).zip(sel.dst.bounds(v6)) else { continue };
            let p = Point6 {
                src: s,
                dst: d,
                proto: sel.proto,
                sport: Some(sel.src_ports.start),
                dport: Some(sel.dst_ports.start),
                dscp: sel.dscp.0.trailing_zeros() as u8,
            };
            let mut by = None;
            let mut check = |i: u32| {
                let i = i as usize;
                if i >= j {
                    return true;
                }
                if self.rules.get(i).is_some_and(|r| r.selector.covers(sel)) {
                    by = Some(i);
                    return true;
                }
                false
            };
            if v6 {
                self.v6.each(&p, &mut check)
            } else {
                self.v4.each(&narrow(&p), &mut check)
            }
            if let Some(i) = by {
                out.push((j, i));
            }
        }
        out
    }
}

impl core::fmt::Debug for Spd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Spd")
            .field("rules", &self.rules.len())
            .field("default", &self.default)
            .field("generation", &self.generation)
            .finish()
    }
}

fn point<K>(key: &FlowKey, src: K, dst: K) -> Point6<K> {
    Point6 { src, dst, proto: Some(key.proto), sport: key.src_port, dport: key.dst_port, dscp: key.dscp }
}

fn narrow(p: &Point6<u128>) -> Point6<u32> {
    Point6 {
        src: p.src as u32,
        dst: p.dst as u32,
        proto: p.proto,
        sport: p.sport,
        dport: p.dport,
        dscp: p.dscp,
    }
}

/// Compiles the rules of one family.
fn family<K: bitvec::Point>(rules: &[Rule], v6: bool, conv: fn(u128) -> K) -> Result<Family<K>, SpdError> {
    let mut sels = Vec::new();
    let mut ids = Vec::new();
    let mut actions = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let s = &r.selector;
        if (v6 && s.has_v6()) || (!v6 && s.has_v4()) {
            sels.push(*s);
            ids.push(i as u32);
            actions.push(r.action);
        }
    }
    Family::build(&sels, ids, actions, |s| {
        // validate() guaranteed both have this family.
        let (ss, se) = s.src.bounds(v6).unwrap_or((0, 0));
        let (ds, de) = s.dst.bounds(v6).unwrap_or((0, 0));
        ((conv(ss), conv(se)), (conv(ds), conv(de)))
    })
    .map_err(SpdError::TooLarge)
}
