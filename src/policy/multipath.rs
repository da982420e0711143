//! Multipath gateway groups: weighted rendezvous (HRW) hashing of flows onto
//! gateways.
//!
//! A connection may name several gateways, each with a weight. Every flow
//! (identified by a 64-bit flow hash, e.g. `FlowKey::symmetric_hash` so both
//! directions agree) goes to the gateway with the highest score
//!
//! ```text
//! score(flow, g) = weight(g) / -ln(u(flow, g)),   u in (0, 1)
//! ```
//!
//! where `u` is a well-mixed hash of the flow hash and the gateway's stable
//! `id`, mapped to the open unit interval. This is the weighted form of
//! rendezvous hashing (Schindelhauer and Schomaker, "Weighted distributed
//! hash tables", 2005; also known as logarithmic HRW): gateway `g` wins a
//! flow with probability `weight(g) / sum(weights)`, and since a gateway's
//! score for a flow does not depend on the others, removing a gateway moves
//! only the flows it held (each to its runner-up), and adding one moves only
//! the flows it now wins (about `weight / new total`, i.e. `1/(N+1)` with
//! equal weights).
//!
//! Down gateways are skipped; health comes from the control plane through
//! [`GatewayGroup::set_up`], which takes `&self` (an atomic flag), so
//! workers can keep sharing the group. [`GatewayGroup::pick`] allocates
//! nothing; its cost is one hash and one `ln` per gateway.
//!
//! Non-goals: probing health (control plane), per-packet spraying (flows
//! stay on one path to avoid reordering).

use std::sync::atomic::{AtomicBool, Ordering};

/// Index of a gateway in its group (its position in the list given to
/// [`GatewayGroup::new`] or returned by [`GatewayGroup::add`]).
pub type GatewayIdx = usize;

/// Most gateways in one group.
pub const MAX_GATEWAYS: usize = 64;

/// A gateway as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewaySpec {
    /// Stable identity used in the hash (e.g. [`gateway_id`] of its address);
    /// it, not the position, decides placement, so reordering the
    /// configuration moves no flows.
    pub id: u64,
    /// Relative share of flows; must be above zero.
    pub weight: u32,
}

/// Why a group could not be built or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A gateway's weight is zero.
    #[error("gateway weight must be above zero")]
    ZeroWeight,
    /// Two gateways share an id (the same address twice).
    #[error("two gateways have the same identity")]
    DuplicateId,
    /// More than [`MAX_GATEWAYS`] gateways.
    #[error("too many gateways in one group (at most 64)")]
    TooMany,
}

#[derive(Debug)]
struct Gateway {
    spec: GatewaySpec,
    /// Precomputed mix of the id.
    salt: u64,
    up: AtomicBool,
}

/// A set of weighted gateways with up/down state.
#[derive(Debug, Default)]
pub struct GatewayGroup {
    gateways: Vec<Gateway>,
}

impl GatewayGroup {
    /// A group of the given gateways, all up.
    pub fn new(specs: &[GatewaySpec]) -> Result<Self, GroupError> {
        let mut g = GatewayGroup { gateways: Vec::with_capacity(specs.len()) };
        for s in specs {
            g.add(*s)?;
        }
        Ok(g)
    }

    /// Adds a gateway (up) and returns its index. Control plane only: it
    /// needs `&mut self` and may allocate.
    pub fn add(&mut self, spec: GatewaySpec) -> Result<GatewayIdx, GroupError> {
        if spec.weight == 0 {
            return Err(GroupError::ZeroWeight);
        }
        if self.gateways.iter().any(|g| g.spec.id == spec.id) {
            return Err(GroupError::DuplicateId);
        }
        if self.gateways.len() >= MAX_GATEWAYS {
            return Err(GroupError::TooMany);
        }
        self.gateways.push(Gateway {
            spec,
            salt: mix(spec.id ^ 0x6a09_e667_f3bc_c909),
            up: AtomicBool::new(true),
        });
        Ok(self.gateways.len() - 1)
    }

