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
    Flat(Flat<K>),
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
        let kind = if p.mean <= MAX_MEAN_PIECE {
            Kind::Split(Split::build(sels, &addrs, p)?)
        } else {
            Kind::Flat(Flat::build(sels, &addrs)?)
        };
        Ok(Family { kind, ids, actions })
    }

    #[inline(always)]
    fn find(&self, p: &Point6<K>, f: impl FnMut(u32) -> bool) -> Option<u32> {
        match &self.kind {
            Kind::Split(s) => s.find(p, f),
            Kind::Flat(t) => t.find(p, f),
        }
    }

    /// Original index of the first rule matching `p`.
    #[inline]
    pub(super) fn first(&self, p: &Point6<K>) -> Option<u32> {
        let local = self.find(p, |_| true)?;
        self.ids.get(local as usize).copied()
    }

    /// Action of the first rule matching `p`.
    #[inline]
    pub(super) fn first_action(&self, p: &Point6<K>) -> Option<Action> {
        let local = self.find(p, |_| true)?;
        self.actions.get(local as usize).copied()
    }

    /// Calls `f` with the original index of every rule matching `p`, in
    /// order, until `f` returns true.
    pub(super) fn each(&self, p: &Point6<K>, mut f: impl FnMut(u32) -> bool) {
        self.find(p, |l| self.ids.get(l as usize).is_none_or(|g| f(*g)));
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
