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
//! Rows are uncompressed here (`words` words per row for a piece of up to
//! `64 * words` rules) and deduplicated across pieces; ports and protocol
//! are small Eytzinger trees of `u16` keys instead of the direct tables of
//! `Flat` (which cost kilobytes per piece). The split width is chosen at
//! compile time ([`plan`]); a rule set that no width splits well (most
//! destinations wide) is compiled as one `Flat` classifier instead.

use std::collections::{BTreeSet, HashMap};

use super::bitvec::{Addrs, Dim, MAX_WORDS, Point, Point6, RowSink, Table, descend};
use super::rule::RuleSelector;

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

/// One piece's header: where its trees, DSCP table and rule numbers lie in
/// the shared pools. One cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Piece {
    /// Tree offsets: destination and source in `akeys`, then destination
    /// port, source port and protocol in `pkeys`.
    off: [u32; 5],
    /// The trees' wildcard rows.
    wild: [u32; 5],
    depth: [u8; 5],
    /// Offset of the 64-entry DSCP table in `dscp`.
    dscp: u32,
    /// Offset of the piece's rule numbers in `ids`.
    ids: u32,
    /// Words per row.
    words: u32,
}

/// Uncompressed rows of a fixed width, deduplicated; a row's id is the
/// offset of its first word.
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

/// See the module docs.
pub(super) struct Split<K> {
    /// Slot of a destination: `dst >> shift`.
    shift: u32,
    /// Slot -> piece.
    slots: Vec<u16>,
    pieces: Vec<Piece>,
    akeys: Vec<K>,
    arows: Vec<u32>,
    pkeys: Vec<u16>,
    prows: Vec<u32>,
    dscp: Vec<u32>,
    words: Vec<u64>,
    /// Piece-local rule number -> family-local rule index.
    ids: Vec<u32>,
}

fn offset(len: usize) -> Result<u32, &'static str> {
    u32::try_from(len).map_err(|_| "bit-vector tables over 128 MiB")
}