    /// Marks a gateway up or down; returns false if `idx` does not exist.
    pub fn set_up(&self, idx: GatewayIdx, up: bool) -> bool {
        match self.gateways.get(idx) {
            Some(g) => {
                g.up.store(up, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// True if the gateway exists and is up.
    pub fn is_up(&self, idx: GatewayIdx) -> bool {
        self.gateways.get(idx).is_some_and(|g| g.up.load(Ordering::Relaxed))
    }

    /// Number of gateways, up or down.
    pub fn len(&self) -> usize {
        self.gateways.len()
    }

    /// True if the group has no gateway.
    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
    }

    /// The configuration of gateway `idx`.
    pub fn spec(&self, idx: GatewayIdx) -> Option<GatewaySpec> {
        self.gateways.get(idx).map(|g| g.spec)
    }

    /// The up gateway with the highest weighted rendezvous score for this
    /// flow, or `None` if every gateway is down. Ties (practically
    /// impossible) go to the lower index.
    #[inline]
    pub fn pick(&self, flow_hash: u64) -> Option<GatewayIdx> {
        // One gateway (every static SA, most children): no score to take,
        // and no `ln` per packet.
        if let [g] = self.gateways.as_slice() {
            return g.up.load(Ordering::Relaxed).then_some(0);
        }
        let mut best: Option<(GatewayIdx, f64)> = None;
        for (i, g) in self.gateways.iter().enumerate() {
            if !g.up.load(Ordering::Relaxed) {
                continue;
            }
            let s = score(flow_hash, g.salt, g.spec.weight);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// `weight / -ln(u)` with `u` in (0, 1) from the mixed pair.
#[inline]
fn score(flow_hash: u64, salt: u64, weight: u32) -> f64 {
    let h = mix(flow_hash ^ salt);
    // 53 random bits, centred in their cell: strictly inside (0, 1).
    let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    f64::from(weight) / -u.ln()
}

/// A stable 64-bit identity for a gateway from its address bytes (e.g.
/// `SocketAddr` octets and port), for [`GatewaySpec::id`].
pub fn gateway_id(bytes: &[u8]) -> u64 {
    // FNV-1a, then a final mix; stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The splitmix64 finalizer: a bijective, well-avalanched 64-bit mix.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(weights: &[u32]) -> GatewayGroup {
        let specs: Vec<_> =
            weights.iter().enumerate().map(|(i, w)| GatewaySpec { id: 100 + i as u64, weight: *w }).collect();
        GatewayGroup::new(&specs).unwrap()
    }

    #[test]
    fn errors() {
        assert_eq!(
            GatewayGroup::new(&[GatewaySpec { id: 1, weight: 0 }]).unwrap_err(),
            GroupError::ZeroWeight
        );
        let dup = [GatewaySpec { id: 1, weight: 1 }, GatewaySpec { id: 1, weight: 2 }];
        assert_eq!(GatewayGroup::new(&dup).unwrap_err(), GroupError::DuplicateId);
        let many: Vec<_> = (0..65).map(|id| GatewaySpec { id, weight: 1 }).collect();
        assert_eq!(GatewayGroup::new(&many).unwrap_err(), GroupError::TooMany);
    }

    #[test]
    fn empty_and_all_down() {
        assert_eq!(GatewayGroup::default().pick(42), None);
        let g = group(&[1, 1]);
        assert!(g.set_up(0, false) && g.set_up(1, false));
        assert!(!g.set_up(2, false));
        assert_eq!(g.pick(42), None);
        g.set_up(1, true);
        assert_eq!(g.pick(42), Some(1));
        // A group of one: its gateway while up, none while down.
        let one = group(&[3]);
        assert!((0..1000).all(|h| one.pick(mix(h)) == Some(0)));
        one.set_up(0, false);
        assert_eq!(one.pick(42), None);
    }

    #[test]
    fn score_is_monotonic_in_weight_and_finite() {
        for h in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000] {
            for salt in [0u64, u64::MAX] {
                let (a, b) = (score(h, salt, 1), score(h, salt, 2));
                assert!(a.is_finite() && a > 0.0 && (b - 2.0 * a).abs() <= 1e-9 * b);
            }
        }
    }

    /// Removing a gateway from the configuration (a reload builds a new
    /// group without it) places flows exactly as marking it down does: only
    /// its flows move, by gateway identity; putting it back restores all.
    #[test]
    fn removed_by_reload_equals_down() {
        let specs: Vec<_> = (1..=4).map(|w| GatewaySpec { id: 100 + u64::from(w), weight: w }).collect();
        let full = GatewayGroup::new(&specs).unwrap();
        let id_of = |g: &GatewayGroup, h: u64| g.pick(h).and_then(|i| g.spec(i)).map(|s| s.id);
        let flows: Vec<u64> = (0..100_000u64).map(|i| mix(i ^ 0x5555)).collect();
        for gone in 0..4 {
            let rest: Vec<_> =
                specs.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, s)| *s).collect();
            let reloaded = GatewayGroup::new(&rest).unwrap();
            let mut moved = 0;
            for &h in &flows {
                let (before, after) = (id_of(&full, h), id_of(&reloaded, h));
                if before == Some(specs[gone].id) {
                    assert_ne!(after, before);
                    moved += 1;
                } else {
                    assert_eq!(after, before, "a flow of another gateway moved");
                }
                full.set_up(gone, false);
                assert_eq!(id_of(&full, h), after, "reload and down disagree");
                full.set_up(gone, true);
            }
            assert!(moved > 0);
            let back = GatewayGroup::new(&specs).unwrap();
            assert!(flows.iter().all(|&h| id_of(&back, h) == id_of(&full, h)), "putting it back restores");
        }
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(gateway_id(b"192.0.2.1:4500"), gateway_id(b"192.0.2.1:4500"));
        assert_ne!(gateway_id(b"192.0.2.1:4500"), gateway_id(b"192.0.2.2:4500"));
    }
}
