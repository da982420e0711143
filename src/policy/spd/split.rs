//! The classifier of one family split by destination: a direct table on
//! the leading bits of the destination address picks a *piece*, a small
//! classifier holding only the rules whose destination overlaps that part
//! of the address space, renumbered densely in their original order.
//!
//! Why: with one decomposition over all rules (`bitvec::Flat`), a lookup at
//! 10,000 rules descended two 14-level trees and ANDed words of about four
//! 64-rule blocks scattered over megabytes before the first match
//! (cachegrind: about 30 L1 misses a packet). A piece holds the few dozen
//! rules near one destination, so its trees are a few levels deep, its rows
//! are usually one word, and the first match is in its first word; rules
//! whose destination covers the whole piece become the piece's destination
//! wildcards. First-match order is kept because a piece's rules are in the
//! original order and a packet's matching rules all overlap its piece.
//!
//! A piece has four dimensions, each an Eytzinger tree (`bitvec::Dim`):
//! destination, source, protocol-and-destination-port (`proto << 16 |
//! port`: one range per rule, as a rule with ports has a protocol) and
//! protocol-and-source-port (a rule of any source port is a wildcard there,
//! so the tree is empty in most pieces). DSCP values map to a few classes in
//! the piece's header. Rows are uncompressed (`words` words for a piece of
//! up to `64 * words` rules), and every tree node carries its own copy of
//! its row, so a descent finds its answer next to nodes it read; the
//! wildcard rows and DSCP class rows of a piece lie together in its *wild
//! block*. A lookup reads the split table, the piece's header, four short
//! descents, their four rows and the wild block: about 20 cache lines
//! (cachegrind), against about 30 for the flat classifier at 10,000 rules.
//! The split width is chosen at compile time ([`plan`]); a rule set that no
//! width splits well (most destinations wide) is compiled as one `Flat`
//! classifier instead.

use std::collections::{BTreeSet, HashMap};

use super::bitvec::{Addrs, Dim, MAX_WORDS, Point, Point6, RowSink, Table, descend, prefetch, set};
use super::rule::{Action, RuleSelector};

/// Leading destination bits tried for the split table (at most 16: the
/// table maps to `u16` piece numbers).
const WIDTHS: [u32; 5] = [0, 4, 8, 12, 16];

/// A split plan: how many leading destination bits index the table.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub bits: u32,
    /// Mean rule count of the piece holding a rule's lowest destination.
    pub mean: f64,
}

/// The pieces for `bits` leading bits: each run of table slots with the
/// same overlapping rules, as `(first slot, rules overlapping)`; slot
/// ranges per rule are `(lo >> shift, hi >> shift)`.
fn slot_ranges<K: Point>(dsts: &[(K, K)], bits: u32) -> Vec<(u64, u64)> {
    let shift = K::BITS - bits;
    dsts.iter().map(|&(lo, hi)| (slot(lo.wide(), shift) as u64, slot(hi.wide(), shift) as u64)).collect()
}

#[inline(always)]
fn slot(x: u128, shift: u32) -> usize {
    x.checked_shr(shift).unwrap_or(0) as usize
}

/// Run starts (sorted, the first 0) for slot ranges `sr` in a table of
/// `1 << bits` slots.
fn run_starts(sr: &[(u64, u64)], bits: u32) -> Vec<u64> {
    let size = 1u64 << bits;
    let mut b: Vec<u64> = Vec::with_capacity(2 * sr.len() + 1);
    b.push(0);
    for &(lo, hi) in sr {
        b.push(lo);
        if hi + 1 < size {
            b.push(hi + 1);
        }
    }
    b.sort_unstable();
    b.dedup();
    b
}