impl<K: Point> Split<K> {
    /// Compiles the rules `sels` (addresses `addrs`: source, destination)
    /// split on `plan.bits` leading destination bits.
    pub(super) fn build(sels: &[RuleSelector], addrs: &[Addrs<K>], plan: Plan) -> Result<Self, &'static str> {
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
            arows: Vec::new(),
            pkeys: Vec::new(),
            prows: Vec::new(),
            dscp: Vec::new(),
            words: Vec::new(),
            ids: Vec::new(),
        };
        let mut rows = Words { width: 1, data: Vec::new(), seen: HashMap::new() };
        let mut tables: HashMap<Vec<u32>, u32> = HashMap::new();
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
            let piece = split.piece(
                sels,
                addrs,
                &members,
                (K::from_wide(lo), K::from_wide(hi)),
                &mut rows,
                &mut tables,
            )?;
            let id = u16::try_from(split.pieces.len()).map_err(|_| "too many pieces")?;
            split.pieces.push(piece);
            split.slots.extend((s0..s1).map(|_| id));
        }
        split.words = rows.data;
        if split.bytes() > MAX_WORDS * 8 {
            return Err("bit-vector tables over 128 MiB");
        }
        Ok(split)
    }

    /// Builds the piece of destinations `lo..=hi` holding rules `members`.
    fn piece(
        &mut self,
        sels: &[RuleSelector],
        addrs: &[Addrs<K>],
        members: &[u32],
        (lo, hi): (K, K),
        rows: &mut Words,
        tables: &mut HashMap<Vec<u32>, u32>,
    ) -> Result<Piece, &'static str> {
        let n = members.len();
        let width = n.div_ceil(64).max(1);
        rows.width = width;
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
        let dp: Vec<(u16, u16)> =
            members.iter().map(|&r| (sel(r).dst_ports.start, sel(r).dst_ports.end)).collect();
        let sp: Vec<(u16, u16)> =
            members.iter().map(|&r| (sel(r).src_ports.start, sel(r).src_ports.end)).collect();
        let pr: Vec<(u16, u16)> =
            members.iter().map(|&r| sel(r).proto.map_or((0, u16::MAX), |p| (p.into(), p.into()))).collect();
        let mut piece = Piece { words: width as u32, ids: offset(self.ids.len())?, ..Piece::default() };
        self.ids.extend_from_slice(members);
        for (t, ranges) in [dsts, srcs].iter().enumerate() {
            let d = Dim::build(ranges, rows)?;
            piece.off[t] = offset(self.akeys.len())?;
            piece.wild[t] = d.wild;
            piece.depth[t] = d.depth as u8;
            self.akeys.extend_from_slice(&d.tree);
            self.arows.extend_from_slice(&d.node_rows);
        }
        for (t, ranges) in [dp, sp, pr].iter().enumerate() {
            let d = Dim::build(ranges, rows)?;
            piece.off[2 + t] = offset(self.pkeys.len())?;
            piece.wild[2 + t] = d.wild;
            piece.depth[2 + t] = d.depth as u8;
            self.pkeys.extend_from_slice(&d.tree);
            self.prows.extend_from_slice(&d.node_rows);
        }
        let mask = |i: usize| members.get(i).map_or(0, |&r| sel(r).dscp.0);
        let dscp = Table::build(64, n, |i| mask(i) == u64::MAX, |i, v| mask(i) >> v & 1 == 1, rows)?;
        piece.dscp = match tables.get(&dscp.rows) {
            Some(off) => *off,
            None => {
                let off = offset(self.dscp.len())?;
                self.dscp.extend_from_slice(&dscp.rows);
                tables.insert(dscp.rows, off);
                off
            }
        };
        Ok(piece)
    }

    /// Calls `f` with the family-local index of every rule matching `p`, in
    /// order, until `f` returns true; returns that index.
    #[inline]
    pub(super) fn find(&self, p: &Point6<K>, mut f: impl FnMut(u32) -> bool) -> Option<u32> {
        let id = self.slots.get(slot(p.dst.wide(), self.shift)).copied().unwrap_or(0);
        let pc = self.pieces.get(usize::from(id))?;
        let tree = |keys: &[K], t: usize, v: K| {
            let off = pc.off[t] as usize;
            let d = u32::from(pc.depth[t]);
            let end = off + (1usize << d);
            descend(keys.get(off..end).unwrap_or(&[]), self.arows.get(off..end).unwrap_or(&[]), d, v)
        };
        let ptree = |t: usize, v: u16| {
            let off = pc.off[t] as usize;
            let d = u32::from(pc.depth[t]);
            let end = off + (1usize << d);
            descend(self.pkeys.get(off..end).unwrap_or(&[]), self.prows.get(off..end).unwrap_or(&[]), d, v)
        };
        let rd = tree(&self.akeys, 0, p.dst);
        let rs = tree(&self.akeys, 1, p.src);
        let rdp = ptree(2, p.dport.unwrap_or(0));
        let rsp = ptree(3, p.sport.unwrap_or(0));
        let rpr = ptree(4, p.proto.map_or(0, u16::from));
        let rds = self.dscp.get(pc.dscp as usize + usize::from(p.dscp & 63)).copied().unwrap_or(0);
        // An unknown port or protocol matches only the wildcard rows.
        let all = |o: bool| 0u64.wrapping_sub(u64::from(o));
        let (mdp, msp, mpr) = (all(p.dport.is_some()), all(p.sport.is_some()), all(p.proto.is_some()));
        let word = |r: u32, w: usize| self.words.get(r as usize + w).copied().unwrap_or(0);
        for w in 0..pc.words as usize {
            let mut m = (word(rd, w) | word(pc.wild[0], w))
                & (word(rs, w) | word(pc.wild[1], w))
                & ((word(rdp, w) & mdp) | word(pc.wild[2], w))
                & ((word(rsp, w) & msp) | word(pc.wild[3], w))
                & ((word(rpr, w) & mpr) | word(pc.wild[4], w))
                & word(rds, w);
            while m != 0 {
                let local = w * 64 + m.trailing_zeros() as usize;
                let r = self.ids.get(pc.ids as usize + local).copied().unwrap_or(u32::MAX);
                if f(r) {
                    return Some(r);
                }
                m &= m - 1;
            }
        }
        None
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
            + (self.arows.len() + self.prows.len() + self.dscp.len() + self.ids.len()) * 4
            + self.pkeys.len() * 2
            + self.words.len() * 8
    }
}
