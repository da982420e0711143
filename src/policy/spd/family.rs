//! The compiled rules of one address family: split by destination into
//! small pieces where the rules allow it (`split.rs`), else one interval
//! decomposition over all of them (`bitvec.rs`).

use super::bitvec::{Addrs, Flat, Point, Point6};
use super::rule::{Action, RuleSelector};
use super::split::{Split, plan};

/// Mean piece size (rules) above which a split is not worth it and the
/// family is compiled flat: a piece's rows are uncompressed, so a lookup in
/// a piece of `64 k` rules may AND `k` words per row.
const MAX_MEAN_PIECE: f64 = 256.0;

enum Kind<K> {
    /// Boxed: much larger than a split's header.
    Flat(Box<Flat<K>>),
    Split(Split<K>),
}

/// The classifier of one family: rules are local indices into `ids`.
pub(super) struct Family<K> {
    kind: Kind<K>,
    /// Local rule index -> index in the original rule list.
    ids: Vec<u32>,
    /// Local rule index -> the rule's action.
    actions: Vec<Action>,
}

impl<K: Point> Family<K> {
    /// Compiles the rules `sels` (with original indices `ids` and actions
    /// `actions`), mapping each selector's addresses to this family with
    /// `addr`.
    pub(super) fn build(
        sels: &[RuleSelector],
        ids: Vec<u32>,
        actions: Vec<Action>,
        addr: impl Fn(&RuleSelector) -> ((K, K), (K, K)),
    ) -> Result<Self, &'static str> {
        let addrs: Vec<Addrs<K>> = sels.iter().map(&addr).collect();
        let dsts: Vec<(K, K)> = addrs.iter().map(|a| a.1).collect();
        let p = plan(&dsts);
        if p.mean <= MAX_MEAN_PIECE {
            // The pieces keep their own copies of the actions.
            let kind = Kind::Split(Split::build(sels, &addrs, &actions, p)?);
            Ok(Family { kind, ids, actions: Vec::new() })
        } else {
            Ok(Family { kind: Kind::Flat(Box::new(Flat::build(sels, &addrs)?)), ids, actions })
        }
    }

    /// Original index of the first rule matching `p`.
    #[inline]
    pub(super) fn first(&self, p: &Point6<K>) -> Option<u32> {
        let local = match &self.kind {
            Kind::Split(s) => s.local(s.find(p, |_| true)?),
            Kind::Flat(t) => t.find(p, |_| true),
        }?;
        self.ids.get(local as usize).copied()
    }

    /// Action of the first rule matching `p`.
    #[inline]
    pub(super) fn first_action(&self, p: &Point6<K>) -> Option<Action> {
        match &self.kind {
            Kind::Split(s) => s.action(s.find(p, |_| true)?),
            Kind::Flat(t) => self.actions.get(t.find(p, |_| true)? as usize).copied(),
        }
    }

    /// Calls `f` with the original index of every rule matching `p`, in
    /// order, until `f` returns true.
    pub(super) fn each(&self, p: &Point6<K>, mut f: impl FnMut(u32) -> bool) {
        let mut g = |l: u32| self.ids.get(l as usize).is_none_or(|g| f(*g));
        match &self.kind {
            Kind::Split(s) => {
                s.find(p, |pos| s.local(pos).is_none_or(&mut g));
            }
            Kind::Flat(t) => {
                t.find(p, &mut g);
            }
        }
    }

    /// Bytes used by the lookup tables.
    pub(super) fn bytes(&self) -> usize {
        let kind = match &self.kind {
            Kind::Split(s) => s.bytes(),
            Kind::Flat(t) => t.bytes(),
        };
        kind + self.actions.len() * size_of::<Action>() + self.ids.len() * 4
    }

    /// Whether the family is split by destination, and on how many bits
    /// (for tests and the bench's description).
    #[cfg(test)]
    pub(super) fn split_bits(&self) -> Option<u32> {
        match &self.kind {
            Kind::Split(s) => Some(s.bits()),
            Kind::Flat(_) => None,
        }
    }
}