/// Chooses the split width for rules with destination ranges `dsts`: the
/// width whose pieces are smallest (as met by traffic to the rules'
/// destinations), widening only while that pays and the rule copies across
/// pieces stay within `2 n + 4096` (tables of about 100 bytes a rule copy;
/// beyond about 1 MB per family they stop fitting a core's L2 cache, which
/// costs more than the smaller pieces save: measured, 12 bits for the
/// bench's IPv6 rules made 2 MB of tables and slower lookups than 8).
pub(super) fn plan<K: Point>(dsts: &[(K, K)]) -> Plan {
    let n = dsts.len();
    let budget = 2 * n + 4096;
    let mut best = Plan { bits: 0, mean: n as f64 };
    for bits in WIDTHS.into_iter().filter(|b| *b > 0 && *b <= K::BITS) {
        let sr = slot_ranges(dsts, bits);
        let starts = run_starts(&sr, bits);
        // Rules overlapping each run: starts at or before it minus ends
        // before it, by a sweep over sorted range ends.
        let mut los: Vec<u64> = sr.iter().map(|r| r.0).collect();
        let mut his: Vec<u64> = sr.iter().map(|r| r.1).collect();
        los.sort_unstable();
        his.sort_unstable();
        let count = |s: u64| los.partition_point(|l| *l <= s).saturating_sub(his.partition_point(|h| *h < s));
        let incidences: usize = starts.iter().map(|s| count(*s)).sum();
        if incidences > budget {
            break;
        }
        let run_of = |s: u64| starts.get(starts.partition_point(|b| *b <= s).saturating_sub(1)).copied();
        let total: usize = sr.iter().map(|r| run_of(r.0).map_or(0, count)).sum();
        let mean = total as f64 / n.max(1) as f64;
        // Wider only if it pays: pieces a good deal smaller.
        if mean < best.mean * 0.8 {
            best = Plan { bits, mean };
        }
        if best.mean <= 16.0 {
            break;
        }
    }
    best
}

/// One piece's header: where its trees, rows and rules lie in the shared
/// pools, and its DSCP classes. Two cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Piece {
    /// Tree keys: destination and source address in `akeys`, then
    /// protocol-and-destination-port and protocol-and-source-port in
    /// `pkeys`.
    keys: [u32; 4],
    /// The trees' node rows in `rows`: node `k`'s row is the `words` words
    /// at `rows[k * words + ..]` from there.
    rows: [u32; 4],
    depth: [u8; 4],
    /// The piece's *wild block* in `rows`, rows one after another: the four
    /// trees' wildcard rows, the rules with any destination port, then one
    /// row per DSCP class.
    wild: u32,
    /// The piece's rules in `ids` and `actions`.
    ids: u32,
    /// Words per row: the piece holds at most `64 * words` rules.
    words: u32,
    /// DSCP value -> its class (rows in the wild block from `WILD_DSCP`).
    dscp: [u8; 64],
}

impl Piece {
    /// The (key offset, depth) of trees `range`.
    fn trees(&mut self, range: std::ops::Range<usize>) -> impl Iterator<Item = (&mut u32, u8)> {
        let depth = self.depth;
        self.keys
            .iter_mut()
            .enumerate()
            .filter(move |(t, _)| range.contains(t))
            .map(move |(t, k)| (k, depth.get(t).copied().unwrap_or(0)))
    }
}

/// Copies the trees `(offset, depth)` of `keys` into a new pool where each
/// starts at an address aligned to its size, or to 64 bytes if larger, so
/// that a tree's top levels share one cache line; updates the offsets. The
/// pool is allocated once, so its address (which the alignment is computed
/// from) does not change afterwards.
fn align_trees<'a, T: Point>(keys: &mut Vec<T>, trees: impl Iterator<Item = (&'a mut u32, u8)>) -> Vec<T> {
    let per_line = (64 / size_of::<T>()).max(1);
    let trees: Vec<(&mut u32, u8)> = trees.collect();
    let mut out: Vec<T> = Vec::with_capacity(keys.len() + (trees.len() + 1) * per_line);
    let base = (out.as_ptr() as usize % 64) / size_of::<T>();
    for (off, depth) in trees {
        let size = 1usize << depth;
        let align = size.min(per_line);
        while (base + out.len()) % align != 0 {
            out.push(T::MAX);
        }
        let start = *off as usize;
        let new = out.len();
        out.extend_from_slice(keys.get(start..start + size).unwrap_or(&[]));
        // Cannot exceed the old offsets by more than the padding reserved.
        *off = u32::try_from(new).unwrap_or(u32::MAX);
    }
    keys.clear();
    out
}

/// Rows of the wild block before the DSCP classes.
const WILD_DSCP: usize = 5;

/// The protocol-and-port key of a rule's port range `(lo, hi)`: the
/// protocol in the top 16 bits, so one range per rule (validation ensures a
/// rule with ports has a protocol; a rule of any protocol has any ports and
/// is a wildcard).
fn proto_port(proto: Option<u8>, (lo, hi): (u16, u16)) -> (u32, u32) {
    match proto {
        None => (0, u32::MAX),
        Some(p) => (u32::from(p) << 16 | u32::from(lo), u32::from(p) << 16 | u32::from(hi)),
    }
}

/// Uncompressed rows of a fixed width, deduplicated; a row's id is the
/// offset of its first word. Scratch space for one piece.
struct Words {
    width: usize,
    data: Vec<u64>,
    seen: HashMap<Vec<u64>, u32>,
}

impl RowSink for Words {
    fn words(&self) -> usize {
        self.width
    }

    fn push(&mut self, row: &[u64]) -> Result<u32, &'static str> {
        if let Some(id) = self.seen.get(row) {
            return Ok(*id);
        }
        if self.data.len() + row.len() > MAX_WORDS {
            return Err("bit-vector tables over 128 MiB");
        }
        let id = u32::try_from(self.data.len()).map_err(|_| "too many rows")?;
        self.data.extend_from_slice(row);
        self.seen.insert(row.to_vec(), id);
        Ok(id)
    }
}

impl Words {
    /// Row `id`.
    fn row(&self, id: u32) -> &[u64] {
        self.data.get(id as usize..id as usize + self.width).unwrap_or(&[])
    }
}

/// See the module docs.
pub(super) struct Split<K> {
    /// Slot of a destination: `dst >> shift`.
    shift: u32,
    /// Slot -> piece.
    slots: Vec<u16>,
    pieces: Vec<Piece>,
    akeys: Vec<K>,
    pkeys: Vec<u32>,
    /// Tree nodes' rows (each node's own copy, so that a descent finds its
    /// answer next to the nodes it read) and the pieces' wild blocks.
    rows: Vec<u64>,
    /// Piece rule -> family-local rule index.
    ids: Vec<u32>,
    /// Piece rule -> action.
    actions: Vec<Action>,
}

fn offset(len: usize) -> Result<u32, &'static str> {
    if len > MAX_WORDS {
        return Err("bit-vector tables over 128 MiB");
    }
    u32::try_from(len).map_err(|_| "bit-vector tables over 128 MiB")
}

impl<K: Point> Split<K> {
    /// Compiles the rules `sels` (addresses `addrs`, actions `actions`)
    /// split on `plan.bits` leading destination bits.
    pub(super) fn build(
        sels: &[RuleSelector],
        addrs: &[Addrs<K>],
        actions: &[Action],
        plan: Plan,
    ) -> Result<Self, &'static str> {
        let bits = plan.bits.min(16).min(K::BITS);
        let shift = K::BITS - bits;
        let dsts: Vec<(K, K)> = addrs.iter().map(|a| a.1).collect();
        let sr = slot_ranges(&dsts, bits);
        let starts = run_starts(&sr, bits);
        let mut split = Split {
            shift,
            slots: Vec::with_capacity(1 << bits),
            pieces: Vec::with_capacity(starts.len()),
            akeys: Vec::new(),
            pkeys: Vec::new(),
            rows: Vec::new(),
            ids: Vec::new(),
            actions: Vec::new(),
        };
        // Sweep the runs, keeping the set of rules overlapping the current one.
        let mut by_lo: Vec<(u64, u32)> = sr.iter().enumerate().map(|(r, s)| (s.0, r as u32)).collect();
        let mut by_end: Vec<(u64, u32)> = sr.iter().enumerate().map(|(r, s)| (s.1 + 1, r as u32)).collect();
        by_lo.sort_unstable();
        by_end.sort_unstable();
        let (mut li, mut ei) = (0, 0);
        let mut active: BTreeSet<u32> = BTreeSet::new();
        let size = 1u64 << bits;
        for (i, &s0) in starts.iter().enumerate() {
            while let Some(&(_, r)) = by_end.get(ei).filter(|e| e.0 <= s0) {
                active.remove(&r);
                ei += 1;
            }
            while let Some(&(_, r)) = by_lo.get(li).filter(|l| l.0 <= s0) {
                active.insert(r);
                li += 1;
            }
            let s1 = starts.get(i + 1).copied().unwrap_or(size);
            let lo = u128::from(s0).checked_shl(shift).unwrap_or(0);
            let hi = u128::from(s1).checked_shl(shift).map_or(u128::MAX, |x| x.wrapping_sub(1));
            let members: Vec<u32> = active.iter().copied().collect();
            let range = (K::from_wide(lo), K::from_wide(hi));
            let piece = split.piece(sels, addrs, &members, range)?;
            split
                .actions
                .extend(members.iter().map(|&r| actions.get(r as usize).copied().unwrap_or(Action::Drop)));
            let id = u16::try_from(split.pieces.len()).map_err(|_| "too many pieces")?;
            split.pieces.push(piece);
            split.slots.extend((s0..s1).map(|_| id));
        }
        let (mut akeys, mut pkeys) = (std::mem::take(&mut split.akeys), std::mem::take(&mut split.pkeys));
        split.akeys = align_trees(&mut akeys, split.pieces.iter_mut().flat_map(|p| p.trees(0..2)));
        split.pkeys = align_trees(&mut pkeys, split.pieces.iter_mut().flat_map(|p| p.trees(2..4)));
        if split.bytes() > MAX_WORDS * 8 {
            return Err("bit-vector tables over 128 MiB");
        }
        Ok(split)
    }

    /// Appends a tree's keys to `keys` and its nodes' rows to `self.rows`;
    /// returns (key offset, row offset, depth).
    fn tree<T: Point>(
        rows: &mut Vec<u64>,
        keys: &mut Vec<T>,
        d: &Dim<T>,
        scratch: &Words,
    ) -> Result<(u32, u32, u8), &'static str> {
        let k = offset(keys.len())?;
        let r = offset(rows.len())?;
        // Refuse before allocating: each node gets its own copy of its row.
        offset(rows.len().saturating_add(d.node_rows.len().saturating_mul(scratch.width)))?;
        offset(keys.len().saturating_add(d.tree.len()))?;
        keys.extend_from_slice(&d.tree);
        for id in &d.node_rows {
            rows.extend_from_slice(scratch.row(*id));
        }
        Ok((k, r, d.depth as u8))
    }

    /// Builds the piece of destinations `lo..=hi` holding rules `members`.
    fn piece(
        &mut self,
        sels: &[RuleSelector],
        addrs: &[Addrs<K>],
        members: &[u32],
        (lo, hi): (K, K),
    ) -> Result<Piece, &'static str> {
        let n = members.len();
        let width = n.div_ceil(64).max(1);
        let mut scratch = Words { width, data: Vec::new(), seen: HashMap::new() };
        let sel = |r: u32| sels.get(r as usize).copied().unwrap_or(RuleSelector::ANY);
        let addr = |r: u32| addrs.get(r as usize).copied().unwrap_or(((K::MIN, K::MAX), (K::MIN, K::MAX)));
        // A destination covering the whole piece is a wildcard here.
        let dsts: Vec<(K, K)> = members
            .iter()
            .map(|&r| {
                let (a, b) = addr(r).1;
                if a <= lo && b >= hi { (K::MIN, K::MAX) } else { (a.max(lo), b.min(hi)) }
            })
            .collect();
        let srcs: Vec<(K, K)> = members.iter().map(|&r| addr(r).0).collect();
        let dp: Vec<(u32, u32)> = members
            .iter()
            .map(|&r| proto_port(sel(r).proto, (sel(r).dst_ports.start, sel(r).dst_ports.end)))
            .collect();
        // The protocol is checked with the destination port: a rule of any
        // source port is a wildcard here whatever its protocol, which keeps
        // this tree empty for most pieces.
        let sp: Vec<(u32, u32)> = members
            .iter()
            .map(|&r| {
                let s = sel(r);
                if s.src_ports.is_any() {
                    (0, u32::MAX)
                } else {
                    proto_port(s.proto, (s.src_ports.start, s.src_ports.end))
                }
            })
            .collect();
        let mut piece = Piece {
            keys: [0; 4],
            rows: [0; 4],
            depth: [0; 4],
            wild: 0,
            ids: offset(self.ids.len())?,
            words: width as u32,
            dscp: [0; 64],
        };
        self.ids.extend_from_slice(members);
        let a = [Dim::build(&dsts, &mut scratch)?, Dim::build(&srcs, &mut scratch)?];
        let p = [Dim::build(&dp, &mut scratch)?, Dim::build(&sp, &mut scratch)?];
        let mut any_dport = vec![0u64; width];
        for (i, &r) in members.iter().enumerate() {
            set(&mut any_dport, i, sel(r).dst_ports.is_any());
        }
        let mask = |i: usize| members.get(i).map_or(0, |&r| sel(r).dscp.0);
        let dscp = Table::build(64, n, |i| mask(i) == u64::MAX, |i, v| mask(i) >> v & 1 == 1, &mut scratch)?;
        for (t, d) in a.iter().enumerate() {
            (piece.keys[t], piece.rows[t], piece.depth[t]) =
                Self::tree(&mut self.rows, &mut self.akeys, d, &scratch)?;
        }
        for (t, d) in p.iter().enumerate() {
            (piece.keys[2 + t], piece.rows[2 + t], piece.depth[2 + t]) =
                Self::tree(&mut self.rows, &mut self.pkeys, d, &scratch)?;
        }
        piece.wild = offset(self.rows.len())?;
        for w in [a[0].wild, a[1].wild, p[0].wild, p[1].wild] {
            self.rows.extend_from_slice(scratch.row(w));
        }
        self.rows.extend_from_slice(&any_dport);
        // DSCP values with the same row share a class (at most 64).
        let mut classes: Vec<u32> = Vec::new();
        for (v, id) in dscp.rows.iter().enumerate() {
            let class = match classes.iter().position(|c| c == id) {
                Some(c) => c,
                None => {
                    classes.push(*id);
                    self.rows.extend_from_slice(scratch.row(*id));
                    classes.len() - 1
                }
            };
            if let Some(slot) = piece.dscp.get_mut(v) {
                *slot = class as u8;
            }
        }
        Ok(piece)
    }

    /// Calls `f` with the position of every rule matching `p` (for
    /// [`Split::local`] and [`Split::action`]), in order, until `f` returns
    /// true; returns that position.
    #[inline]
    pub(super) fn find(&self, p: &Point6<K>, mut f: impl FnMut(u32) -> bool) -> Option<u32> {
        let id = self.slots.get(slot(p.dst.wide(), self.shift)).copied().unwrap_or(0);
        let pc = self.pieces.get(usize::from(id))?;
        let w = pc.words as usize;
        let wild = pc.wild as usize;
        // The wild block is needed whatever the trees answer: ask for it
        // while they descend.
        prefetch(&self.rows, wild);
        // Offset in `rows` of the row of value `v` in tree `t`.
        let atree = |t: usize, v: K| {
            let (off, d) = (pc.keys[t] as usize, u32::from(pc.depth[t]));
            let node = descend(self.akeys.get(off..off + (1 << d)).unwrap_or(&[]), d, v);
            pc.rows[t] as usize + node * w
        };
        let ptree = |t: usize, v: u32| {
            let (off, d) = (pc.keys[t] as usize, u32::from(pc.depth[t]));
            let node = descend(self.pkeys.get(off..off + (1 << d)).unwrap_or(&[]), d, v);
            pc.rows[t] as usize + node * w
        };
        let proto = u32::from(p.proto.unwrap_or(0)) << 16;
        let rd = atree(0, p.dst);
        let rs = atree(1, p.src);
        let rdp = ptree(2, proto | u32::from(p.dport.unwrap_or(0)));
        let rsp = ptree(3, proto | u32::from(p.sport.unwrap_or(0)));
        let class = usize::from(pc.dscp.get(usize::from(p.dscp & 63)).copied().unwrap_or(0));
        // A packet of unknown protocol matches only wildcard rules; one
        // without a destination port only the rules of its protocol with
        // any destination port; one without a source port only the rules
        // with any source port.
        let all = |o: bool| 0u64.wrapping_sub(u64::from(o));
        let known = all(p.proto.is_some());
        let (hdp, hsp) = (all(p.dport.is_some()), all(p.sport.is_some() && p.proto.is_some()));
        let row = |r: usize| self.rows.get(r).copied().unwrap_or(0);
        for i in 0..w {
            let wd = |t: usize| row(wild + t * w + i);
            let mut m = (row(rd + i) | wd(0))
                & (row(rs + i) | wd(1))
                & ((row(rdp + i) & known & (hdp | wd(4))) | wd(2))
                & ((row(rsp + i) & hsp) | wd(3))
                & wd(WILD_DSCP + class);
            while m != 0 {
                let pos = pc.ids + (i * 64) as u32 + m.trailing_zeros();
                if f(pos) {
                    return Some(pos);
                }
                m &= m - 1;
            }
        }
        None
    }

    /// The family-local index of the rule at `pos` (from [`Split::find`]).
    #[inline]
    pub(super) fn local(&self, pos: u32) -> Option<u32> {
        self.ids.get(pos as usize).copied()
    }

    /// The action of the rule at `pos` (from [`Split::find`]).
    #[inline]
    pub(super) fn action(&self, pos: u32) -> Option<Action> {
        self.actions.get(pos as usize).copied()
    }

    /// Leading destination bits the table is indexed by.
    #[cfg(test)]
    pub(super) fn bits(&self) -> u32 {
        K::BITS - self.shift
    }

    /// Bytes used by the lookup tables.
    pub(super) fn bytes(&self) -> usize {
        self.slots.len() * 2
            + self.pieces.len() * size_of::<Piece>()
            + self.akeys.len() * size_of::<K>()
            + self.pkeys.len() * 4
            + self.rows.len() * 8
            + self.ids.len() * 4
            + self.actions.len() * size_of::<Action>()
    }
}
